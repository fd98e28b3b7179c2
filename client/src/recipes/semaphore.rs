//! [`Semaphore`]: N leases, laid out as kazoo's `Semaphore`:
//!
//! - `<path>` holds one ephemeral child `<guid>` per lease in use, and the
//!   number of leases as its data (checked by every handle against its own);
//! - `<path>-__lock__` is a [`Mutex`] that orders the candidates: only its
//!   holder looks at the leases (and watches them while none is free), so the
//!   semaphore is fair and a release wakes one candidate, not all of them.

use std::time::Duration;

use tokio::time::Instant;

use super::mutex::{LockGuard, Wait};
use super::{
    base_name, check_path, delete_if_exists, ensure_path, guid, join, require_session, retry, until, Backoff,
    Held, InFlight, Lost, LostReason, Mutex,
};
use crate::{Client, CreateMode, CreateOptions, Error, ErrorCode};

/// A distributed counting semaphore with `max_leases` leases (kazoo's
/// `Semaphore` layout). Fair: candidates get leases in the order they asked.
///
/// ```no_run
/// # async fn demo(client: corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::Semaphore;
/// let sem = Semaphore::new(&client, "/limits/crawlers", 3);
/// let lease = sem.acquire().await?; // one of 3
/// // ... crawl
/// lease.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    client: Client,
    path: String,
    max_leases: u32,
    data: Vec<u8>,
    lock: Mutex,
}

impl Semaphore {
    /// A semaphore at `path` with `max_leases` leases. Every handle on one
    /// path must agree on the number (the first one to use it stores it).
    pub fn new(client: &Client, path: &str, max_leases: u32) -> Semaphore {
        Semaphore::with_data(client, path, max_leases, Vec::new())
    }

