//! [`FileBackend`]: the Raft log as append-only segment files, synced with one `fdatasync` per
//! group commit.
//!
//! Why not sled for the log: a Raft log is written at its tail, read near its tail, cut at its
//! tail (truncate) or its head (purge), and synced constantly. sled's `flush` writes through its
//! page cache and IO-buffer threads; measured here it capped a single member at about 3,000
//! durable writes per second with its threads busy, while this file took a sync in the time of
//! one `fdatasync` (see bench/CHANGES.md).
//!
//! Layout in `<data_dir>/log/`:
//! - `<first index, 20 digits>.seg`: records `[len u32][crc32 u32][index u64][entry bytes]`,
//!   big-endian, crc over index and bytes. A segment is closed at [`SEGMENT_BYTES`] and a new one
//!   begins with the next entry. A record whose length has its top bit set is not an entry but
//!   the committed log id (index field 0, bincode body), written before a sync when it moved,
//!   so it rides along with the group commit at no extra fsync.
//! - `meta`: vote, last purged log id and the last saved committed id, replaced atomically
//!   (write a temporary file, fsync it, rename, fsync the directory).
//! - `snapshot`: the latest snapshot, replaced the same way.
//!
//! Recovery reads every segment, checks each record's crc and that indexes follow each other,
//! and cuts the last segment at its first bad record: a write torn by a crash was never synced,
//! so never acknowledged. A bad record anywhere else is corruption, reported, never skipped.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{BackendError, LogBackend, Result, StoredSnapshot};
use crate::raft::types::{LogId, Vote};

/// A segment is closed once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
const HEADER: usize = 16;
/// Marks a committed-id record in the length field.
const COMMITTED_FLAG: u32 = 0x8000_0000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    vote: Option<Vote>,
    last_purged: Option<LogId>,
    committed: Option<LogId>,
}

/// Where an entry lives.
#[derive(Debug, Clone, Copy)]
struct Location {
    segment: u64,
    offset: u64,
    len: u32,
}

struct Segment {
    /// Shared so a sync can run without holding the state lock.
    file: Arc<File>,
    size: u64,
}

struct State {
    meta: Meta,
    /// Open segments by first index.
    segments: BTreeMap<u64, Segment>,
    /// Every entry present, by index.
    index: BTreeMap<u64, Location>,
    /// Segments written since the last sync (usually only the tail).
    dirty: Vec<u64>,
    /// A segment was created or deleted since the last directory sync.
    dir_dirty: bool,
    /// The committed id was saved since it was last written to a segment.
    committed_dirty: bool,
}

pub struct FileBackend {
    dir: PathBuf,
    state: Mutex<State>,
}

fn corrupt(what: impl std::fmt::Display) -> BackendError {
    BackendError::corrupt(what)
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Replaces `dir/name` with `bytes` atomically and durably.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    write_atomically_with(dir, name, |w| Ok(w.write_all(bytes)?))
}

