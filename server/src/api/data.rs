//! The `Data` service: ZooKeeper's data operations over gRPC.

use std::sync::Arc;

use corral_proto::v1 as pb;
use corral_proto::v1::data_server::Data;
use corral_proto::ErrorCode;
use tonic::{Request, Response, Status};

use super::convert::{self, status, zk_status};
use super::member::Member;
use crate::tree::{Id, OpOutcome, TxnOp};
use crate::watch::WatchKind;

pub struct DataService {
    member: Arc<Member>,
    /// Largest accepted znode payload (ZooKeeper's jute.maxbuffer), checked here
    /// so an oversized write never reaches the log.
    max_data_len: usize,
}

impl DataService {
    pub fn new(member: Arc<Member>, max_data_len: usize) -> DataService {
        DataService { member, max_data_len }
    }

    /// The reply header for a request of `session_id` (0: none), as of `zxid`. `event_seq`
    /// counts the notices already queued on the session's stream here, which the client
    /// receives before it acts on this reply.
    fn header_at(&self, zxid: u64, session_id: i64) -> Option<pb::ResponseHeader> {
        let event_seq = if session_id == 0 { 0 } else { self.member.state.watches.lock().seq(session_id) };
        Some(pb::ResponseHeader { zxid, member_id: self.member.id, event_seq })
    }

    fn header(&self, session_id: i64) -> Option<pb::ResponseHeader> {
        self.header_at(self.member.applied_zxid(), session_id)
    }

    /// A request that names a session keeps it alive; a session that is not open (never was,
    /// expired, closed) is refused, as ZooKeeper refuses an expired session's requests. The
    /// check runs after the replica caught up with the client, which has seen its session open.
    fn check_session(&self, session_id: i64) -> Result<(), Status> {
        if session_id == 0 {
            return Ok(());
        }
        self.member.sessions.touch(session_id);
        if self.member.state.read().tree.session(session_id).is_none() {
            return Err(zk_status(ErrorCode::SessionExpired, format!("session {session_id:#x} is not open")));
        }
        Ok(())
    }

    /// Registers a one-shot watch for the session, under the tree read lock `st` the read was
    /// made with, so no change can fall between the read and the registration.
    fn register_watch(&self, session_id: i64, kind: WatchKind, path: &str) -> Result<(), Status> {
        if session_id == 0 {
            return Err(zk_status(ErrorCode::BadArguments, "a watch belongs to a session: open one first"));
        }
        if !self.member.state.watches.lock().register(session_id, kind, path) {
            return Err(super::session::not_attached(self.member.id, session_id));
        }
        Ok(())
    }

    fn check_size(&self, data: &[u8]) -> Result<(), Status> {
        if data.len() > self.max_data_len {
            return Err(zk_status(
                ErrorCode::BadArguments,
                format!("data is {} bytes, the limit is {}", data.len(), self.max_data_len),
            ));
        }
        Ok(())
    }

    /// Proposes a write and returns its outcome and zxid; ZooKeeper errors become statuses.
    async fn write<T>(
        &self,
        req: &Request<T>,
        header: Option<&pb::RequestHeader>,
        op: TxnOp,
    ) -> Result<(OpOutcome, u64), Status> {
        let auth = convert::identities(header, req.remote_addr().map(|a| a.ip()))?;
        let session = session_of(header);
        if session != 0 {
            let min = header.map_or(0, |h| h.min_zxid);
            self.member.read_barrier(min, false).await.map_err(status)?;
            self.check_session(session)?;
        }
        let path = op_path(&op).to_string();
        let (result, zxid) = self.member.write(session, auth, op).await.map_err(status)?;
        match result {
            Ok(outcome) => Ok((outcome, zxid)),
            Err(code) => Err(zk_status(code, path)),
        }
    }

    /// Waits until this replica may serve the read, and returns the caller's identities.
    async fn read_ready<T>(
        &self,
        req: &Request<T>,
        header: Option<&pb::RequestHeader>,
    ) -> Result<Vec<Id>, Status> {
        let auth = convert::identities(header, req.remote_addr().map(|a| a.ip()))?;
        let (min, lin) = header.map(|h| (h.min_zxid, h.linearizable)).unwrap_or((0, false));
        self.member.read_barrier(min, lin).await.map_err(status)?;
        self.check_session(session_of(header))?;
        Ok(auth)
    }
}

/// The zxid of the tree state a read under `st` saw.
fn applied(st: &crate::raft::state_machine::TreeState) -> u64 {
    st.last_applied.map_or(0, |l| l.index)
}

fn session_of(header: Option<&pb::RequestHeader>) -> i64 {
    header.map_or(0, |h| h.session_id)
}

/// The path an op names, for error messages (as ZooKeeper's "KeeperErrorCode = NoNode for /a").
fn op_path(op: &TxnOp) -> &str {
    match op {
        TxnOp::Create { path, .. }
        | TxnOp::Delete { path, .. }
        | TxnOp::SetData { path, .. }
        | TxnOp::SetAcl { path, .. }
        | TxnOp::Check { path, .. } => path,
        _ => "",
    }
}

