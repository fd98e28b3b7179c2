//! [`SledBackend`]: the production [`LogBackend`], one sled database per member.
//!
//! Layout, in `<data_dir>/raft`:
//! - tree `logs`: big-endian index → serialized entry, so key order is index order;
//! - tree `meta`: `vote`, `committed`, `last_purged` (bincode);
//! - tree `snapshot`: `meta` (bincode [`SnapshotMeta`]) and `data` (raw bytes), written in one
//!   atomic batch so a crash never pairs one snapshot's metadata with another's data.
//!
//! Every durable write ends with `Db::flush`, which fsyncs all trees of the database.
//!
//! [`SnapshotMeta`]: crate::raft::types::SnapshotMeta

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{BackendError, LogBackend, Result, StoredSnapshot};
use crate::raft::types::{LogId, SnapshotMeta, Vote};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";
const SNAPSHOT_META: &[u8] = b"meta";
const SNAPSHOT_DATA: &[u8] = b"data";

/// A member's durable store. Cloning shares the database.
#[derive(Clone)]
pub struct SledBackend {
    db: sled::Db,
    logs: sled::Tree,
    meta: sled::Tree,
    snapshot: sled::Tree,
}

impl From<sled::Error> for BackendError {
    fn from(e: sled::Error) -> BackendError {
        match e {
            sled::Error::Io(e) => BackendError::Io(e),
            other => BackendError::Corrupt(format!("sled: {other}")),
        }
    }
}

/// How long [`open_db`] waits for a previous handle's lock to go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the database, waiting briefly for the file lock: sled's background flusher of a handle
/// that was just dropped (a member restarted in the same process) releases the lock a moment
/// later, and opening meanwhile fails with `WouldBlock` (seen as a flaky reopen test).
fn open_db(path: &Path) -> Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new().path(path).open() {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

impl SledBackend {
    /// Opens (or creates) the store in `data_dir`, creating the directory if needed.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<SledBackend> {
        let path = data_dir.as_ref().join("raft");
        std::fs::create_dir_all(&path)?;
        let db = open_db(&path)?;
        let backend = SledBackend {
            logs: db.open_tree("logs")?,
            meta: db.open_tree("meta")?,
            snapshot: db.open_tree("snapshot")?,
            db,
        };
        // A purge records its log id before it deletes entries; finish one cut short by a crash.
        if let Some(upto) = backend.last_purged()? {
            backend.remove_through(upto.index)?;
        }
        Ok(backend)
    }

    fn sync(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.meta.get(key)? {
            Some(bytes) => Ok(Some(bincode::deserialize(&bytes)?)),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, key: &[u8], value: &T) -> Result<()> {
        self.meta.insert(key, bincode::serialize(value)?)?;
        Ok(())
    }

    fn remove_through(&self, upto: u64) -> Result<()> {
        let mut batch = sled::Batch::default();
        for key in self.logs.range(..=upto.to_be_bytes()).keys() {
            batch.remove(key?);
        }
        self.logs.apply_batch(batch)?;
        Ok(())
    }
}

fn index_of(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| BackendError::corrupt("log key is not 8 bytes"))?;
    Ok(u64::from_be_bytes(bytes))
}

impl LogBackend for SledBackend {
    fn save_vote(&self, vote: &Vote) -> Result<()> {
        self.put(VOTE, vote)?;
        self.sync()
    }

    fn read_vote(&self) -> Result<Option<Vote>> {
        self.get(VOTE)
    }

    fn save_committed(&self, committed: Option<LogId>) -> Result<()> {
        self.put(COMMITTED, &committed)
    }

    fn read_committed(&self) -> Result<Option<LogId>> {
        Ok(self.get::<Option<LogId>>(COMMITTED)?.flatten())
    }

    fn write_entries(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (index, bytes) in entries {
            batch.insert(&index.to_be_bytes(), bytes.as_slice());
        }
        self.logs.apply_batch(batch)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        SledBackend::sync(self)
    }

    fn truncate(&self, from: u64) -> Result<()> {
        let mut batch = sled::Batch::default();
        for key in self.logs.range(from.to_be_bytes()..).keys() {
            batch.remove(key?);
        }
        self.logs.apply_batch(batch)?;
        self.sync()
    }

    fn purge(&self, upto: LogId) -> Result<()> {
        self.put(LAST_PURGED, &upto)?;
        self.remove_through(upto.index)?;
        self.sync()
    }