/// Replaces `dir/name` atomically and durably with what `write` writes. The file reaches the
/// disk a few MiB at a time ([`SyncingWriter`]).
fn write_atomically_with(dir: &Path, name: &str, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut out = std::io::BufWriter::with_capacity(1 << 20, SyncingWriter { file: File::create(&tmp)?, unsynced: 0 });
    write(&mut out)?;
    let f = out.into_inner().map_err(|e| e.into_error())?.file;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Bytes a [`SyncingWriter`] lets pile up before it syncs them.
const SYNC_EVERY_BYTES: usize = 4 << 20;

/// Writes through to a file and syncs it every few MiB. A snapshot of a big tree is a hundred
/// MiB; flushed by one final fsync, all of it reaches the disk's queue at once and the log's
/// small fsyncs wait behind it. Small flushes let them in between.
struct SyncingWriter {
    file: File,
    unsynced: usize,
}

impl Write for SyncingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A large buffer (a snapshot's bytes come as one slice) is written a piece at a time.
        let room = SYNC_EVERY_BYTES - self.unsynced;
        let n = self.file.write(&buf[..buf.len().min(room)])?;
        self.unsynced += n;
        if self.unsynced >= SYNC_EVERY_BYTES {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn record(index: u64, bytes: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let len = u32::try_from(bytes.len()).ok().filter(|l| l & COMMITTED_FLAG == 0).ok_or_else(|| corrupt("log entry over 2 GiB"))?;
    frame(len, index, bytes, out);
    Ok(())
}

fn frame(len: u32, index: u64, bytes: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&index.to_be_bytes());
    crc.update(bytes);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// What one segment holds.
struct Scanned {
    entries: Vec<(u64, Location)>,
    /// The last committed-id record, if any.
    committed: Option<Option<LogId>>,
    /// The length of the valid prefix.
    valid: u64,
}

/// Reads one segment's records up to the first bad one.
fn scan(segment: u64, data: &[u8], mut expect: Option<u64>) -> Scanned {
    let mut out = Scanned { entries: Vec::new(), committed: None, valid: 0 };
    let mut pos = 0usize;
    while data.len() - pos >= HEADER {
        let word = |at: usize| u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let (raw_len, crc) = (word(pos), word(pos + 4));
        let index = (u64::from(word(pos + 8)) << 32) | u64::from(word(pos + 12));
        let len = (raw_len & !COMMITTED_FLAG) as usize;
        let Some(body) = data.get(pos + HEADER..pos + HEADER + len) else { break };
        let mut h = crc32fast::Hasher::new();
        h.update(&index.to_be_bytes());
        h.update(body);
        if h.finalize() != crc {
            break;
        }
        if raw_len & COMMITTED_FLAG != 0 {
            match bincode::deserialize::<Option<LogId>>(body) {
                Ok(c) => out.committed = Some(c),
                Err(_) => break,
            }
        } else {
            if expect.is_some_and(|e| e != index) {
                break;
            }
            out.entries.push((index, Location { segment, offset: (pos + HEADER) as u64, len: len as u32 }));
            expect = Some(index + 1);
        }
        pos += HEADER + len;
    }
    out.valid = pos as u64;
    out
}

impl FileBackend {
    /// Opens (or creates) the log in `data_dir/log`, recovering from a crash as described above.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<FileBackend> {
        let dir = data_dir.as_ref().join("log");
        std::fs::create_dir_all(&dir)?;
        let mut meta: Meta = match read_optional(&dir.join("meta"))? {
            Some(b) => bincode::deserialize(&b)?,
            None => Meta::default(),
        };
        let mut firsts = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name().to_string_lossy().to_string();
            if let Some(stem) = name.strip_suffix(".seg") {
                firsts.push(stem.parse::<u64>().map_err(|_| corrupt(format!("segment name {name}")))?);
            }
        }
        firsts.sort_unstable();
        let mut segments = BTreeMap::new();
        let mut index = BTreeMap::new();
        let mut expect: Option<u64> = None;
        let mut committed: Option<Option<LogId>> = None;
        for (i, &first) in firsts.iter().enumerate() {
            let path = segment_path(&dir, first);
            let mut data = Vec::new();
            File::open(&path)?.read_to_end(&mut data)?;
            let Scanned { entries: records, committed: saved_committed, valid } =
                scan(first, &data, expect.or(Some(first)));
            if saved_committed.is_some() {
                committed = saved_committed;
            }
            let last_segment = i + 1 == firsts.len();
            if valid < data.len() as u64 {
                if !last_segment {
                    return Err(corrupt(format!("{} is damaged at byte {valid}", path.display())));
                }
                // The torn tail of the last write, which was never synced.
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(valid)?;
                f.sync_all()?;
            }
            if records.is_empty() && last_segment {
                std::fs::remove_file(&path)?;
                sync_dir(&dir)?;
                continue;
            }
            expect = records.last().map(|(i, _)| i + 1).or(expect);
            index.extend(records);
            let file = Arc::new(OpenOptions::new().read(true).write(true).open(&path)?);
            segments.insert(first, Segment { file, size: valid });
        }
        if let Some(c) = committed {
            meta.committed = meta.committed.max(c);
        }
        // Entries a purge had covered but whose segment outlived it.
        if let Some(p) = meta.last_purged {
            index = index.split_off(&(p.index + 1));
        }
        let backend = FileBackend {
            dir,
            state: Mutex::new(State { meta, segments, index, dirty: Vec::new(), dir_dirty: false, committed_dirty: false }),
        };
        Ok(backend)
    }

    fn save_meta(&self, st: &State) -> Result<()> {
        write_atomically(&self.dir, "meta", &bincode::serialize(&st.meta)?)
    }

    /// Syncs every segment written since the last sync, and the directory if segments came or
    /// went. Under the state lock; [`LogBackend::sync`] does the same without holding it.
    fn sync_state(&self, st: &mut State) -> Result<()> {
        let (files, dir) = Self::take_unsynced(st)?;
        self.sync_files(&files, dir)
    }

    /// Appends the committed id to the tail segment if it moved (not synced).
    fn write_committed(st: &mut State) -> Result<()> {
        if !std::mem::take(&mut st.committed_dirty) {
            return Ok(());
        }
        let Some((&first, seg)) = st.segments.iter_mut().next_back() else { return Ok(()) };
        let body = bincode::serialize(&st.meta.committed)?;
        let mut buf = Vec::with_capacity(HEADER + body.len());
        frame(body.len() as u32 | COMMITTED_FLAG, 0, &body, &mut buf);
        seg.file.write_all_at(&buf, seg.size)?;
        seg.size += buf.len() as u64;
        if !st.dirty.contains(&first) {
            st.dirty.push(first);
        }
        Ok(())
    }

    fn take_unsynced(st: &mut State) -> Result<(Vec<Arc<File>>, bool)> {
        Self::write_committed(st)?;
        let files = std::mem::take(&mut st.dirty)
            .into_iter()
            .filter_map(|first| st.segments.get(&first).map(|s| s.file.clone()))
            .collect();
        Ok((files, std::mem::take(&mut st.dir_dirty)))
    }

    fn sync_files(&self, files: &[Arc<File>], dir: bool) -> Result<()> {
        for f in files {
            f.sync_data()?;
        }
        if dir {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Removes entries >= `from` from the files and the index (not synced).
    fn cut_tail(&self, st: &mut State, from: u64) -> Result<()> {
        let Some(first_removed) = st.index.range(from..).next().map(|(_, l)| *l) else { return Ok(()) };
        st.index.split_off(&from);
        let later: Vec<u64> = st.segments.range(first_removed.segment + 1..).map(|(k, _)| *k).collect();
        for first in later {
            st.segments.remove(&first);
            std::fs::remove_file(segment_path(&self.dir, first))?;
            st.dir_dirty = true;
        }
        let new_size = first_removed.offset - HEADER as u64;
        if new_size == 0 {
            st.segments.remove(&first_removed.segment);
            std::fs::remove_file(segment_path(&self.dir, first_removed.segment))?;
            st.dir_dirty = true;
        } else if let Some(seg) = st.segments.get_mut(&first_removed.segment) {
            seg.file.set_len(new_size)?;
            seg.size = new_size;
            if !st.dirty.contains(&first_removed.segment) {
                st.dirty.push(first_removed.segment);
            }
        }
        Ok(())
    }
}

impl LogBackend for FileBackend {
    fn save_vote(&self, vote: &Vote) -> Result<()> {
        let mut st = self.state.lock();
        st.meta.vote = Some(*vote);
        self.sync_state(&mut st)?;
        self.save_meta(&st)
    }

    fn read_vote(&self) -> Result<Option<Vote>> {
        Ok(self.state.lock().meta.vote)
    }

    fn save_committed(&self, committed: Option<LogId>) -> Result<()> {
        // Written into the tail segment by the next sync (see the module doc).
        let mut st = self.state.lock();
        if st.meta.committed != committed {
            st.meta.committed = committed;
            st.committed_dirty = true;
        }
        Ok(())
    }

    fn read_committed(&self) -> Result<Option<LogId>> {
        Ok(self.state.lock().meta.committed)
    }

    fn write_entries(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        let Some(&(first, _)) = entries.first() else { return Ok(()) };
        let mut st = self.state.lock();
        let st = &mut *st;
        if st.index.range(first..).next().is_some() {
            // Overwriting a conflicting tail: cut it first (made durable by the next sync).
            self.cut_tail(st, first)?;
        }
        let mut buf = Vec::with_capacity(entries.iter().map(|(_, b)| b.len() + HEADER).sum());
        let mut at = 0usize;
        while at < entries.len() {
            // The tail segment, or a new one when there is none or it is full.
            let tail = st.segments.iter().next_back().filter(|(_, s)| s.size < SEGMENT_BYTES).map(|(k, _)| *k);
            let seg_first = match tail {
                Some(k) => k,
                None => {
                    let k = entries[at].0;
                    let path = segment_path(&self.dir, k);
                    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
                    st.segments.insert(k, Segment { file: Arc::new(file), size: 0 });
                    st.dir_dirty = true;
                    k
                }
            };
            buf.clear();
            let seg = st.segments.get_mut(&seg_first).ok_or_else(|| corrupt("segment vanished"))?;
            let start = seg.size;
            let mut locations = Vec::new();
            while at < entries.len() && start + (buf.len() as u64) < SEGMENT_BYTES {
                let (index, bytes) = &entries[at];
                record(*index, bytes, &mut buf)?;
                let offset = start + (buf.len() - bytes.len()) as u64;
                locations.push((*index, Location { segment: seg_first, offset, len: bytes.len() as u32 }));
                at += 1;
            }
            seg.file.write_all_at(&buf, start)?;
            seg.size += buf.len() as u64;
            st.index.extend(locations);
            if !st.dirty.contains(&seg_first) {
                st.dirty.push(seg_first);
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        // The fdatasync runs without the lock, so appends (on Raft's core) go on meanwhile;
        // what they write is marked dirty again and covered by the next sync.
        let (files, dir) = Self::take_unsynced(&mut self.state.lock())?;
        self.sync_files(&files, dir)
    }

    fn truncate(&self, from: u64) -> Result<()> {
        let mut st = self.state.lock();
        self.cut_tail(&mut st, from)?;
        self.sync_state(&mut st)
    }

    fn purge(&self, upto: LogId) -> Result<()> {
        let mut st = self.state.lock();
        let st = &mut *st;
        st.meta.last_purged = Some(upto);
        self.sync_state(st)?;
        // Recorded first: a crash between the two leaves entries that reopening drops.
        self.save_meta(st)?;
        st.index = st.index.split_off(&(upto.index + 1));
        // Whole segments before the first kept entry go; the one holding it stays.
        let keep_from = st.index.values().next().map(|l| l.segment).unwrap_or(u64::MAX);
        let doomed: Vec<u64> = st.segments.range(..keep_from).map(|(k, _)| *k).collect();
        for first in doomed {
            // With nothing left, the tail goes too: the next append starts a new segment.
            st.segments.remove(&first);
            std::fs::remove_file(segment_path(&self.dir, first))?;
            st.dir_dirty = true;
        }
        self.sync_state(st)
    }

    fn last_purged(&self) -> Result<Option<LogId>> {
        Ok(self.state.lock().meta.last_purged)
    }

    fn read_range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        if start >= end {
            return Ok(vec![]);
        }
        let st = self.state.lock();
        st.index
            .range(start..end)
            .map(|(&i, loc)| {
                let seg = st.segments.get(&loc.segment).ok_or_else(|| corrupt(format!("segment of entry {i} missing")))?;
                let mut bytes = vec![0u8; loc.len as usize];
                seg.file.read_exact_at(&mut bytes, loc.offset)?;
                Ok((i, bytes))
            })
            .collect()
    }

    fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let last = self.state.lock().index.keys().next_back().copied();
        match last {
            Some(i) => Ok(self.read_range(i, i + 1)?.pop()),
            None => Ok(None),
        }
    }

    fn save_snapshot(&self, snapshot: &StoredSnapshot) -> Result<()> {
        // Durable writes cover every earlier write (the contract), so sync the log first.
        self.sync()?;
        // Streamed: no second copy of a snapshot that may be a hundred MiB.
        write_atomically_with(&self.dir, "snapshot", |w| Ok(bincode::serialize_into(w, snapshot)?))
    }

    fn load_snapshot(&self) -> Result<Option<StoredSnapshot>> {
        match read_optional(&self.dir.join("snapshot"))? {
            Some(b) => Ok(Some(bincode::deserialize(&b)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entries(range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
        range.map(|i| (i, vec![i as u8; (i % 7) as usize + 1])).collect()
    }

    fn indexes(b: &FileBackend) -> Vec<u64> {
        b.read_range(0, u64::MAX).unwrap().into_iter().map(|(i, _)| i).collect()
    }

    #[test]
    fn a_snapshot_larger_than_a_sync_step_is_stored_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..SYNC_EVERY_BYTES * 2 + 12345).map(|i| (i % 251) as u8).collect();
        let meta = crate::raft::types::SnapshotMeta {
            last_log_id: Some(log_id(2, 9)),
            last_membership: Default::default(),
            snapshot_id: "2-9-0".into(),
        };
        let snapshot = StoredSnapshot { meta, data };
        FileBackend::open(dir.path()).unwrap().save_snapshot(&snapshot).unwrap();
        // The same bytes bincode gives for the whole record at once.
        let on_disk = std::fs::read(dir.path().join("log").join("snapshot")).unwrap();
        assert_eq!(on_disk, bincode::serialize(&snapshot).unwrap());
        assert_eq!(FileBackend::open(dir.path()).unwrap().load_snapshot().unwrap(), Some(snapshot));
    }

    #[test]
    fn reopen_keeps_synced_entries_vote_and_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = FileBackend::open(dir.path()).unwrap();
            b.append(&entries(1..50)).unwrap();
            b.save_vote(&Vote::new(3, 2)).unwrap();
            b.save_committed(Some(log_id(3, 40))).unwrap();
            b.purge(log_id(1, 10)).unwrap();
        }
        let b = FileBackend::open(dir.path()).unwrap();
        assert_eq!(indexes(&b), (11..50).collect::<Vec<_>>());
        assert_eq!(b.read_range(20, 21).unwrap(), entries(20..21));
        assert_eq!(b.read_vote().unwrap(), Some(Vote::new(3, 2)));
        assert_eq!(b.last_purged().unwrap(), Some(log_id(1, 10)));
        assert_eq!(b.read_committed().unwrap(), Some(log_id(3, 40)));
        assert_eq!(b.last_entry().unwrap(), Some((49, entries(49..50)[0].1.clone())));
    }

    #[test]
    fn the_committed_id_rides_along_with_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = FileBackend::open(dir.path()).unwrap();
            b.append(&entries(1..10)).unwrap();
            b.save_committed(Some(log_id(1, 5))).unwrap();
            b.write_entries(&entries(10..12)).unwrap();
            b.sync().unwrap();
            b.save_committed(Some(log_id(1, 9))).unwrap();
            // Not synced: may be lost, never harmful.
        }
        let b = FileBackend::open(dir.path()).unwrap();
        assert_eq!(b.read_committed().unwrap(), Some(log_id(1, 5)));
        assert_eq!(indexes(&b), (1..12).collect::<Vec<_>>());
        b.save_committed(Some(log_id(1, 11))).unwrap();
        b.sync().unwrap();
        drop(b);
        assert_eq!(FileBackend::open(dir.path()).unwrap().read_committed().unwrap(), Some(log_id(1, 11)));
    }

    #[test]
    fn a_torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = FileBackend::open(dir.path()).unwrap();
            b.append(&entries(1..10)).unwrap();
        }
        // Half of a record after the last good one, as a crash mid-write leaves it.
        let seg = segment_path(&dir.path().join("log"), 1);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        let mut torn = Vec::new();
        record(10, b"lost write", &mut torn).unwrap();
        f.write_all(&torn[..torn.len() - 3]).unwrap();
        drop(f);
        let b = FileBackend::open(dir.path()).unwrap();
        assert_eq!(indexes(&b), (1..10).collect::<Vec<_>>());
        b.append(&entries(10..12)).unwrap();
        drop(b);
        let b = FileBackend::open(dir.path()).unwrap();
        assert_eq!(indexes(&b), (1..12).collect::<Vec<_>>());
    }

    #[test]
    fn a_flipped_bit_in_a_closed_segment_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = FileBackend::open(dir.path()).unwrap();
            b.append(&entries(1..5)).unwrap();
        }
        // A second segment makes the first one closed.
        std::fs::write(segment_path(&dir.path().join("log"), 5), {
            let mut v = Vec::new();
            record(5, b"x", &mut v).unwrap();
            v
        })
        .unwrap();
        let seg = segment_path(&dir.path().join("log"), 1);
        let mut data = std::fs::read(&seg).unwrap();
        data[HEADER + 1] ^= 0x40;
        std::fs::write(&seg, data).unwrap();
        assert!(matches!(FileBackend::open(dir.path()), Err(BackendError::Corrupt(_))));
    }

    #[test]
    fn truncate_and_overwrite_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = FileBackend::open(dir.path()).unwrap();
            b.append(&entries(1..20)).unwrap();
            b.truncate(15).unwrap();
            assert_eq!(indexes(&b), (1..15).collect::<Vec<_>>());
            // A conflicting suffix written over without an explicit truncate.
            b.append(&[(12, b"new".to_vec()), (13, b"newer".to_vec())]).unwrap();
        }
        let b = FileBackend::open(dir.path()).unwrap();
        assert_eq!(indexes(&b), (1..14).collect::<Vec<_>>());
        assert_eq!(b.read_range(12, 14).unwrap(), vec![(12, b"new".to_vec()), (13, b"newer".to_vec())]);
    }

    #[test]
    fn purging_everything_then_appending_after_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = FileBackend::open(dir.path()).unwrap();
            b.append(&entries(1..30)).unwrap();
            b.purge(log_id(2, 29)).unwrap();
            assert_eq!(b.last_entry().unwrap(), None);
            b.append(&entries(30..33)).unwrap();
        }
        let b = FileBackend::open(dir.path()).unwrap();
        assert_eq!(indexes(&b), vec![30, 31, 32]);
        assert_eq!(b.last_purged().unwrap(), Some(log_id(2, 29)));
    }
}