fn unexpected(o: OpOutcome) -> Status {
    zk_status(ErrorCode::SystemError, format!("unexpected outcome {o:?}"))
}

#[tonic::async_trait]
impl Data for DataService {
    async fn create(&self, req: Request<pb::CreateRequest>) -> Result<Response<pb::CreateResponse>, Status> {
        let r = req.get_ref();
        self.check_size(&r.data)?;
        let op = convert::create_op(r)?;
        match self.write(&req, r.header.as_ref(), op).await? {
            (OpOutcome::Created { path, stat }, zxid) => Ok(Response::new(pb::CreateResponse {
                header: self.header_at(zxid, session_of(r.header.as_ref())),
                path,
                stat: Some(convert::stat_to_pb(&stat)),
            })),
            (o, _) => Err(unexpected(o)),
        }
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = req.get_ref();
        let op = TxnOp::Delete { path: r.path.clone(), version: r.version };
        let (_, zxid) = self.write(&req, r.header.as_ref(), op).await?;
        Ok(Response::new(pb::DeleteResponse { header: self.header_at(zxid, session_of(r.header.as_ref())) }))
    }

    async fn set_data(&self, req: Request<pb::SetDataRequest>) -> Result<Response<pb::SetDataResponse>, Status> {
        let r = req.get_ref();
        self.check_size(&r.data)?;
        let op = TxnOp::SetData { path: r.path.clone(), data: r.data.to_vec(), version: r.version };
        match self.write(&req, r.header.as_ref(), op).await? {
            (OpOutcome::DataSet { stat }, zxid) => Ok(Response::new(pb::SetDataResponse {
                header: self.header_at(zxid, session_of(r.header.as_ref())),
                stat: Some(convert::stat_to_pb(&stat)),
            })),
            (o, _) => Err(unexpected(o)),
        }
    }

    async fn get_data(&self, req: Request<pb::GetDataRequest>) -> Result<Response<pb::GetDataResponse>, Status> {
        let r = req.get_ref();
        let auth = self.read_ready(&req, r.header.as_ref()).await?;
        let session = session_of(r.header.as_ref());
        let (data, stat, header) = {
            let st = self.member.state.read();
            let (data, stat) = st.tree.get_data(&r.path, &auth).map_err(|c| zk_status(c, r.path.clone()))?;
            if r.watch {
                self.register_watch(session, WatchKind::Data, &r.path)?;
            }
            (data, stat, self.header_at(applied(&st), session))
        };
        Ok(Response::new(pb::GetDataResponse { header, data: data.into(), stat: Some(convert::stat_to_pb(&stat)) }))
    }

    async fn exists(&self, req: Request<pb::ExistsRequest>) -> Result<Response<pb::ExistsResponse>, Status> {
        let r = req.get_ref();
        self.read_ready(&req, r.header.as_ref()).await?;
        let session = session_of(r.header.as_ref());
        let (stat, header) = {
            let st = self.member.state.read();
            let stat = st.tree.exists(&r.path).map_err(|c| zk_status(c, r.path.clone()))?;
            // Set whether or not the node exists: on a missing node it waits for NodeCreated.
            if r.watch {
                self.register_watch(session, WatchKind::Data, &r.path)?;
            }
            (stat, self.header_at(applied(&st), session))
        };
        Ok(Response::new(pb::ExistsResponse { header, stat: stat.as_ref().map(convert::stat_to_pb) }))
    }

    async fn get_children(
        &self,
        req: Request<pb::GetChildrenRequest>,
    ) -> Result<Response<pb::GetChildrenResponse>, Status> {
        let r = req.get_ref();
        let auth = self.read_ready(&req, r.header.as_ref()).await?;
        let session = session_of(r.header.as_ref());
        let (children, stat, header) = {
            let st = self.member.state.read();
            let (children, stat) =
                st.tree.get_children(&r.path, &auth).map_err(|c| zk_status(c, r.path.clone()))?;
            if r.watch {
                self.register_watch(session, WatchKind::Child, &r.path)?;
            }
            (children, stat, self.header_at(applied(&st), session))
        };
        Ok(Response::new(pb::GetChildrenResponse { header, children, stat: Some(convert::stat_to_pb(&stat)) }))
    }

    async fn get_all_children_number(
        &self,
        req: Request<pb::GetAllChildrenNumberRequest>,
    ) -> Result<Response<pb::GetAllChildrenNumberResponse>, Status> {
        let r = req.get_ref();
        self.read_ready(&req, r.header.as_ref()).await?;
        let number = {
            let st = self.member.state.read();
            st.tree.get_all_children_number(&r.path).map_err(|c| zk_status(c, r.path.clone()))?
        };
        Ok(Response::new(pb::GetAllChildrenNumberResponse { header: self.header(session_of(r.header.as_ref())), number }))
    }