    fn last_purged(&self) -> Result<Option<LogId>> {
        self.get(LAST_PURGED)
    }

    fn read_range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        if start >= end {
            return Ok(vec![]);
        }
        self.logs
            .range(start.to_be_bytes()..end.to_be_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                Ok((index_of(&k)?, v.to_vec()))
            })
            .collect()
    }

    fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>> {
        match self.logs.last()? {
            Some((k, v)) => Ok(Some((index_of(&k)?, v.to_vec()))),
            None => Ok(None),
        }
    }

    fn save_snapshot(&self, snapshot: &StoredSnapshot) -> Result<()> {
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_META, bincode::serialize(&snapshot.meta)?);
        batch.insert(SNAPSHOT_DATA, snapshot.data.as_slice());
        self.snapshot.apply_batch(batch)?;
        self.sync()
    }

    fn load_snapshot(&self) -> Result<Option<StoredSnapshot>> {
        let meta = self.snapshot.get(SNAPSHOT_META)?;
        let data = self.snapshot.get(SNAPSHOT_DATA)?;
        match (meta, data) {
            (Some(meta), Some(data)) => {
                let meta: SnapshotMeta = bincode::deserialize(&meta)?;
                Ok(Some(StoredSnapshot { meta, data: data.to_vec() }))
            }
            (None, None) => Ok(None),
            _ => Err(BackendError::corrupt("snapshot metadata without data, or data without metadata")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, Membership, StoredMembership};

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entries(range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
        range.map(|i| (i, vec![i as u8; 3])).collect()
    }

    #[test]
    fn opening_waits_for_a_previous_handle_to_let_go_of_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = SledBackend::open(dir.path()).unwrap();
        first.append(&entries(1..3)).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(first);
        });
        // Opened while the first handle still holds the lock: waits instead of failing.
        let second = SledBackend::open(dir.path()).unwrap();
        release.join().unwrap();
        assert_eq!(second.read_range(0, u64::MAX).unwrap(), entries(1..3));
    }

    #[test]
    fn reopen_keeps_log_vote_committed_and_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let snap = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: Some(log_id(1, 4)),
                last_membership: StoredMembership::new(Some(log_id(1, 1)), Membership::new(vec![[1].into()], ())),
                snapshot_id: "1-4-0".into(),
            },
            data: vec![9; 1000],
        };
        {
            let b = SledBackend::open(dir.path()).unwrap();
            b.append(&entries(1..11)).unwrap();
            b.save_vote(&Vote::new(3, 1)).unwrap();
            b.save_committed(Some(log_id(1, 9))).unwrap();
            b.purge(log_id(1, 4)).unwrap();
            b.truncate(10).unwrap();
            b.save_snapshot(&snap).unwrap();
        }
        let b = SledBackend::open(dir.path()).unwrap();
        assert_eq!(b.read_vote().unwrap(), Some(Vote::new(3, 1)));
        assert_eq!(b.read_committed().unwrap(), Some(log_id(1, 9)));
        assert_eq!(b.last_purged().unwrap(), Some(log_id(1, 4)));
        assert_eq!(b.read_range(0, u64::MAX).unwrap(), entries(5..10));
        assert_eq!(b.last_entry().unwrap(), Some((9, vec![9; 3])));
        assert_eq!(b.load_snapshot().unwrap(), Some(snap));
    }

    #[test]
    fn empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let b = SledBackend::open(dir.path()).unwrap();
        assert_eq!(b.read_vote().unwrap(), None);
        assert_eq!(b.read_committed().unwrap(), None);
        assert_eq!(b.last_purged().unwrap(), None);
        assert_eq!(b.last_entry().unwrap(), None);
        assert_eq!(b.load_snapshot().unwrap(), None);
        assert_eq!(b.read_range(5, 3).unwrap(), vec![]);
    }

    #[test]
    fn big_endian_keys_order_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let b = SledBackend::open(dir.path()).unwrap();
        b.append(&[(255, vec![1]), (256, vec![2]), (65536, vec![3])]).unwrap();
        assert_eq!(b.last_entry().unwrap(), Some((65536, vec![3])));
        assert_eq!(b.read_range(256, 70000).unwrap(), vec![(256, vec![2]), (65536, vec![3])]);
    }
}
