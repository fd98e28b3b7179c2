//! The openraft type configuration: what Corral's log carries.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::tree::{Txn, TxnResult};

/// A log entry's writes: the txns the leader proposed together, applied in order, each with a
/// zxid of its own ([`zxid::of`]). openraft 0.9's core waits for each append of the leader to
/// be synced before it takes the next, so Corral groups concurrent writes above it (see
/// `api::member`): one entry, one fsync, many writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub txns: Vec<Txn>,
}

/// What the state machine returns to the member that proposed an entry: one result per txn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub results: Vec<TxnResult>,
}

/// ZooKeeper transaction ids. A txn's zxid is its entry's Raft log index shifted left by
/// [`zxid::POSITION_BITS`], plus its position in the entry's batch: 64-bit, unique per txn,
/// strictly increasing in commit order, and never wrapping (ZOOKEEPER-2789 cannot happen).
pub mod zxid {
    /// Bits that number a txn within its entry.
    pub const POSITION_BITS: u32 = 10;
    /// The most txns one entry carries.
    pub const MAX_BATCH: usize = 1 << POSITION_BITS;

    /// The zxid of the txn at `position` in the entry at `index`.
    pub fn of(index: u64, position: usize) -> u64 {
        (index << POSITION_BITS) | position as u64
    }

    /// The log index of the entry a zxid belongs to.
    pub fn entry(zxid: u64) -> u64 {
        zxid >> POSITION_BITS
    }

    /// The highest zxid the entry at `index` could hold (0 for index 0, nothing).
    pub fn end(index: u64) -> u64 {
        if index == 0 {
            0
        } else {
            ((index + 1) << POSITION_BITS) - 1
        }
    }
}

openraft::declare_raft_types!(
    /// Corral's Raft types: log entries carry a [`Batch`] of txns; members are addressed by
    /// their gRPC address.
    pub TypeConfig:
        D = Batch,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = Runtime,
);

/// Real tokio normally; madsim's tasks, clock and randomness in the simulator.
#[cfg(not(madsim))]
pub type Runtime = openraft::TokioRuntime;
#[cfg(madsim)]
pub type Runtime = crate::rt::SimRuntime;

pub type NodeId = u64;
pub type Node = openraft::BasicNode;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Raft = openraft::Raft<TypeConfig>;