    async fn get_ephemerals(
        &self,
        req: Request<pb::GetEphemeralsRequest>,
    ) -> Result<Response<pb::GetEphemeralsResponse>, Status> {
        let r = req.get_ref();
        self.read_ready(&req, r.header.as_ref()).await?;
        let session = r.header.as_ref().map(|h| h.session_id).unwrap_or(0);
        let prefix = if r.prefix_path.is_empty() { "/" } else { r.prefix_path.as_str() };
        let paths = self.member.state.read().tree.get_ephemerals(session, prefix);
        Ok(Response::new(pb::GetEphemeralsResponse { header: self.header(session_of(r.header.as_ref())), paths }))
    }

    async fn get_acl(&self, req: Request<pb::GetAclRequest>) -> Result<Response<pb::GetAclResponse>, Status> {
        let r = req.get_ref();
        self.read_ready(&req, r.header.as_ref()).await?;
        let (acl, stat) = {
            let st = self.member.state.read();
            st.tree.get_acl(&r.path).map_err(|c| zk_status(c, r.path.clone()))?
        };
        Ok(Response::new(pb::GetAclResponse {
            header: self.header(session_of(r.header.as_ref())),
            acl: acl.iter().map(convert::acl_to_pb).collect(),
            stat: Some(convert::stat_to_pb(&stat)),
        }))
    }

    async fn set_acl(&self, req: Request<pb::SetAclRequest>) -> Result<Response<pb::SetAclResponse>, Status> {
        let r = req.get_ref();
        let op = TxnOp::SetAcl {
            path: r.path.clone(),
            acl: convert::acl_from_pb(&r.acl),
            version: r.aversion,
        };
        match self.write(&req, r.header.as_ref(), op).await? {
            (OpOutcome::AclSet { stat }, zxid) => Ok(Response::new(pb::SetAclResponse {
                header: self.header_at(zxid, session_of(r.header.as_ref())),
                stat: Some(convert::stat_to_pb(&stat)),
            })),
            (o, _) => Err(unexpected(o)),
        }
    }

    async fn check(&self, req: Request<pb::CheckRequest>) -> Result<Response<pb::CheckResponse>, Status> {
        let r = req.get_ref();
        let op = TxnOp::Check { path: r.path.clone(), version: r.version };
        let (_, zxid) = self.write(&req, r.header.as_ref(), op).await?;
        Ok(Response::new(pb::CheckResponse { header: self.header_at(zxid, session_of(r.header.as_ref())) }))
    }

    async fn multi(&self, req: Request<pb::MultiRequest>) -> Result<Response<pb::MultiResponse>, Status> {
        let r = req.get_ref();
        let ops = convert::multi_ops(&r.ops)?;
        for op in &ops {
            if let TxnOp::Create { data, .. } | TxnOp::SetData { data, .. } = op {
                self.check_size(data)?;
            }
        }
        let auth = convert::identities(r.header.as_ref(), req.remote_addr().map(|a| a.ip()))?;
        let session = session_of(r.header.as_ref());
        if session != 0 {
            let min = r.header.as_ref().map_or(0, |h| h.min_zxid);
            self.member.read_barrier(min, false).await.map_err(status)?;
            self.check_session(session)?;
        }
        let (result, zxid) =
            self.member.write(session, auth, TxnOp::Multi(ops)).await.map_err(status)?;
        // A failed multi is still a reply with per-op results, as in ZooKeeper.
        let results = match result {
            Ok(OpOutcome::Multi(results)) => results.iter().map(convert::op_result_to_pb).collect(),
            Ok(o) => return Err(unexpected(o)),
            Err(code) => return Err(zk_status(code, "multi")),
        };
        Ok(Response::new(pb::MultiResponse { header: self.header_at(zxid, session_of(r.header.as_ref())), results }))
    }

    async fn multi_read(&self, req: Request<pb::MultiRequest>) -> Result<Response<pb::MultiResponse>, Status> {
        let r = req.get_ref();
        let ops = convert::read_ops(&r.ops)?;
        let auth = self.read_ready(&req, r.header.as_ref()).await?;
        let results = {
            let st = self.member.state.read();
            st.tree.multi_read(&ops, &auth)
        };
        Ok(Response::new(pb::MultiResponse {
            header: self.header(session_of(r.header.as_ref())),
            results: results.iter().map(convert::read_result_to_pb).collect(),
        }))
    }

    async fn sync(&self, req: Request<pb::SyncRequest>) -> Result<Response<pb::SyncResponse>, Status> {
        let r = req.get_ref();
        let index = self.member.read_index().await.map_err(status)?;
        let min = r.header.as_ref().map(|h| h.min_zxid).unwrap_or(0);
        self.member.read_barrier(min.max(index), false).await.map_err(status)?;
        Ok(Response::new(pb::SyncResponse { header: self.header(session_of(r.header.as_ref())), path: r.path.clone() }))
    }
}
