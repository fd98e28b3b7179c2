//! [`MemBackend`]: an in-memory [`LogBackend`] with honest fsync semantics, for tests and the
//! simulator (where sled cannot run).
//!
//! It keeps two images: `current`, which reads see, and `durable`, what a power loss would
//! leave. Writes go to `current` and to a journal of unsynced writes; a sync replays the journal
//! onto `durable`. [`MemBackend::crash`] resets `current` to `durable`. Replaying a journal,
//! rather than copying `current`, keeps a sync O(batch) instead of O(log).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{LogBackend, Result, StoredSnapshot};
use crate::raft::types::{LogId, Vote};

/// A cheaply cloneable handle: clones share one store, so a test can keep a handle across a
/// simulated restart of the member that uses it.
#[derive(Clone, Default)]
pub struct MemBackend {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    current: Image,
    durable: Image,
    unsynced: Vec<Write>,
    syncs: u64,
    /// Fault injection: how many of the next syncs fail (see [`MemBackend::fail_syncs`]).
    failing_syncs: u32,
}

#[derive(Clone, Default)]
struct Image {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    // Arc so that a write is copied once, however many images and journal slots hold it.
    logs: BTreeMap<u64, Arc<[u8]>>,
    snapshot: Option<Arc<StoredSnapshot>>,
}

enum Write {
    Vote(Vote),
    Committed(Option<LogId>),
    Append(Vec<(u64, Arc<[u8]>)>),
    Truncate(u64),
    Purge(LogId),
    Snapshot(Arc<StoredSnapshot>),
}

impl State {
    fn sync(&mut self) -> Result<()> {
        if self.failing_syncs > 0 {
            self.failing_syncs -= 1;
            return Err(std::io::Error::other("injected fsync failure").into());
        }
        for w in self.unsynced.drain(..) {
            self.durable.apply(&w);
        }
        self.syncs += 1;
        Ok(())
    }
}

impl Image {
    fn apply(&mut self, write: &Write) {
        match write {
            Write::Vote(v) => self.vote = Some(*v),
            Write::Committed(c) => self.committed = *c,
            Write::Append(entries) => {
                for (index, bytes) in entries {
                    self.logs.insert(*index, bytes.clone());
                }
            }
            Write::Truncate(from) => {
                self.logs.split_off(from);
            }
            Write::Purge(upto) => {
                self.last_purged = Some(*upto);
                self.logs = self.logs.split_off(&(upto.index.saturating_add(1)));
                if upto.index == u64::MAX {
                    self.logs.clear();
                }
            }
            Write::Snapshot(s) => self.snapshot = Some(s.clone()),
        }
    }
}

impl MemBackend {
    pub fn new() -> MemBackend {
        MemBackend::default()
    }

    /// Simulates power loss: everything written since the last sync is gone.
    pub fn crash(&self) {
        let mut st = self.state.lock();
        st.unsynced.clear();
        st.current = st.durable.clone();
    }

    /// Power loss that tears: as [`MemBackend::crash`], except that some of what was written
    /// since the last sync had reached the disk anyway. `below(n)` picks a number in `0..n` (the
    /// simulator passes its seeded generator): how many of the unsynced writes survive, in the
    /// order they were made (the log is append-only), and, when the last survivor is an append of
    /// several entries, how many of them it kept beyond the first (a torn write; a partly written
    /// entry fails its checksum in a real log and is dropped, so entries survive whole).
    pub fn crash_tearing(&self, mut below: impl FnMut(usize) -> usize) {
        let mut st = self.state.lock();
        let st = &mut *st;
        let mut reached = std::mem::take(&mut st.unsynced);
        let survivors = below(reached.len() + 1).min(reached.len());
        reached.truncate(survivors);
        if let Some(Write::Append(entries)) = reached.last_mut() {
            let kept = below(entries.len()).min(entries.len().saturating_sub(1)) + 1;
            entries.truncate(kept);
        }
        for w in &reached {
            st.durable.apply(w);
        }
        st.current = st.durable.clone();
    }

