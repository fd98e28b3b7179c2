//! The `Session` service: sessions are created, closed and expired through the log; each
//! session keeps one stream to the member it is connected to, for pings and notices.

use std::pin::Pin;
use std::sync::Arc;

use corral_proto::v1 as pb;
use corral_proto::v1::session_server::Session;
use corral_proto::ErrorCode;
use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{self, status, zk_status};
use super::member::Member;
use crate::rt;
use crate::tree::{validate_path, OpOutcome, TxnOp};
use crate::watch::{Notice, SessionEnd, WatchKind, WatchSet};

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

    fn header(&self, zxid: u64, session_id: i64) -> Option<pb::ResponseHeader> {
        let event_seq = self.member.state.watches.lock().seq(session_id);
        Some(pb::ResponseHeader { zxid, member_id: self.member.id, event_seq })
    }
}

fn notice_to_pb(member_id: u64, notice: Notice) -> pb::SessionServerMessage {
    use pb::session_server_message::Msg;
    let msg = match notice {
        Notice::Attached { timeout_ms, zxid } => Msg::Attached(pb::Attached { member_id, timeout_ms, zxid }),
        Notice::Event(f) => Msg::Event(pb::WatchEvent {
            r#type: f.kind as i32,
            path: f.path,
            zxid: f.zxid,
            watcher: watcher_to_pb(f.watch) as i32,
            watch_path: f.watch_path,
        }),
        Notice::Ended(SessionEnd::Expired) => Msg::State(pb::SessionState::Expired as i32),
        Notice::Ended(SessionEnd::Closed) => Msg::State(pb::SessionState::Closed as i32),
        Notice::Pong => Msg::Pong(pb::Ping {}),
    };
    pb::SessionServerMessage { msg: Some(msg) }
}

fn watcher_to_pb(kind: WatchKind) -> pb::WatcherType {
    match kind {
        WatchKind::Data => pb::WatcherType::Data,
        WatchKind::Child => pb::WatcherType::Children,
        WatchKind::Persistent => pb::WatcherType::Persistent,
        WatchKind::PersistentRecursive => pb::WatcherType::PersistentRecursive,
    }
}

/// `None` is every kind (ZooKeeper's WatcherType.Any).
fn watcher_from_pb(kind: i32) -> Result<Option<WatchKind>, Status> {
    Ok(match pb::WatcherType::try_from(kind) {
        Ok(pb::WatcherType::Children) => Some(WatchKind::Child),
        Ok(pb::WatcherType::Data) => Some(WatchKind::Data),
        Ok(pb::WatcherType::Any) => None,
        Ok(pb::WatcherType::Persistent) => Some(WatchKind::Persistent),
        Ok(pb::WatcherType::PersistentRecursive) => Some(WatchKind::PersistentRecursive),
        Err(_) => return Err(zk_status(ErrorCode::BadArguments, format!("unknown watcher type {kind}"))),
    })
}

