//! What goes into the replicated log and what comes out of applying it.
//!
//! A [`Txn`] is fully determined when it is proposed: the leader stamps its clock
//! reading and the caller's session and identities into it, so every member that
//! applies it computes the same tree, the same results and the same watch events.

use corral_proto::ErrorCode;
use serde::{Deserialize, Serialize};

/// ZooKeeper's permission bits.
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// An identity: `world:anyone`, `digest:user:base64(sha1(user:password))`, `ip:10.0.0.1`, ...
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Id {
        Id { scheme: scheme.into(), id: id.into() }
    }

    /// `world:anyone`, which every client is.
    pub fn anyone() -> Id {
        Id::new("world", "anyone")
    }
}

/// One ACL entry: permission bits granted to an identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    /// ZooKeeper's `OPEN_ACL_UNSAFE`: world:anyone may do anything.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl { perms: perms::ALL, id: Id::anyone() }]
    }
}

/// ZooKeeper's node kinds, numbered as its `CreateMode` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CreateMode {
    Persistent = 0,
    Ephemeral = 1,
    PersistentSequential = 2,
    EphemeralSequential = 3,
    Container = 4,
    PersistentWithTtl = 5,
    PersistentSequentialWithTtl = 6,
}

impl CreateMode {
    pub fn from_flag(flag: i32) -> Option<CreateMode> {
        Some(match flag {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl,
            6 => CreateMode::PersistentSequentialWithTtl,
            _ => return None,
        })
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(self, CreateMode::Ephemeral | CreateMode::EphemeralSequential)
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_ttl(self) -> bool {
        matches!(self, CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl)
    }

    pub fn is_container(self) -> bool {
        matches!(self, CreateMode::Container)
    }
}

/// ZooKeeper's Stat, field for field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

/// A log entry's payload: one client write (or session change), fully determined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// The leader's wall clock when it proposed this, in ms since the Unix epoch:
    /// becomes ctime/mtime. Applying never reads a clock.
    pub time_ms: i64,
    /// The session that issued the write, 0 for none. Owner of created ephemerals.
    pub session_id: i64,
    /// The caller's authenticated identities, checked against ACLs at apply time.
    pub auth: Vec<Id>,
    pub op: TxnOp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    // `serde_bytes`: payloads of up to 1 MiB are copied as one block, not encoded byte by byte.
    Create {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        acl: Vec<Acl>,
        mode: CreateMode,
        ttl_ms: i64,
    },
    Delete { path: String, version: i32 },
    SetData {
        path: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        version: i32,
    },
    SetAcl { path: String, acl: Vec<Acl>, version: i32 },
    Check { path: String, version: i32 },
    /// Atomic: every op applies or none does. Holds only Create/Delete/SetData/Check.
    Multi(Vec<TxnOp>),
    /// Opens a session; its id is derived from the zxid of this txn.
    CreateSession { timeout_ms: i32, password: Vec<u8> },
    /// Closes a session and deletes all its ephemeral nodes, atomically.
    CloseSession { session_id: i64 },
    /// The leader's verdict that a session timed out: applied exactly like
    /// `CloseSession`, told apart so its connection hears "expired", not "closed".
    ExpireSession { session_id: i64 },
    /// The leader's sweep (ZooKeeper's `deleteContainer`): deletes a container that
    /// had children and has none, or a childless TTL node unchanged for longer than its
    /// TTL as of this entry's time. Re-checked here, so a node that gained a child or
    /// changed since the leader looked is kept.
    Reap { path: String },
}

impl TxnOp {
    /// The payload bytes this op carries (its data and paths), roughly what it adds to an
    /// entry; bounds how many ops a batch gathers.
    pub fn payload_len(&self) -> usize {
        match self {
            TxnOp::Create { path, data, .. } | TxnOp::SetData { path, data, .. } => path.len() + data.len(),
            TxnOp::Multi(ops) => ops.iter().map(TxnOp::payload_len).sum(),
            TxnOp::Delete { path, .. } | TxnOp::SetAcl { path, .. } | TxnOp::Check { path, .. } | TxnOp::Reap { path } => {
                path.len()
            }
            TxnOp::CreateSession { password, .. } => password.len(),
            TxnOp::CloseSession { .. } | TxnOp::ExpireSession { .. } => 8,
        }
    }
}

/// The outcome of one successfully applied operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpOutcome {
    Created { path: String, stat: Stat },
    Deleted,
    DataSet { stat: Stat },
    AclSet { stat: Stat },
    Checked,
    /// Per-op results. On failure every entry is an `Err`: `Err(ErrorCode::Ok)` for
    /// the ops before the failing one, its own code for the failing one and
    /// `Err(ErrorCode::RuntimeInconsistency)` after it, exactly as ZooKeeper reports.
    Multi(Vec<Result<OpOutcome, ErrorCode>>),
    SessionCreated { session_id: i64, timeout_ms: i32 },
    SessionClosed,
}

/// What applying a [`Txn`] returns to whoever proposed it.
pub type TxnResult = Result<OpOutcome, ErrorCode>;

/// ZooKeeper's watch event types, with its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    NodeCreated = 1,
    NodeDeleted = 2,
    NodeDataChanged = 3,
    NodeChildrenChanged = 4,
}

/// A change that may trigger watches: emitted by apply, in the order ZooKeeper fires them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub path: String,
    /// The ACL of the node the event is about (the parent's for NodeChildrenChanged; a deleted
    /// node's last ACL): ZooKeeper delivers a notification only to connections with READ on it.
    pub acl: std::sync::Arc<[Acl]>,
}

/// The full effect of applying one [`Txn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub result: TxnResult,
    pub events: Vec<WatchEvent>,
}
