//! The gRPC services and the paths between them and Raft.
//!
//! - [`member`]: the write path (propose or forward to the leader) and the read
//!   barrier (catch up to what the client saw, or to a leader read index).
//! - [`ops`]: what every client front end does with a request (sessions, catch-up, reads
//!   under the tree lock with watch registration), shared by gRPC and the ZooKeeper protocol.
//! - [`sessions`]: the leader's session tracker and sweeps.
//! - [`data`], [`session`], [`cluster`]: the native client API, one service per file.
//! - [`membership`]: adding and removing voters and observers through joint consensus.
//! - [`peer`]: the internal member-to-member service.
//! - [`convert`]: protobuf ↔ tree conversions and the one failure → status mapping.

pub mod cluster;
pub mod convert;
pub mod data;
pub mod member;
pub mod membership;
pub mod ops;
pub mod peer;
pub mod session;
pub mod sessions;
