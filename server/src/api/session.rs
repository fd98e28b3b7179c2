//! The `Session` service: sessions are created and closed through the log.

use std::sync::Arc;

use corral_proto::v1 as pb;
use corral_proto::v1::session_server::Session;
use corral_proto::ErrorCode;
use tonic::{Request, Response, Status};

use super::convert::{status, zk_status};
use super::member::Member;
use crate::rt;
use crate::tree::{OpOutcome, TxnOp};

pub struct SessionService {
    member: Arc<Member>,
    /// ZooKeeper's tickTime in ms: session timeouts are negotiated within [2, 20] ticks.
    tick_ms: i32,
}

impl SessionService {
    pub fn new(member: Arc<Member>, tick_ms: i32) -> SessionService {
        SessionService { member, tick_ms }
    }

    /// ZooKeeper's negotiation: clamp the request into [2 ticks, 20 ticks].
    pub fn negotiate(&self, requested_ms: i32) -> i32 {
        requested_ms.clamp(2 * self.tick_ms, 20 * self.tick_ms)
    }
}

#[tonic::async_trait]
impl Session for SessionService {
    async fn create_session(
        &self,
        req: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        let timeout_ms = self.negotiate(req.get_ref().timeout_ms);
        let password = rt::random_bytes(16);
        let op = TxnOp::CreateSession { timeout_ms, password: password.clone() };
        let (result, zxid) = self.member.write(0, Vec::new(), op).await.map_err(status)?;
        match result {
            Ok(OpOutcome::SessionCreated { session_id, timeout_ms }) => {
                Ok(Response::new(pb::CreateSessionResponse {
                    header: Some(pb::ResponseHeader { zxid, member_id: self.member.id }),
                    session_id,
                    password: password.into(),
                    timeout_ms,
                }))
            }
            Ok(o) => Err(zk_status(ErrorCode::SystemError, format!("unexpected {o:?}"))),
            Err(code) => Err(zk_status(code, "create session")),
        }
    }

    async fn close_session(
        &self,
        req: Request<pb::CloseSessionRequest>,
    ) -> Result<Response<pb::CloseSessionResponse>, Status> {
        let session_id = req.get_ref().header.as_ref().map(|h| h.session_id).unwrap_or(0);
        if session_id == 0 {
            return Err(zk_status(ErrorCode::BadArguments, "no session to close"));
        }
        let (result, zxid) = self
            .member
            .write(session_id, Vec::new(), TxnOp::CloseSession { session_id })
            .await
            .map_err(status)?;
        result.map_err(|code| zk_status(code, format!("session {session_id:#x}")))?;
        Ok(Response::new(pb::CloseSessionResponse {
            header: Some(pb::ResponseHeader { zxid, member_id: self.member.id }),
        }))
    }
}
