//! The gRPC services and the paths between them and Raft.
//!
//! - [`member`]: the write path (propose or forward to the leader) and the read
//!   barrier (catch up to what the client saw, or to a leader read index).
//! - [`data`], [`session`], [`cluster`]: the native client API, one service per file.
//! - [`peer`]: the internal member-to-member service.
//! - [`convert`]: protobuf ↔ tree conversions and the one failure → status mapping.

pub mod cluster;
pub mod convert;
pub mod data;
pub mod member;
pub mod peer;
pub mod session;
pub mod sessions;
