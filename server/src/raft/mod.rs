//! The thin adapter between openraft and the data tree.
//!
//! - [`types`]: the openraft type configuration.
//! - [`log_store`]: openraft's `RaftLogStorage` over a [`crate::storage::LogBackend`].
//! - [`state_machine`]: openraft's `RaftStateMachine`: decode entry → tree.apply.
//! - [`network`]: openraft's `RaftNetwork`: AppendEntries over [`link`], the rest over gRPC.
//! - [`link`]: plain TCP links between members for AppendEntries and forwarded writes.

pub mod link;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;

pub use types::*;