    /// How many durable syncs have happened (one per appended batch, vote, truncate, purge or
    /// snapshot): lets tests check group commit.
    pub fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }

    /// Fault injection: the next `n` syncs (explicit or part of a durable write) fail with an
    /// I/O error. A failed sync makes nothing durable: its writes stay readable but are lost at
    /// the next [`MemBackend::crash`], as after a real fsync error (whose dirty pages the kernel
    /// may already have dropped). The caller must treat the error as fatal.
    pub fn fail_syncs(&self, n: u32) {
        self.state.lock().failing_syncs = n;
    }

    fn write(&self, write: Write, sync: bool) -> Result<()> {
        let mut st = self.state.lock();
        let st = &mut *st;
        st.current.apply(&write);
        st.unsynced.push(write);
        if sync {
            st.sync()?;
        }
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&Image) -> T) -> T {
        f(&self.state.lock().current)
    }
}

impl LogBackend for MemBackend {
    fn save_vote(&self, vote: &Vote) -> Result<()> {
        self.write(Write::Vote(*vote), true)
    }

    fn read_vote(&self) -> Result<Option<Vote>> {
        Ok(self.read(|i| i.vote))
    }

    fn save_committed(&self, committed: Option<LogId>) -> Result<()> {
        self.write(Write::Committed(committed), false)
    }

    fn read_committed(&self) -> Result<Option<LogId>> {
        Ok(self.read(|i| i.committed))
    }

    fn write_entries(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        let entries = entries.iter().map(|(i, b)| (*i, Arc::from(b.as_slice()))).collect();
        self.write(Write::Append(entries), false)
    }

    fn sync(&self) -> Result<()> {
        self.state.lock().sync()
    }

    fn truncate(&self, from: u64) -> Result<()> {
        self.write(Write::Truncate(from), true)
    }

    fn purge(&self, upto: LogId) -> Result<()> {
        self.write(Write::Purge(upto), true)
    }

    fn last_purged(&self) -> Result<Option<LogId>> {
        Ok(self.read(|i| i.last_purged))
    }