    /// As [`Semaphore::new`], storing `data` in this handle's lease nodes
    /// (what [`Semaphore::lease_holders`] reports).
    pub fn with_data(client: &Client, path: &str, max_leases: u32, data: impl Into<Vec<u8>>) -> Semaphore {
        Semaphore {
            client: client.clone(),
            path: path.to_string(),
            max_leases,
            data: data.into(),
            lock: Mutex::new(client, &format!("{path}-__lock__")),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn max_leases(&self) -> u32 {
        self.max_leases
    }

    /// Waits for a lease.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the semaphore's node says another number
    /// of leases (kazoo's "Inconsistent max leases"), without a session, or
    /// for a bad path; SessionExpired.
    pub async fn acquire(&self) -> Result<Lease, Error> {
        self.take(Wait::Forever)
            .await?
            .ok_or_else(|| Error::InvalidArgument("an acquisition without a deadline gave up".into()))
    }

    /// Waits for a lease for at most `timeout`.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Lease>, Error> {
        self.take(Wait::Until(Instant::now() + timeout)).await
    }

    /// Takes a lease only if one is free and nobody is ahead in line.
    pub async fn try_acquire(&self) -> Result<Option<Lease>, Error> {
        self.take(Wait::No).await
    }

    /// Creates the semaphore node with our number of leases, or checks the
    /// number it already holds.
    async fn ensure(&self) -> Result<(), Error> {
        let ours = self.max_leases.to_string();
        loop {
            let created = retry(None, || {
                self.client.create(&self.path, ours.as_bytes(), CreateOptions::new(CreateMode::Persistent))
            })
            .await;
            match created {
                Ok(_) => return Ok(()),
                Err(e) if e.code() == ErrorCode::NoNode => {
                    let parent = match self.path.rfind('/') {
                        Some(0) | None => "/",
                        Some(i) => &self.path[..i],
                    };
                    ensure_path(&self.client, parent).await?;
                }
                Err(e) if e.code() == ErrorCode::NodeExists => break,
                Err(e) => return Err(e),
            }
        }
        let (data, _) = retry(None, || self.client.get_data(&self.path)).await?;
        // Non-numeric data is somebody else's business (kazoo ignores it too).
        match std::str::from_utf8(&data).ok().and_then(|s| s.trim().parse::<u32>().ok()) {
            Some(theirs) if theirs != self.max_leases => Err(Error::InvalidArgument(format!(
                "inconsistent max leases: {} holds {theirs}, this handle expects {}",
                self.path, self.max_leases
            ))),
            _ => Ok(()),
        }
    }

    async fn take(&self, wait: Wait) -> Result<Option<Lease>, Error> {
        check_path(&self.path)?;
        let session_id = require_session(&self.client)?;
        if self.max_leases == 0 {
            return Err(Error::InvalidArgument("a semaphore needs at least one lease".into()));
        }
        self.ensure().await?;
        let deadline = wait.deadline();
        // Our turn to look at the leases.
        let turn: Option<LockGuard> = match wait {
            Wait::Forever => Some(self.lock.acquire().await?),
            Wait::Until(d) => self.lock.acquire_timeout(d.saturating_duration_since(Instant::now())).await?,
            Wait::No => self.lock.try_acquire().await?,
        };
        let Some(turn) = turn else { return Ok(None) };
        let lease = self.lease(session_id, wait, deadline).await;
        if let Err(e) = turn.release().await {
            tracing::debug!(error = %e, path = %self.path, "releasing the semaphore's lock");
        }
        lease
    }

    /// Holding the semaphore's lock: waits for a free lease and takes it.
    async fn lease(&self, session_id: i64, wait: Wait, deadline: Option<Instant>) -> Result<Option<Lease>, Error> {
        let node = join(&self.path, &guid());
        let mut ambiguous = false;
        let lease = self.try_lease(&node, &mut ambiguous, session_id, wait, deadline).await;
        if ambiguous && !matches!(lease, Ok(Some(_))) {
            // A create whose outcome we never learned may have made the node.
            delete_if_exists(&self.client, &node, None).await?;
        }
        lease
    }

    async fn try_lease(
        &self,
        node: &str,
        ambiguous: &mut bool,
        session_id: i64,
        wait: Wait,
        deadline: Option<Instant>,
    ) -> Result<Option<Lease>, Error> {
        let node = node.to_string();
        let mut pause = Backoff::new();
        loop {
            let (leases, _, changed) = match self.client.get_children_watch(&self.path).await {
                Ok(r) => r,
                Err(e) if !e.is_definite() && pause.wait_until(deadline).await => continue,
                Err(e) => return Err(e),
            };
            if leases.len() < self.max_leases as usize || leases.iter().any(|l| l == base_name(&node)) {
                let mut in_flight = InFlight::new(&self.client, node.clone());
                let created = in_flight.send(self.client.create(&node, &self.data, CreateOptions::new(CreateMode::Ephemeral))).await;
                in_flight.disarm();
                match created {
                    Ok((_, stat)) => return Ok(Some(self.held(node, stat.czxid))),
                    // A create whose outcome we did not learn made it: ours
                    // if our session owns it.
                    Err(e) if e.code() == ErrorCode::NodeExists => {
                        match retry(deadline, || self.client.exists(&node)).await? {
                            Some(stat) if stat.ephemeral_owner == session_id => {
                                return Ok(Some(self.held(node, stat.czxid)))
                            }
                            _ => return Err(e),
                        }
                    }
                    Err(e) if !e.is_definite() => {
                        *ambiguous = true;
                        if !pause.wait_until(deadline).await {
                            return Ok(None);
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            if wait == Wait::No {
                return Ok(None);
            }
            match until(deadline, changed).await {
                None => return Ok(None),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
            }
        }
    }

    fn held(&self, node: String, token: i64) -> Lease {
        Lease { held: Held::start(&self.client, node, token), released: false }
    }

    /// The data of every lease in use, in no particular order.
    pub async fn lease_holders(&self) -> Result<Vec<Vec<u8>>, Error> {
        let leases = match retry(None, || self.client.get_children(&self.path)).await {
            Ok((leases, _)) => leases,
            Err(e) if e.code() == ErrorCode::NoNode => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let replies: Vec<_> = leases.iter().map(|l| self.client.get_data(&join(&self.path, l))).collect();
        let mut out = Vec::new();
        for reply in replies {
            match reply.await {
                Ok((data, _)) => out.push(data),
                Err(e) if e.code() == ErrorCode::NoNode => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

impl std::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semaphore").field("path", &self.path).field("max_leases", &self.max_leases).finish()
    }
}

/// One lease of a [`Semaphore`]: an ephemeral node of the session. Released
/// when dropped (in the background) or by [`Lease::release`].
#[must_use = "the lease is released when dropped"]
pub struct Lease {
    held: Held,
    released: bool,
}

impl Lease {
    /// The lease node's czxid: higher for every later grant (see
    /// [`LockGuard::fencing_token`]).
    pub fn fencing_token(&self) -> i64 {
        self.held.token
    }

    /// The lease node's path.
    pub fn node(&self) -> &str {
        &self.held.path
    }

    /// Resolves when the lease is lost (see [`LostReason`]).
    pub fn lost(&self) -> Lost {
        self.held.lost()
    }

    pub fn lost_reason(&self) -> Option<LostReason> {
        self.held.lost_reason()
    }

    /// Gives the lease back (a node already gone counts as given back).
    pub async fn release(mut self) -> Result<(), Error> {
        self.released = true;
        self.held.delete().await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.held.stop_monitor();
        let client = self.held.client.clone();
        let path = self.held.path.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            drop(rt.spawn(async move {
                if let Err(e) = delete_if_exists(&client, &path, None).await {
                    tracing::debug!(error = %e, %path, "releasing a dropped lease");
                }
            }));
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("node", &self.node()).field("fencing_token", &self.fencing_token()).finish()
    }
}
