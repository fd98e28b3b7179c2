//! [`RwLock`]: a fair distributed read/write lock, laid out as kazoo's
//! `ReadLock`/`WriteLock` pair: readers queue as `<guid>__rlock__<seq>` and are
//! blocked only by earlier writers; writers queue as `<guid>__lock__<seq>` and
//! are blocked by every earlier node. A writer therefore also excludes a
//! kazoo (or Rust) [`Mutex`](super::Mutex) on the same path.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::mutex::{Kind, LockCore, LockGuard, Wait};
use super::guid;
use crate::{Client, Error};

/// Readers: blocked by earlier writers (and exclusive locks) only.
const READ: Kind = Kind { node_name: "__rlock__", blockers: &["__lock__", "lock-"] };
/// Writers: blocked by every earlier reader, writer and exclusive lock.
const WRITE: Kind = Kind { node_name: "__lock__", blockers: &["__lock__", "__rlock__", "lock-"] };

/// A fair distributed read/write lock. Many readers may hold it at once; a
/// writer holds it alone. Requests are granted in arrival order, so a waiting
/// writer holds back the readers that come after it (no writer starvation).
///
/// Both sides are re-entrant per handle, and a handle holding the write lock
/// may take the read lock too (a downgrade: take the read lock, then release
/// the write lock). Upgrading (asking for the write lock while holding only
/// the read lock) waits for the other readers, and deadlocks if another writer
/// queued in between, as with Curator's lock: release the read lock first.
///
/// Guards are [`LockGuard`]s: fencing token, [`LockGuard::lost`], release on
/// drop.
///
/// ```no_run
/// # async fn demo(client: corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::RwLock;
/// let lock = RwLock::new(&client, "/locks/catalog");
/// {
///     let _read = lock.read().await?;
///     // ... read the catalog, alongside other readers
/// }
/// let write = lock.write().await?;
/// // ... rewrite it, alone
/// write.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RwLock {
    read: Arc<LockCore>,
    write: Arc<LockCore>,
    data: Arc<Vec<u8>>,
}

impl RwLock {
    /// A read/write lock at `path` (created on first use). Nothing is sent yet.
    pub fn new(client: &Client, path: &str) -> RwLock {
        RwLock::with_data(client, path, Vec::new())
    }

    /// As [`RwLock::new`], storing `data` in this handle's lock nodes (what
    /// [`RwLock::contenders`] reports; kazoo's `identifier`).
    pub fn with_data(client: &Client, path: &str, data: impl Into<Vec<u8>>) -> RwLock {
        let owner = guid();
        RwLock {
            read: Arc::new(LockCore::with_owner(client, path, READ, owner.clone())),
            write: Arc::new(LockCore::with_owner(client, path, WRITE, owner)),
            data: Arc::new(data.into()),
        }
    }

    pub fn path(&self) -> &str {
        &self.read.dir
    }

    async fn take(&self, core: &Arc<LockCore>, wait: Wait) -> Result<Option<LockGuard>, Error> {
        Ok(core.acquire(&self.data, wait).await?.map(|a| LockGuard::new(core.clone(), a)))
    }

    async fn take_forever(&self, core: &Arc<LockCore>) -> Result<LockGuard, Error> {
        self.take(core, Wait::Forever)
            .await?
            .ok_or_else(|| Error::InvalidArgument("an acquisition without a deadline gave up".into()))
    }

    /// Waits for the read lock.
    ///
    /// # Errors
    /// As [`Mutex::acquire`](super::Mutex::acquire).
    pub async fn read(&self) -> Result<LockGuard, Error> {
        self.take_forever(&self.read).await
    }

    /// Waits for the read lock for at most `timeout`.
    pub async fn read_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        self.take(&self.read, Wait::Until(Instant::now() + timeout)).await
    }

    /// Takes the read lock only if no writer holds it or waits for it.
    pub async fn try_read(&self) -> Result<Option<LockGuard>, Error> {
        self.take(&self.read, Wait::No).await
    }

    /// Waits for the write lock.
    ///
    /// # Errors
    /// As [`Mutex::acquire`](super::Mutex::acquire).
    pub async fn write(&self) -> Result<LockGuard, Error> {
        self.take_forever(&self.write).await
    }

    /// Waits for the write lock for at most `timeout`.
    pub async fn write_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        self.take(&self.write, Wait::Until(Instant::now() + timeout)).await
    }

    /// Takes the write lock only if nobody holds the lock or waits for it.
    pub async fn try_write(&self) -> Result<Option<LockGuard>, Error> {
        self.take(&self.write, Wait::No).await
    }

    /// The data of every reader and writer, in queue order.
    pub async fn contenders(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.write.contenders().await
    }
}

impl std::fmt::Debug for RwLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RwLock").field("path", &self.read.dir).field("owner", &self.read.owner()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn readers_wait_for_writers_and_writers_for_everyone() {
        let client = Client::connect(vec!["127.0.0.1:1".into()]).await.expect("valid endpoint");
        let reader = LockCore::with_owner(&client, "/rw", READ, "me".into());
        let writer = LockCore::with_owner(&client, "/rw", WRITE, "me".into());
        let children = names(&["r1__rlock__0000000001", "w1__lock__0000000002", "r2__rlock__0000000003"]);
        assert_eq!(reader.predecessor(&children, "me__rlock__0000000004"), Some("w1__lock__0000000002"));
        assert_eq!(reader.predecessor(&children, "me__rlock__0000000002"), None);
        assert_eq!(writer.predecessor(&children, "me__lock__0000000004"), Some("r2__rlock__0000000003"));
        // Our own write node does not block our read (a downgrade).
        let own = names(&["me__lock__0000000001", "me__rlock__0000000002"]);
        assert_eq!(reader.predecessor(&own, "me__rlock__0000000002"), None);
    }
}
