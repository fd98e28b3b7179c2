//! openraft's [`RaftLogStorage`] over a [`LogBackend`]: encodes entries with bincode and calls
//! the backend inline.
//!
//! The backend is synchronous. An append writes its entries at once (so replication can read
//! them) and leaves the fsync to a syncer that syncs once for every append queued meanwhile
//! and only then reports them flushed to openraft: the group commit, without stalling Raft's
//! core on the disk. Votes, truncations and purges sync inline.

// openraft's StorageError is large and fixed by its trait signatures.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, RaftLogReader, StorageIOError};

use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::storage::{BackendError, LogBackend};

/// The Raft log of one member. Clones share the backend; a clone is also the log reader the
/// replication tasks use.
#[derive(Clone)]
pub struct LogStore {
    backend: Arc<dyn LogBackend>,
    /// Appends waiting for their sync, in order (see [`Syncer`]).
    flushes: Syncer,
}

impl LogStore {
    /// Must be called inside the runtime (in the simulator it starts the member's flush task).
    pub fn new(backend: Arc<dyn LogBackend>) -> LogStore {
        let flushes = Syncer::start(Arc::downgrade(&backend));
        LogStore { backend, flushes }
    }
}

/// Group commit. `append` writes its entries and hands its callback here; the syncer syncs once
/// for every append queued since its last sync and then acknowledges them, in order. Raft's
/// core goes on (replicating, applying) while the disk syncs, and appends that arrive meanwhile
/// share the next sync. An entry counts toward a quorum only once its callback ran, i.e. after
/// the sync.
///
/// In production the syncer is a thread of its own, blocked in `fdatasync` or waiting for the
/// next append: handing each sync to tokio's blocking pool from a task cost two more wake-ups
/// per sync on the write path, on the leader and on every follower. The simulator, whose disk
/// is memory and which must not start threads, syncs inline in a task.
#[derive(Clone)]
struct Syncer {
    #[cfg(not(madsim))]
    pending: std::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
    #[cfg(madsim)]
    pending: tokio::sync::mpsc::UnboundedSender<LogFlushed<TypeConfig>>,
}

impl Syncer {
    /// A weak handle: the store closes when the member drops its log, not when the syncer ends.
    #[cfg(not(madsim))]
    fn start(backend: std::sync::Weak<dyn LogBackend>) -> Syncer {
        let (pending, queue) = std::sync::mpsc::channel::<LogFlushed<TypeConfig>>();
        let spawned = std::thread::Builder::new().name("corral-log-sync".into()).spawn(move || {
            // Ends when every clone of the store (hence of the sender) is gone.
            while let Ok(first) = queue.recv() {
                let mut batch = vec![first];
                batch.extend(queue.try_iter());
                acknowledge(batch, sync_now(&backend));
            }
        });
        if let Err(e) = spawned {
            // Without the thread every append syncs in `append` itself (see `Syncer::queue`).
            tracing::error!("could not start the log sync thread: {e}");
        }
        Syncer { pending }
    }

    #[cfg(madsim)]
    fn start(backend: std::sync::Weak<dyn LogBackend>) -> Syncer {
        let (pending, mut queue) = tokio::sync::mpsc::unbounded_channel::<LogFlushed<TypeConfig>>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = queue.try_recv() {
                    batch.push(more);
                }
                acknowledge(batch, sync_now(&backend));
            }
        });
        Syncer { pending }
    }

    /// Queues an append's callback for the next sync; gives it back if the syncer is gone.
    fn queue(&self, callback: LogFlushed<TypeConfig>) -> Result<(), LogFlushed<TypeConfig>> {
        self.pending.send(callback).map_err(|unsent| unsent.0)
    }
}

/// One sync for everything queued so far (every callback was queued after its entries were
/// written).
fn sync_now(backend: &std::sync::Weak<dyn LogBackend>) -> Result<(), String> {
    match backend.upgrade() {
        Some(backend) => backend.sync().map_err(|e| e.to_string()),
        None => Err("the log store was closed".to_string()),
    }
}

fn acknowledge(batch: Vec<LogFlushed<TypeConfig>>, result: Result<(), String>) {
    for callback in batch {
        let r = result.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.clone()));
        callback.log_io_completed(r);
    }
}

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: BackendError) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

fn decode(index: u64, bytes: &[u8]) -> Result<Entry, StorageError> {
    let entry: Entry = bincode::deserialize(bytes).map_err(|e| {
        io_err(ErrorSubject::LogIndex(index), ErrorVerb::Read, BackendError::from(e))
    })?;
    if entry.log_id.index != index {
        let e = BackendError::corrupt(format!("entry stored at index {index} has log id {}", entry.log_id));
        return Err(io_err(ErrorSubject::LogIndex(index), ErrorVerb::Read, e));
    }
    Ok(entry)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        let rows = self
            .backend
            .read_range(start, end)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        rows.iter().map(|(index, bytes)| decode(*index, bytes)).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let read = |e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e);
        let last_purged_log_id = self.backend.last_purged().map_err(read)?;
        let last = match self.backend.last_entry().map_err(read)? {
            Some((index, bytes)) => Some(decode(index, &bytes)?.log_id),
            None => None,
        };
        // After a purge of everything, the last log id is the purged one.
        let last_log_id = last.max(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.backend.save_vote(vote).map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.backend.read_vote().map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    // Persisted so that a restarted member re-applies committed entries after its snapshot
    // instead of coming back with a state machine older than what it served before.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.backend
            .save_committed(committed)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    // The leader replicates and commits entries while it syncs them itself (vendor/README.md), so
    // it may have saved a commit index beyond what reached its disk before it crashed. Every
    // entry of its log up to that index was committed (the log is the prefix the commit index was
    // taken from), so the commit point to recover is the lesser of the two; the rest is on a
    // quorum of the others.
    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let read = |e| io_err(ErrorSubject::Store, ErrorVerb::Read, e);
        let committed = self.backend.read_committed().map_err(read)?;
        let last_log_id = self.get_log_state().await?.last_log_id;
        Ok(match (committed, last_log_id) {
            (Some(c), Some(last)) if last.index < c.index => Some(last),
            (Some(_), None) => None,
            (c, _) => c,
        })
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let write = |e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e);
        let batch = entries
            .into_iter()
            .map(|entry| Ok((entry.log_id.index, bincode::serialize(&entry).map_err(BackendError::from)?)))
            .collect::<Result<Vec<_>, BackendError>>()
            .map_err(write)?;
        self.backend.write_entries(&batch).map_err(write)?;
        // Acknowledged by the syncer once synced, together with whatever else is queued.
        if let Err(unsent) = self.flushes.queue(callback) {
            // The syncer is gone (the member is stopping): sync here instead.
            let r = self.backend.sync().map_err(std::io::Error::from);
            unsent.log_io_completed(r);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.backend
            .truncate(log_id.index)
            .map_err(|e| io_err(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.backend
            .purge(log_id)
            .map_err(|e| io_err(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))
    }
}
