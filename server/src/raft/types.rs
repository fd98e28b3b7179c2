//! The openraft type configuration: what Corral's log carries.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::tree::{Txn, TxnResult};

/// What the state machine returns to the member that proposed an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub result: TxnResult,
}

openraft::declare_raft_types!(
    /// Corral's Raft types: log entries carry a [`Txn`]; members are addressed by
    /// their gRPC address.
    pub TypeConfig:
        D = Txn,
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
