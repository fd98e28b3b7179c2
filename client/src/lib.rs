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
//! - `session.rs`: a session's stream to one member, pings, reconnects, the
//!   [`SessionState`] machine, and the rule that holds a reply until the watch
//!   events sent before it have arrived.
//! - `watch.rs`: [`Watch`] and [`WatchStream`], and the client-side table that
//!   routes events to them and re-registers them on reconnect.
//! - [`recipes`]: locks (mutex, read/write, semaphore), leader election,
//!   queues and barriers, one file each, on the public API above.
//!
//! ## Sessions and watches
//!
//! ```no_run
//! # async fn demo(client: corral_client::Client) -> Result<(), corral_client::Error> {
//! use corral_client::{CreateMode, CreateOptions, EventType};
//! client.start_session(10_000).await?;
//! client.create("/lock", b"", CreateOptions::new(CreateMode::Ephemeral)).await?;
//! let (stat, gone) = client.exists_watch("/leader").await?;
//! if stat.is_some() && gone.await?.kind == EventType::NodeDeleted {
//!     // our turn
//! }
//! client.close_session().await?;
//! # Ok(()) }
//! ```
//!
//! See `docs/sessions-and-watches.md` for the guarantees and how they are kept.
//!
//! ## Recipes
//!
//! ```no_run
//! # async fn demo(client: corral_client::Client) -> Result<(), corral_client::Error> {
//! use corral_client::recipes::{Election, Mutex, Queue};
//! client.start_session(10_000).await?;
//! let guard = Mutex::new(&client, "/locks/report").acquire().await?;
//! tokio::select! {
//!     reason = guard.lost() => eprintln!("lost the lock: {reason}"),
//!     () = async { /* write, passing guard.fencing_token() along */ } => {}
//! }
//! guard.release().await?;
//! let leader = Election::new(&client, "/election/api").campaign(b"10.0.0.7".to_vec()).await?;
//! let job = Queue::new(&client, "/queues/jobs").take().await?;
//! job.ack().await?;
//! leader.resign().await?;
//! # Ok(()) }
//! ```
//!
//! See `docs/recipes.md` for each recipe's guarantees and failure behaviour.

mod builder;
mod client;
mod connection;
mod convert;
mod dispatch;
mod error;
mod path;
pub mod recipes;
mod session;
mod types;
mod watch;

pub use builder::{ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};
pub use client::Client;
pub use corral_proto::ErrorCode;
pub use dispatch::Reply;
pub use error::Error;
pub use session::SessionStates;
pub use types::{
    Acl, AddWatchMode, ClusterStatus, CreateMode, CreateOptions, EventType, MemberStatus, Membership, Op,
    OpResult, Role, SessionInfo, SessionState, Stat, WatchedEvent, WatcherType,
};
pub use watch::{Watch, WatchStream};
