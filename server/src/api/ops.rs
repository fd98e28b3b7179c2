//! What every client front end does with a request, whichever protocol it came in: the gRPC
//! services and the ZooKeeper wire protocol both call these, so a session, a watch or an error
//! means the same thing on both.
//!
//! - [`Member::admit`]: the request keeps its session alive, the replica catches up with what
//!   the caller has seen, and a session that is not open is refused.
//! - [`Member::submit`]: admit, then propose through the leader.
//! - [`Member::read_at`]: read the local replica under its lock, register watches in the same
//!   critical section, and report the zxid read at and the session's notice count.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use corral_proto::ErrorCode;
use parking_lot::Mutex;

use super::member::{Member, MemberError};
use crate::tree::{DataTree, Id, OpOutcome, TxnOp};
use crate::watch::{WatchKind, Watches};

/// Who is asking, and what they have seen.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// 0 for no session.
    pub session_id: i64,
    /// Identities for ACL checks: the address and every authenticated credential.
    pub auth: Vec<Id>,
    /// The highest zxid the caller has seen: never serve it an older state.
    pub min_zxid: u64,
    /// Reads only: confirm the leader's commit point first (a read index).
    pub linearizable: bool,
}

/// Registers watches for the session of the read it is handed to.
pub struct Registrar<'a> {
    watches: &'a mut Watches,
    session_id: i64,
    member_id: u64,
    /// Whether the read set a watch.
    registered: bool,
}

impl Registrar<'_> {
    /// A one-shot data or child watch, or a persistent one, for the reading session on this
    /// member. BadArguments without a session; SessionMoved when the session's connection is
    /// on another member.
    pub fn watch(&mut self, kind: WatchKind, path: &str) -> Result<(), ErrorCode> {
        if self.session_id == 0 {
            return Err(ErrorCode::BadArguments);
        }
        if !self.watches.register(self.session_id, kind, path) {
            tracing::debug!(
                session = format_args!("{:#x}", self.session_id),
                member = self.member_id,
                "watch refused: the session is not connected here"
            );
            return Err(ErrorCode::SessionMoved);
        }
        self.registered = true;
        Ok(())
    }

    /// Whether the read set a watch.
    pub fn registered(&self) -> bool {
        self.registered
    }

    /// The watches themselves, for removeWatches and checkWatches.
    pub fn watches(&mut self) -> &mut Watches {
        self.watches
    }
}

/// What a read reports besides its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPoint {
    /// The zxid of the tree state read.
    pub zxid: u64,
    /// How many notices the reading session's connection here had been sent by then: the client
    /// must have them before it acts on the reply.
    pub event_seq: u64,
}

impl Member {
    /// Touches the caller's session, waits until this replica is at least as new as the caller
    /// has seen (and at the leader's commit point for linearizable reads), then refuses a session
    /// that is not open, as ZooKeeper refuses an expired session's requests.
    pub async fn admit(&self, caller: &Caller, read: bool) -> Result<(), MemberError> {
        if caller.session_id != 0 {
            self.sessions.touch(caller.session_id);
        }
        if caller.session_id == 0 && !read {
            // A sessionless write depends on nothing this replica must have seen.
            return Ok(());
        }
        self.read_barrier(caller.min_zxid, read && caller.linearizable).await?;
        if caller.session_id != 0 && self.state.read().tree.session(caller.session_id).is_none() {
            return Err(MemberError::zk(
                ErrorCode::SessionExpired,
                format!("session {:#x} is not open", caller.session_id),
            ));
        }
        Ok(())
    }

    /// Admits the caller and proposes `op`; returns its outcome and zxid once this replica has
    /// applied it. A ZooKeeper refusal is `MemberError::Zk` naming the op's path.
    pub async fn submit(&self, caller: &Caller, op: TxnOp) -> Result<(OpOutcome, u64), MemberError> {
        self.admit(caller, false).await?;
        let path = op_path(&op).to_string();
        let (result, zxid) = self.write(caller.session_id, caller.auth.clone(), op).await?;
        result.map(|outcome| (outcome, zxid)).map_err(|code| MemberError::zk(code, path))
    }

    /// Runs `read` on the local replica under its read lock, with a [`Registrar`] for watches of
    /// `session_id`, and reports where it read.
    pub fn read_at<T>(
        &self,
        session_id: i64,
        read: impl FnOnce(&DataTree, &mut Registrar<'_>) -> Result<T, ErrorCode>,
    ) -> Result<(T, ReadPoint), ErrorCode> {
        let st = self.state.read();
        let mut watches = self.state.watches.lock();
        let mut registrar = Registrar { watches: &mut watches, session_id, member_id: self.id, registered: false };
        let value = read(&st.tree, &mut registrar)?;
        let point = ReadPoint {
            zxid: st.applied_zxid(),
            event_seq: if session_id == 0 { 0 } else { watches.seq(session_id) },
        };
        Ok((value, point))
    }

    /// Where a reply to `session_id` stands now (for writes, after their entry was applied here).
    pub fn reply_point(&self, zxid: u64, session_id: i64) -> ReadPoint {
        let event_seq = if session_id == 0 { 0 } else { self.state.watches.lock().seq(session_id) };
        ReadPoint { zxid, event_seq }
    }
}

/// The path an op names, for error messages (as ZooKeeper's "KeeperErrorCode = NoNode for /a").
pub fn op_path(op: &TxnOp) -> &str {
    match op {
        TxnOp::Create { path, .. }
        | TxnOp::Delete { path, .. }
        | TxnOp::SetData { path, .. }
        | TxnOp::SetAcl { path, .. }
        | TxnOp::Check { path, .. }
        | TxnOp::Reap { path } => path,
        TxnOp::Multi(_) => "multi",
        TxnOp::CreateSession { .. } | TxnOp::CloseSession { .. } | TxnOp::ExpireSession { .. } => "session",
    }
}

/// A refusal with a ZooKeeper code, before any request was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberErrorZk {
    pub code: ErrorCode,
    pub message: String,
}

/// ZooKeeper's maxClientCnxns: session connections (gRPC session streams and ZooKeeper protocol
/// connections alike) per client address on this member.
pub struct ConnectionLimits {
    max: u32,
    open: Mutex<BTreeMap<IpAddr, u32>>,
}

/// One open connection's place in the count; released when dropped.
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: Option<IpAddr>,
}

impl ConnectionLimits {
    /// `max` connections per address, 0 for no limit.
    pub fn new(max: u32) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits { max, open: Mutex::new(BTreeMap::new()) })
    }

    /// Counts one more connection from `ip`, or refuses it with Throttled.
    pub fn acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, MemberErrorZk> {
        if let Some(ip) = ip {
            let mut open = self.open.lock();
            let n = open.entry(ip).or_insert(0);
            if self.max != 0 && *n >= self.max {
                return Err(MemberErrorZk {
                    code: ErrorCode::Throttled,
                    message: format!("too many connections from {ip}: the limit is {}", self.max),
                });
            }
            *n += 1;
        }
        Ok(Slot { limits: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut open = self.limits.open.lock();
            if let Some(n) = open.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

