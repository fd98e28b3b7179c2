//! # corral-client
//!
//! The async Rust client for a Corral ensemble, and the `corral` CLI built on it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), corral_client::Error> {
//! use corral_client::{Client, CreateMode, CreateOptions};
//! let client = Client::connect(vec!["127.0.0.1:7001".into(), "127.0.0.1:7002".into()]).await?;
//! let (path, _stat) = client.create("/app", b"v1", CreateOptions::new(CreateMode::Persistent)).await?;
//! let (data, stat) = client.get_data(&path).await?;
//! client.set_data(&path, b"v2", Some(stat.version)).await?;
//! # let _ = data; Ok(()) }
//! ```
//!
//! ## Layout
//! - [`Client`] (`client.rs`): one method per operation; each queues its request
//!   when called and returns a [`Reply`] to await, so call order is send order.
//! - `builder.rs`: [`ClientBuilder`], endpoints and timeouts.
//! - `connection.rs`: one connection per member, failover between them, and the
//!   retry rules that decide whether an error proves an operation did not happen.
//! - `dispatch.rs`: the per-client task that starts requests in call order.
//! - [`Error`] (`error.rs`): ZooKeeper's codes plus the transport failures.
//! - `types.rs`: [`Stat`], [`Acl`], [`CreateMode`], [`Op`]/[`OpResult`], [`ClusterStatus`].
//! - `convert.rs`: every conversion to and from the wire types, in one place.
//! - `path.rs`: ZooKeeper's client-side path validation.

mod builder;
mod client;
mod connection;
mod convert;
mod dispatch;
mod error;
mod path;
mod types;

pub use builder::{ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};
pub use client::Client;
pub use corral_proto::ErrorCode;
pub use dispatch::Reply;
pub use error::Error;
pub use types::{
    Acl, ClusterStatus, CreateMode, CreateOptions, MemberStatus, Op, OpResult, Role,
    SessionInfo, Stat,
};
