//! # corral-server
//!
//! One Corral member: a ZooKeeper-style znode tree replicated with openraft over
//! sled, served through Corral's native gRPC API.
//!
//! ## Layout
//! - [`tree`]: the data tree. Pure and synchronous: no I/O, no clock, no async.
//!   Every mutation takes its zxid and time as inputs and returns its result and
//!   the watch events it triggers as values.
//! - [`storage`]: durable log/vote/snapshot storage behind a small trait, with a
//!   sled implementation and an in-memory one with honest fsync semantics.
//! - [`raft`]: the thin openraft adapter: types, log store, state machine, network.
//! - [`api`]: the gRPC services (client API and the internal peer service), and
//!   the read/write paths between them and Raft.
//! - [`watch`]: watches and session connections per member (ZooKeeper's WatchManager).
//! - [`zk`]: the ZooKeeper wire protocol front end and four-letter words.
//! - [`config`]: one configuration type, from TOML and flags, with one validator.
//! - [`server`]: `Server::start` with already-bound listeners, for `main` and tests.
//! - [`testing`]: `TestCluster`, in-process members on loopback for tests.

pub mod api;
pub mod config;
pub mod raft;
pub mod rt;
pub mod server;
pub mod storage;
#[cfg(not(madsim))]
pub mod testing;
pub mod tree;
pub mod watch;
#[cfg(not(madsim))]
pub mod zk;
