//! The thin adapter between openraft and the data tree.
//!
//! - [`types`]: the openraft type configuration.
//! - [`log_store`]: openraft's `RaftLogStorage` over a [`crate::storage::LogBackend`].
//! - [`state_machine`]: openraft's `RaftStateMachine`: decode entry → tree.apply.
//! - [`network`]: openraft's `RaftNetwork` over the internal gRPC service.

pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;

pub use types::*;
