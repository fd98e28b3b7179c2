//! Durable storage for one member: everything Raft must keep across a crash.
//!
//! [`LogBackend`] is deliberately small and synchronous (plain functions, no async): the Raft
//! adapter in [`crate::raft::log_store`] and [`crate::raft::state_machine`] does the encoding
//! and calls it inline. Three implementations:
//!
//! - [`FileBackend`]: production default, the log as append-only segment files synced with one
//!   `fdatasync` per group commit, vote and snapshot in atomically replaced files.
//! - [`SledBackend`]: one sled database in the member's data directory (`storage = "sled"`).
//!   Not compiled under `cfg(madsim)`, because sled starts OS threads, which the simulator
//!   forbids; neither is the file store, whose I/O the simulator cannot intercept.
//! - [`MemBackend`]: in memory with honest fsync semantics: a write becomes durable only at the
//!   next sync, and [`MemBackend::crash`] throws away everything that was not.
//!
//! ## Durability contract
//!
//! Every method that says "durable" returns only once its write (and every write before it)
//! survives power loss; that is what lets a member acknowledge an append to the leader. Writes
//! are applied in call order and a sync covers all earlier writes, so after a crash the store
//! holds a prefix of the write history. [`LogBackend::save_committed`] alone is not synced: it
//! rides along with the next sync, and losing it only means replaying from the snapshot.

#[cfg(not(madsim))]
mod file;
mod mem;
#[cfg(not(madsim))]
mod sled;

#[cfg(not(madsim))]
pub use file::FileBackend;
pub use mem::MemBackend;
#[cfg(not(madsim))]
pub use self::sled::SledBackend;

use crate::raft::types::{LogId, SnapshotMeta, Vote};

/// A storage failure. Only I/O and corruption: every one of them is fatal to the member.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt storage: {0}")]
    Corrupt(String),
}

impl BackendError {
    pub fn corrupt(what: impl std::fmt::Display) -> BackendError {
        BackendError::Corrupt(what.to_string())
    }
}

impl From<bincode::Error> for BackendError {
    fn from(e: bincode::Error) -> BackendError {
        BackendError::Corrupt(format!("undecodable record: {e}"))
    }
}

impl From<BackendError> for std::io::Error {
    fn from(e: BackendError) -> std::io::Error {
        match e {
            BackendError::Io(e) => e,
            BackendError::Corrupt(msg) => std::io::Error::new(std::io::ErrorKind::InvalidData, msg),
        }
    }
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// The latest snapshot as stored: openraft's metadata and the opaque snapshot bytes (the
/// state machine's envelope), exactly what is sent to a lagging follower.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredSnapshot {
    pub meta: SnapshotMeta,
    // One block, not byte by byte (the same bytes in bincode): a snapshot may be a hundred MiB.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Everything Raft persists, as synchronous calls. Log entries are opaque bytes keyed by their
/// index; the caller serializes them.
pub trait LogBackend: Send + Sync + 'static {
    /// Durable.
    fn save_vote(&self, vote: &Vote) -> Result<()>;
    fn read_vote(&self) -> Result<Option<Vote>>;

    /// Not synced on its own (see the module doc): a lost committed id is safe, a missing one
    /// only costs replay.
    fn save_committed(&self, committed: Option<LogId>) -> Result<()>;
    fn read_committed(&self) -> Result<Option<LogId>>;

    /// Stores a batch of `(index, serialized entry)` with ONE durable sync for the whole batch.
    /// Indexes are consecutive and continue the log.
    fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        self.write_entries(entries)?;
        self.sync()
    }
    /// Stores entries as [`LogBackend::append`] does, but not durably: readable at once, durable
    /// at the next [`LogBackend::sync`] (or any other durable write).
    fn write_entries(&self, entries: &[(u64, Vec<u8>)]) -> Result<()>;
    /// Makes every earlier write durable. Several `write_entries` calls share one sync: this is
    /// Corral's group commit.
    fn sync(&self) -> Result<()>;
    /// Durably removes every entry with index >= `from`.
    fn truncate(&self, from: u64) -> Result<()>;
    /// Durably removes every entry with index <= `upto.index` and records `upto` as the last
    /// purged log id.
    fn purge(&self, upto: LogId) -> Result<()>;
    fn last_purged(&self) -> Result<Option<LogId>>;
    /// The entries with `start <= index < end`, in index order.
    fn read_range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>>;
    /// The entry with the highest index, if any is present.
    fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>>;

    /// Durably replaces the stored snapshot.
    fn save_snapshot(&self, snapshot: &StoredSnapshot) -> Result<()>;
    fn load_snapshot(&self) -> Result<Option<StoredSnapshot>>;
}
