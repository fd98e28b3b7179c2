//! openraft's [`RaftLogStorage`] over a [`LogBackend`]: encodes entries with bincode and calls
//! the backend inline.
//!
//! The backend is synchronous and an append blocks for one fsync. That is done inline rather
//! than on a blocking thread pool: the Raft core awaits every log write in order anyway, and
//! inline calls stay deterministic under the simulator.

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
}

impl LogStore {
    pub fn new(backend: Arc<dyn LogBackend>) -> LogStore {
        LogStore { backend }
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

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.backend.read_committed().map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))
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
        // One durable sync for everything openraft handed us: the group commit.
        self.backend.append(&batch).map_err(write)?;
        callback.log_io_completed(Ok(()));
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