    fn read_range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        if start >= end {
            return Ok(vec![]);
        }
        Ok(self.read(|i| i.logs.range(start..end).map(|(k, v)| (*k, v.to_vec())).collect()))
    }

    fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>> {
        Ok(self.read(|i| i.logs.last_key_value().map(|(k, v)| (*k, v.to_vec()))))
    }

    fn save_snapshot(&self, snapshot: &StoredSnapshot) -> Result<()> {
        self.write(Write::Snapshot(Arc::new(snapshot.clone())), true)
    }

    fn load_snapshot(&self) -> Result<Option<StoredSnapshot>> {
        Ok(self.read(|i| i.snapshot.as_deref().cloned()))
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
    fn crash_drops_unsynced_and_keeps_synced() {
        let b = MemBackend::new();
        b.append(&entries(1..4)).unwrap();
        b.save_vote(&Vote::new(2, 1)).unwrap();
        b.save_committed(Some(log_id(1, 3))).unwrap();
        assert_eq!(b.read_committed().unwrap(), Some(log_id(1, 3)));

        // The committed id was never synced: power loss takes it away, nothing else.
        b.crash();
        assert_eq!(b.read_committed().unwrap(), None);
        assert_eq!(b.read_vote().unwrap(), Some(Vote::new(2, 1)));
        assert_eq!(b.read_range(0, 10).unwrap(), entries(1..4));

        // The next sync carries an earlier unsynced write with it.
        b.save_committed(Some(log_id(1, 2))).unwrap();
        b.truncate(3).unwrap();
        b.crash();
        assert_eq!(b.read_committed().unwrap(), Some(log_id(1, 2)));
        assert_eq!(b.read_range(0, 10).unwrap(), entries(1..3));
    }

    #[test]
    fn one_sync_per_appended_batch() {
        let b = MemBackend::new();
        b.append(&entries(1..100)).unwrap();
        assert_eq!(b.sync_count(), 1);
        b.save_committed(Some(log_id(1, 99))).unwrap();
        assert_eq!(b.sync_count(), 1);
    }

    #[test]
    fn a_tearing_crash_keeps_a_prefix_of_the_unsynced_writes() {
        let b = MemBackend::new();
        b.append(&entries(1..3)).unwrap();
        b.write_entries(&entries(3..6)).unwrap();
        b.write_entries(&entries(6..9)).unwrap();
        b.save_committed(Some(log_id(1, 8))).unwrap();
        // Three unsynced writes; the first two reach the disk, the second torn after 2 entries.
        let mut picks = vec![2, 1].into_iter();
        b.crash_tearing(|n| {
            let pick = picks.next().unwrap();
            assert!(pick < n);
            pick
        });
        let indexes: Vec<u64> = b.read_range(0, 100).unwrap().into_iter().map(|(i, _)| i).collect();
        assert_eq!(indexes, vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(b.read_committed().unwrap(), None, "the commit write came later: lost");
        // What survived is durable now; nothing more is lost at the next crash.
        b.crash();
        assert_eq!(b.read_range(0, 100).unwrap().len(), 7);
        // Nothing reached the disk: the same as a plain crash.
        b.write_entries(&entries(8..10)).unwrap();
        b.crash_tearing(|_| 0);
        assert_eq!(b.read_range(0, 100).unwrap().len(), 7);
    }

    #[test]
    fn clones_share_the_store() {
        let a = MemBackend::new();
        let b = a.clone();
        a.append(&entries(1..3)).unwrap();
        b.crash();
        assert_eq!(a.last_entry().unwrap(), Some((2, vec![2; 3])));
    }

    #[test]
    fn purge_truncate_and_ranges() {
        let b = MemBackend::new();
        b.append(&entries(1..11)).unwrap();
        b.purge(log_id(1, 4)).unwrap();
        assert_eq!(b.last_purged().unwrap(), Some(log_id(1, 4)));
        assert_eq!(b.read_range(0, 7).unwrap(), entries(5..7));
        b.truncate(8).unwrap();
        assert_eq!(b.last_entry().unwrap(), Some((7, vec![7; 3])));
        assert_eq!(b.read_range(6, 6).unwrap(), vec![]);
        b.purge(log_id(1, 20)).unwrap();
        assert_eq!(b.last_entry().unwrap(), None);
    }

    #[test]
    fn an_injected_sync_failure_makes_nothing_durable() {
        let b = MemBackend::new();
        b.append(&entries(1..3)).unwrap();
        b.fail_syncs(1);
        assert!(b.append(&entries(3..5)).is_err());
        // Readable until the crash, then gone; the next sync works again.
        assert_eq!(b.read_range(0, 10).unwrap(), entries(1..5));
        b.crash();
        assert_eq!(b.read_range(0, 10).unwrap(), entries(1..3));
        b.save_vote(&Vote::new(3, 1)).unwrap();
        b.crash();
        assert_eq!(b.read_vote().unwrap(), Some(Vote::new(3, 1)));
    }

    #[test]
    fn snapshot_is_durable() {
        let b = MemBackend::new();
        let snap = StoredSnapshot {
            meta: crate::raft::types::SnapshotMeta {
                last_log_id: Some(log_id(1, 5)),
                last_membership: StoredMembership::new(Some(log_id(1, 1)), Membership::new(vec![[1].into()], ())),
                snapshot_id: "1-5-0".into(),
            },
            data: vec![1, 2, 3],
        };
        b.save_snapshot(&snap).unwrap();
        b.crash();
        assert_eq!(b.load_snapshot().unwrap(), Some(snap));
    }
}
