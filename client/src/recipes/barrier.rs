//! [`Barrier`] and [`DoubleBarrier`], laid out as kazoo's:
//!
//! - a barrier is a node: it is up while the node exists, and waiters watch
//!   for its deletion;
//! - a double barrier at `<path>` has one ephemeral child `<guid>` per member
//!   inside, and a `ready` child that the last member to enter creates. Leaving
//!   follows ZooKeeper's recipe: the lowest member waits for the highest to
//!   go, the others delete their node and wait for the lowest.

use std::time::Duration;

use tokio::time::Instant;

use super::{check_path, delete_if_exists, ensure_path, guid, join, require_session, retry, until, Backoff};
use crate::{Client, CreateMode, CreateOptions, Error, ErrorCode, EventType};

/// A barrier: processes [`wait`](Barrier::wait) while it is up (its node
/// exists) and proceed once someone [`remove`](Barrier::remove)s it.
///
/// ```no_run
/// # async fn demo(client: corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::Barrier;
/// let gate = Barrier::new(&client, "/barriers/deploy");
/// gate.create().await?;      // the coordinator raises it
/// // ... workers: gate.wait().await?;
/// gate.remove().await?;      // and lets everyone through
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Barrier {
    client: Client,
    path: String,
}

impl Barrier {
    pub fn new(client: &Client, path: &str) -> Barrier {
        Barrier { client: client.clone(), path: path.to_string() }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Raises the barrier (creates its node and missing parents); raising a
    /// raised barrier does nothing.
    pub async fn create(&self) -> Result<(), Error> {
        check_path(&self.path)?;
        ensure_path(&self.client, &self.path).await.map(drop)
    }

    /// Lowers the barrier. False if it was not up.
    pub async fn remove(&self) -> Result<bool, Error> {
        check_path(&self.path)?;
        match retry(None, || self.client.delete(&self.path, None)).await {
            Ok(()) => Ok(true),
            Err(e) if e.code() == ErrorCode::NoNode => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until the barrier is down (returns at once if it is). Needs a
    /// session (for the watch).
    pub async fn wait(&self) -> Result<(), Error> {
        self.wait_until(None).await.map(drop)
    }

    /// Waits at most `timeout`; true if the barrier came down.
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        self.wait_until(Some(Instant::now() + timeout)).await
    }

    async fn wait_until(&self, deadline: Option<Instant>) -> Result<bool, Error> {
        check_path(&self.path)?;
        loop {
            let (stat, changed) = retry(deadline, || self.client.exists_watch(&self.path)).await?;
            if stat.is_none() {
                return Ok(true);
            }
            match until(deadline, changed).await {
                None => return Ok(false),
                Some(Ok(e)) if e.kind == EventType::NodeDeleted => return Ok(true),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
            }
        }
    }
}

/// A double barrier: [`enter`](DoubleBarrier::enter) blocks until `count`
/// members have entered, [`leave`](DoubleBarrier::leave) until all of them
/// have left, so a group starts and finishes a computation together.
///
/// Membership is an ephemeral node of the session: a member whose session
/// ends leaves (and, before the group is complete, no longer counts).
///
/// ```no_run
/// # async fn demo(client: corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::DoubleBarrier;
/// let barrier = DoubleBarrier::new(&client, "/barriers/epoch-7", 3);
/// barrier.enter().await?; // all three are in
/// // ... compute
/// barrier.leave().await?; // all three are done
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct DoubleBarrier {
    client: Client,
    path: String,
    count: usize,
    /// Our member node's name.
    name: String,
    data: Vec<u8>,
}

const READY: &str = "ready";

impl DoubleBarrier {
    /// A member of the double barrier at `path` for `count` members.
    pub fn new(client: &Client, path: &str, count: usize) -> DoubleBarrier {
        DoubleBarrier::with_data(client, path, count, Vec::new())
    }

    /// As [`DoubleBarrier::new`], storing `data` in our member node (kazoo's
    /// `identifier`).
    pub fn with_data(client: &Client, path: &str, count: usize, data: impl Into<Vec<u8>>) -> DoubleBarrier {
        DoubleBarrier { client: client.clone(), path: path.to_string(), count, name: guid(), data: data.into() }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    fn node(&self) -> String {
        join(&self.path, &self.name)
    }

    /// Enters and waits until `count` members have.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a session; SessionExpired.
    pub async fn enter(&self) -> Result<(), Error> {
        self.enter_until(None).await.map(drop)
    }

    /// Enters and waits at most `timeout` for the others; false (and our
    /// member node removed again) if they did not all come.
    pub async fn enter_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        let entered = self.enter_until(Some(Instant::now() + timeout)).await;
        if !matches!(entered, Ok(true)) {
            delete_if_exists(&self.client, &self.node(), None).await?;
        }
        entered
    }

    async fn enter_until(&self, deadline: Option<Instant>) -> Result<bool, Error> {
        check_path(&self.path)?;
        let session_id = require_session(&self.client)?;
        ensure_path(&self.client, &self.path).await?;
        let node = self.node();
        match retry(deadline, || self.client.create(&node, &self.data, CreateOptions::new(CreateMode::Ephemeral))).await {
            Ok(_) => {}
            // Our own earlier attempt (the name is ours alone)?
            Err(e) if e.code() == ErrorCode::NodeExists => match retry(deadline, || self.client.exists(&node)).await? {
                Some(stat) if stat.ephemeral_owner == session_id => {}
                _ => return Err(e),
            },
            Err(e) => return Err(e),
        }
        let ready = join(&self.path, READY);
        let mut pause = Backoff::new();
        loop {
            let (stat, created) = retry(deadline, || self.client.exists_watch(&ready)).await?;
            if stat.is_some() {
                return Ok(true);
            }
            let (members, _) = retry(deadline, || self.client.get_children(&self.path)).await?;
            if members.iter().filter(|m| *m != READY).count() >= self.count {
                match retry(deadline, || self.client.create(&ready, b"", CreateOptions::new(CreateMode::Persistent))).await {
                    Ok(_) => return Ok(true),
                    Err(e) if e.code() == ErrorCode::NodeExists => return Ok(true),
                    Err(e) if !e.is_definite() => {
                        if !pause.wait_until(deadline).await {
                            return Ok(false);
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            match until(deadline, created).await {
                None => return Ok(false),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// Leaves and waits until every member has.
    pub async fn leave(&self) -> Result<(), Error> {
        check_path(&self.path)?;
        let mine = self.node();
        delete_if_exists(&self.client, &join(&self.path, READY), None).await?;
        loop {
            let mut members = match retry(None, || self.client.get_children(&self.path)).await {
                Ok((members, _)) => members,
                Err(e) if e.code() == ErrorCode::NoNode => return Ok(()),
                Err(e) => return Err(e),
            };
            members.retain(|m| m != READY);
            members.sort();
            let (Some(lowest), Some(highest)) = (members.first().cloned(), members.last().cloned()) else {
                return Ok(());
            };
            if members.len() == 1 && lowest == self.name {
                return delete_if_exists(&self.client, &mine, None).await;
            }
            let awaited = if lowest == self.name {
                // The lowest goes last: wait for the highest to leave.
                highest
            } else {
                delete_if_exists(&self.client, &mine, None).await?;
                lowest
            };
            let (stat, gone) = retry(None, || self.client.exists_watch(&join(&self.path, &awaited))).await?;
            if stat.is_some() {
                gone.await?;
            }
        }
    }
}
