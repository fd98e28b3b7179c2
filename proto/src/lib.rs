//! # corral-proto
//!
//! Every wire format Corral speaks, and nothing else: no I/O, no server logic.
//!
//! ## Layout
//! - [`error_code`]: ZooKeeper's error codes with their exact numbers, shared by both APIs.
//! - [`v1`]: the native client API (`proto/corral.proto`): services `Data`, `Session`, `Cluster`.
//! - [`raft`]: the internal member-to-member service (`proto/raft.proto`).
//! - [`status`]: how a ZooKeeper error travels inside a gRPC status, both directions.
//! - [`jute`]: ZooKeeper's own client protocol (jute frames), both directions.

pub mod error_code;
pub mod jute;
pub mod status;

pub use error_code::ErrorCode;

/// The native client API.
pub mod v1 {
    #![allow(clippy::all)]
    tonic::include_proto!("corral.v1");
}

/// The internal member-to-member service.
pub mod raft {
    #![allow(clippy::all)]
    tonic::include_proto!("corral.raft.v1");
}

/// Metadata key carrying the cluster secret on internal calls.
pub const CLUSTER_SECRET_HEADER: &str = "x-corral-cluster-secret";