type NoticeStream = Pin<Box<dyn Stream<Item = Result<pb::SessionServerMessage, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Session for SessionService {
    type StreamStream = NoticeStream;

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
                self.member.sessions.touch(session_id);
                Ok(Response::new(pb::CreateSessionResponse {
                    header: self.header(zxid, session_id),
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
        Ok(Response::new(pb::CloseSessionResponse { header: self.header(zxid, session_id) }))
    }

    async fn stream(
        &self,
        req: Request<Streaming<pb::SessionClientMessage>>,
    ) -> Result<Response<NoticeStream>, Status> {
        use pb::session_client_message::Msg;
        let ip = req.remote_addr().map(|a| a.ip());
        let mut inbound = req.into_inner();
        let attach = match inbound.message().await? {
            Some(pb::SessionClientMessage { msg: Some(Msg::Attach(a)) }) => a,
            _ => return Err(zk_status(ErrorCode::BadArguments, "a session stream starts with Attach")),
        };
        let session_id = attach.session_id;
        // Never serve a client from a state older than it has seen.
        self.member.read_barrier(attach.last_zxid, false).await.map_err(status)?;
        if !self.member.accepts_sessions() {
            return Err(Status::unavailable(format!(
                "member {} is out of the configuration or cut off from the leader: try another",
                self.member.id
            )));
        }
        let identities = convert::identities_of(&attach.auth, ip)?;
        let slot = self.member.connections.acquire(ip).map_err(|e| zk_status(e.code, e.message))?;
        let set = WatchSet {
            data: attach.data_watches,
            exist: attach.exist_watches,
            child: attach.child_watches,
            persistent: attach.persistent_watches,
            persistent_recursive: attach.persistent_recursive_watches,
        };
        for path in set.data.iter().chain(&set.exist).chain(&set.child).chain(&set.persistent).chain(&set.persistent_recursive) {
            validate_path(path).map_err(|c| zk_status(c, format!("watch on {path:?}")))?;
        }
        let (conn, rx) = {
            let st = self.member.state.read();
            let info = st
                .tree
                .session(session_id)
                .ok_or_else(|| zk_status(ErrorCode::SessionExpired, format!("session {session_id:#x} is not open")))?;
            if info.password != attach.password[..] {
                return Err(zk_status(ErrorCode::AuthFailed, format!("wrong password for session {session_id:#x}")));
            }
            let timeout_ms = info.timeout_ms;
            let zxid = st.applied_zxid();
            let mut watches = self.member.state.watches.lock();
            let (conn, rx) = watches.attach(session_id);
            watches.set_identities(session_id, identities);
            conn.push(Notice::Attached { timeout_ms, zxid });
            watches.reregister(&st.tree, session_id, attach.last_zxid, &set);
            (conn, rx)
        };
        self.member.sessions.touch(session_id);
        tracing::debug!(session = format_args!("{session_id:#x}"), ?ip, "session attached");

        // Pings keep the session alive; the end of the client's side detaches it.
        let member = self.member.clone();
        let reader_conn = conn.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                member.sessions.touch(session_id);
                if let Some(Msg::Ping(_)) = msg.msg {
                    reader_conn.push(Notice::Pong);
                }
            }
            member.state.watches.lock().detach(reader_conn.id);
        });

        let member_id = self.member.id;
        // The slot travels with the stream: the connection counts until the stream is dropped.
        let outbound = futures::stream::unfold((rx, slot), move |(mut rx, slot)| async move {
            let notice = rx.recv().await?;
            Some((Ok(notice_to_pb(member_id, notice)), (rx, slot)))
        });
        Ok(Response::new(Box::pin(outbound)))
    }

    async fn add_watch(&self, req: Request<pb::AddWatchRequest>) -> Result<Response<pb::AddWatchResponse>, Status> {
        let r = req.get_ref();
        let (session_id, min_zxid) = r.header.as_ref().map(|h| (h.session_id, h.min_zxid)).unwrap_or((0, 0));
        validate_path(&r.path).map_err(|c| zk_status(c, r.path.clone()))?;
        let kind = match pb::AddWatchMode::try_from(r.mode) {
            Ok(pb::AddWatchMode::Persistent) => WatchKind::Persistent,
            Ok(pb::AddWatchMode::PersistentRecursive) => WatchKind::PersistentRecursive,
            Err(_) => return Err(zk_status(ErrorCode::BadArguments, format!("unknown watch mode {}", r.mode))),
        };
        let identities = convert::identities(r.header.as_ref(), req.remote_addr().map(|a| a.ip()))?;
        self.member.read_barrier(min_zxid, false).await.map_err(status)?;
        self.member.sessions.touch(session_id);
        let (zxid, seq) = {
            let st = self.member.state.read();
            let mut watches = self.member.state.watches.lock();
            if !watches.register(session_id, kind, &r.path) {
                return Err(not_attached(self.member.id, session_id));
            }
            // The credentials of the latest request that set a watch decide what the session
            // hears (a client may have added some since it attached).
            watches.set_identities(session_id, identities);
            (st.applied_zxid(), watches.seq(session_id))
        };
        Ok(Response::new(pb::AddWatchResponse {
            header: Some(pb::ResponseHeader { zxid, member_id: self.member.id, event_seq: seq }),
        }))
    }

    async fn remove_watches(
        &self,
        req: Request<pb::RemoveWatchesRequest>,
    ) -> Result<Response<pb::RemoveWatchesResponse>, Status> {
        let r = req.get_ref();
        let session_id = r.header.as_ref().map(|h| h.session_id).unwrap_or(0);
        validate_path(&r.path).map_err(|c| zk_status(c, r.path.clone()))?;
        let kind = watcher_from_pb(r.kind)?;
        self.member.sessions.touch(session_id);
        let (zxid, seq) = {
            let st = self.member.state.read();
            let mut watches = self.member.state.watches.lock();
            if watches.conn_of(session_id).is_none() {
                return Err(not_attached(self.member.id, session_id));
            }
            if !watches.remove(session_id, kind, &r.path) {
                return Err(zk_status(ErrorCode::NoWatcher, r.path.clone()));
            }
            (st.applied_zxid(), watches.seq(session_id))
        };
        Ok(Response::new(pb::RemoveWatchesResponse {
            header: Some(pb::ResponseHeader { zxid, member_id: self.member.id, event_seq: seq }),
        }))
    }
}

/// A watch request for a session whose stream is not on this member.
pub fn not_attached(member_id: u64, session_id: i64) -> Status {
    zk_status(
        ErrorCode::SessionMoved,
        format!("session {session_id:#x} has no stream attached to member {member_id}"),
    )
}
