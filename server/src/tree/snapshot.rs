//! Snapshots (a versioned, checksummed, deterministic byte format) and the content
//! digest replicas compare.
//!
//! Format version 2, all integers little-endian:
//! ```text
//! magic    8 bytes  "CORRALDT"
//! version  u32      2 (version 1, still read, differs only in the checksum: FNV-1a 64)
//! checksum u64      CRC-32 (IEEE) of the body
//! body:
//!   last_zxid u64
//!   acl lists: u64 count, each: u64 entries, each: perms i32, scheme str, id str
//!   sessions:  u64 count, each: id i64, timeout_ms i32, password bytes
//!   nodes:     u64 count, each (in storage order: by depth, then path, so every
//!              parent precedes its children): path str, data bytes, acl list index
//!              u64, czxid mzxid pzxid ctime mtime ephemeral_owner i64,
//!              version cversion aversion num_children i32
//! str/bytes = u64 length + bytes
//! ```

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

use super::node::{Meta, Node};
use super::path::{key_path, node_key, parent_of, validate_path};
use super::txn::{Acl, Id};
use super::{DataTree, SessionInfo, DEFAULT_MAX_DATA_LEN};

const MAGIC: &[u8; 8] = b"CORRALDT";
/// Version 2 replaced version 1's byte-at-a-time FNV checksum, which took half a second of a
/// hundred-MiB snapshot's build, with CRC-32 (hardware-assisted, crc32fast).
const FORMAT_VERSION: u32 = 2;
const FORMAT_VERSION_FNV: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8;

/// Why a snapshot could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a Corral tree snapshot (bad magic)")]
    BadMagic,
    #[error("unsupported tree snapshot format version {0} (this build reads versions 1 and 2)")]
    UnsupportedVersion(u32),
    #[error("corrupt tree snapshot: {0}")]
    Corrupt(String),
}

fn corrupt(what: impl Into<String>) -> SnapshotError {
    SnapshotError::Corrupt(what.into())
}

/// FNV-1a, 64 bit: stable across builds and platforms, unlike std's hashers.
#[derive(Clone, Copy)]
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    pub fn new() -> Fnv64 {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

/// Where canonical encodings go: a buffer (snapshots) or a hash (digest).
trait Sink {
    fn put(&mut self, bytes: &[u8]);

    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.put(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.put(b);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Feeds bytes to a hash (for tests that hand-craft snapshots).
#[cfg(test)]
pub(crate) fn fnv_put(h: &mut Fnv64, bytes: &[u8]) {
    h.put(bytes);
}

impl Sink for Fnv64 {
    fn put(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn put_acl(s: &mut impl Sink, acl: &[Acl]) {
    s.u64(acl.len() as u64);
    for a in acl {
        s.i32(a.perms);
        s.bytes(a.id.scheme.as_bytes());
        s.bytes(a.id.id.as_bytes());
    }
}

fn put_meta(s: &mut impl Sink, m: &Meta) {
    for v in [m.czxid, m.mzxid, m.pzxid, m.ctime, m.mtime, m.ephemeral_owner] {
        s.i64(v);
    }
    for v in [m.version, m.cversion, m.aversion, m.num_children] {
        s.i32(v);
    }
}

fn put_sessions(s: &mut impl Sink, sessions: &BTreeMap<i64, SessionInfo>) {
    s.u64(sessions.len() as u64);
    for (id, info) in sessions {
        s.i64(*id);
        s.i32(info.timeout_ms);
        s.bytes(&info.password);
    }
}

/// The nodes a snapshot in progress must still see as they were: key → the node at the
/// snapshot's begin (`None`: it did not exist yet). Filled on each key's first change.
#[derive(Clone)]
pub(crate) struct Frozen {
    id: u64,
    pub before: BTreeMap<Box<[u8]>, Option<Node>>,
}

// Unique per process, so a writer never mistakes a later snapshot (or a replaced tree's) for its own.
static NEXT_SNAPSHOT_ID: AtomicU64 = AtomicU64::new(1);

/// The tree's snapshot was replaced or abandoned while a [`SnapshotWriter`] was copying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the snapshot in progress was abandoned (the tree was replaced or another snapshot began)")]
pub struct SnapshotAbandoned;

/// A snapshot being copied out of a tree ([`DataTree::begin_snapshot`]); [`SnapshotWriter::finish`]
/// gives the same bytes as [`DataTree::to_snapshot`] of the tree as it was at the begin.
pub struct SnapshotWriter {
    id: u64,
    last_zxid: u64,
    /// The sessions section, encoded at the begin.
    sessions: Vec<u8>,
    /// ACL lists in order of first use; nodes refer to them by position.
    acl_lists: Vec<Arc<[Acl]>>,
    acl_index: BTreeMap<Arc<[Acl]>, u64>,
    // Most nodes share one list: skips the lookup when a node's list is the previous one.
    last_acl: Option<(Arc<[Acl]>, u64)>,
    node_count: u64,
    nodes: Vec<u8>,
    /// Key of the last node copied (or skipped).
    cursor: Option<Box<[u8]>>,
    done: bool,
    /// Whether `nodes` was grown to the estimated total.
    sized: bool,
}

impl SnapshotWriter {
    fn new(tree: &DataTree, id: u64) -> SnapshotWriter {
        let mut sessions = Vec::new();
        put_sessions(&mut sessions, &tree.sessions);
        SnapshotWriter {
            id,
            last_zxid: tree.last_zxid,
            sessions,
            acl_lists: Vec::new(),
            acl_index: BTreeMap::new(),
            last_acl: None,
            node_count: 0,
            nodes: Vec::with_capacity(64 + tree.nodes.len().min(1 << 16) * 128),
            cursor: None,
            done: false,
            sized: false,
        }
    }

    fn put_node(&mut self, key: &[u8], node: &Node) {
        let acl = match &self.last_acl {
            Some((list, i)) if Arc::ptr_eq(list, &node.acl) => *i,
            _ => {
                let next = self.acl_lists.len() as u64;
                let i = *self.acl_index.entry(node.acl.clone()).or_insert(next);
                if i == next {
                    self.acl_lists.push(node.acl.clone());
                }
                self.last_acl = Some((node.acl.clone(), i));
                i
            }
        };
        let body = &mut self.nodes;
        body.bytes(key_path(key).as_bytes());
        body.bytes(&node.data);
        body.u64(acl);
        put_meta(body, &node.meta);
        self.node_count += 1;
    }

    /// The snapshot's bytes (see the module doc for the format).
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        self.finish_into(&mut out);
        out
    }

    /// Appends the snapshot's bytes to `out` (e.g. after an envelope's header), copying the
    /// nodes once.
    pub fn finish_into(self, out: &mut Vec<u8>) {
        let mut head = Vec::new();
        head.u64(self.last_zxid);
        head.u64(self.acl_lists.len() as u64);
        for acl in &self.acl_lists {
            put_acl(&mut head, acl);
        }
        head.extend_from_slice(&self.sessions);
        head.u64(self.node_count);

        let mut checksum = crc32fast::Hasher::new();
        checksum.update(&head);
        checksum.update(&self.nodes);
        out.reserve(HEADER_LEN + head.len() + self.nodes.len());
        out.extend_from_slice(MAGIC);
        out.u32(FORMAT_VERSION);
        out.u64(u64::from(checksum.finalize()));
        out.extend_from_slice(&head);
        out.extend_from_slice(&self.nodes);
    }
}

/// Bounds-checked reads over a snapshot body.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if n > self.buf.len() {
            return Err(corrupt("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], SnapshotError> {
        let len = usize::try_from(self.u64()?).map_err(|_| corrupt("length overflow"))?;
        self.take(len)
    }
    fn string(&mut self) -> Result<String, SnapshotError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt("invalid UTF-8"))
    }
    /// A count of items that each take at least `min_item_len` bytes.
    fn count(&mut self, min_item_len: usize) -> Result<usize, SnapshotError> {
        let n = usize::try_from(self.u64()?).map_err(|_| corrupt("count overflow"))?;
        if n.saturating_mul(min_item_len) > self.buf.len() {
            return Err(corrupt("count exceeds snapshot size"));
        }
        Ok(n)
    }
}

impl DataTree {
    /// A deterministic content hash (FNV-1a 64) over every node's path, data, stat
    /// and ACL, and every session: equal on replicas that applied the same entries.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv64::new();
        h.u64(self.nodes.len() as u64);
        for (key, node) in &self.nodes {
            h.bytes(key_path(key).as_bytes());
            h.bytes(&node.data);
            put_meta(&mut h, &node.meta);
            put_acl(&mut h, &node.acl);
        }
        put_sessions(&mut h, &self.sessions);
        h.finish()
    }

    /// The whole tree, sessions and last zxid as bytes; equal trees give equal bytes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut writer = SnapshotWriter::new(self, 0);
        for (key, node) in &self.nodes {
            writer.put_node(key, node);
        }
        writer.finish()
    }

    /// Starts a snapshot of the tree as it is now that [`DataTree::write_snapshot_part`] then
    /// copies out a piece at a time, so the caller can let writes in between: changes made
    /// meanwhile do not reach the snapshot (the tree keeps what they replaced until
    /// [`DataTree::end_snapshot`]). Costs O(sessions); one snapshot at a time, a second begin
    /// abandons the first.
    pub fn begin_snapshot(&mut self) -> SnapshotWriter {
        let id = NEXT_SNAPSHOT_ID.fetch_add(1, AtomicOrdering::Relaxed);
        self.frozen = Some(Frozen { id, before: BTreeMap::new() });
        SnapshotWriter::new(self, id)
    }

    /// Copies up to `max_nodes` more nodes into `writer` (nodes as they were at its begin).
    /// `Ok(true)` once every node is in. Fails when the tree no longer holds the writer's
    /// snapshot (it was replaced, or another snapshot began): start again.
    pub fn write_snapshot_part(&self, writer: &mut SnapshotWriter, max_nodes: usize) -> Result<bool, SnapshotAbandoned> {
        let frozen = match &self.frozen {
            Some(f) if f.id == writer.id && !writer.done => f,
            _ => return Err(SnapshotAbandoned),
        };
        let after = match &writer.cursor {
            Some(key) => Bound::Excluded(&key[..]),
            None => Bound::Unbounded,
        };
        let mut live = self.nodes.range::<[u8], _>((after, Bound::Unbounded)).peekable();
        let mut before = frozen.before.range::<[u8], _>((after, Bound::Unbounded)).peekable();
        let mut last: Option<&[u8]> = None;
        for _ in 0..max_nodes {
            // Merge by key: a node changed since the begin is written as it was then (or not at
            // all, if it did not exist yet); the others as they are.
            let (key, node) = match (live.peek(), before.peek()) {
                (None, None) => {
                    writer.done = true;
                    break;
                }
                (Some((lk, ln)), Some((bk, _))) if lk < bk => {
                    let item = (&lk[..], Some(*ln));
                    live.next();
                    item
                }
                (Some(_), None) => {
                    let (lk, ln) = live.next().expect("peeked");
                    (&lk[..], Some(ln))
                }
                (live_next, Some((bk, _))) => {
                    if live_next.is_some_and(|(lk, _)| lk == bk) {
                        live.next();
                    }
                    let (bk, bn) = before.next().expect("peeked");
                    (&bk[..], bn.as_ref())
                }
            };
            if let Some(node) = node {
                writer.put_node(key, node);
            }
            last = Some(key);
        }
        if live.peek().is_none() && before.peek().is_none() {
            writer.done = true;
        }
        if let Some(key) = last {
            writer.cursor = Some(key.into());
        }
        if !writer.done && !writer.sized && writer.node_count > 0 {
            // Grow once to the whole tree's likely size (from the first part's average) rather
            // than doubling, and copying, tens of megabytes several times.
            writer.sized = true;
            let average = writer.nodes.len() / writer.node_count as usize + 1;
            let remaining = self.nodes.len().saturating_sub(writer.node_count as usize) + frozen.before.len();
            writer.nodes.reserve(average * remaining + average * remaining / 16);
        }
        Ok(writer.done)
    }

    /// Stops keeping the replaced nodes for `writer`'s snapshot (if it is still the current one).
    pub fn end_snapshot(&mut self, writer: &SnapshotWriter) {
        if self.frozen.as_ref().is_some_and(|f| f.id == writer.id) {
            self.frozen = None;
        }
    }

    /// Restores a tree from [`DataTree::to_snapshot`] bytes, checking the header, the
    /// checksum and the tree's invariants. The data limit is the default; set it with
    /// [`DataTree::set_max_data_len`].
    pub fn from_snapshot(bytes: &[u8]) -> Result<DataTree, SnapshotError> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        if bytes.len() < HEADER_LEN {
            return Err(corrupt("truncated header"));
        }
        let mut header = Reader { buf: &bytes[8..HEADER_LEN] };
        let version = u32::from_le_bytes(header.array()?);
        let expected = header.u64()?;
        let body = &bytes[HEADER_LEN..];
        let actual = match version {
            FORMAT_VERSION => u64::from(crc32fast::hash(body)),
            FORMAT_VERSION_FNV => {
                let mut checksum = Fnv64::new();
                checksum.put(body);
                checksum.finish()
            }
            _ => return Err(SnapshotError::UnsupportedVersion(version)),
        };
        if actual != expected {
            return Err(corrupt("checksum mismatch"));
        }
        let mut r = Reader { buf: body };
        let mut tree = DataTree::empty(DEFAULT_MAX_DATA_LEN);
        tree.last_zxid = r.u64()?;

        let n_lists = r.count(8)?;
        let mut lists: Vec<Arc<[Acl]>> = Vec::with_capacity(n_lists);
        for _ in 0..n_lists {
            let n = r.count(4 + 8 + 8)?;
            let mut acl = Vec::with_capacity(n);
            for _ in 0..n {
                let perms = r.i32()?;
                let scheme = r.string()?;
                let id = r.string()?;
                acl.push(Acl { perms, id: Id { scheme, id } });
            }
            lists.push(tree.acls.intern(&acl));
        }

        let n_sessions = r.count(8 + 4 + 8)?;
        for _ in 0..n_sessions {
            let id = r.i64()?;
            let timeout_ms = r.i32()?;
            let password = r.bytes()?.to_vec();
            if tree.sessions.insert(id, SessionInfo { timeout_ms, password }).is_some() {
                return Err(corrupt("duplicate session"));
            }
        }

        let n_nodes = r.count(8 + 8 + 8 + 6 * 8 + 4 * 4)?;
        let mut children: BTreeMap<String, i32> = BTreeMap::new();
        let mut previous_key: Option<Vec<u8>> = None;
        for _ in 0..n_nodes {
            let path = r.string()?;
            let data: Box<[u8]> = r.bytes()?.into();
            let acl_index = usize::try_from(r.u64()?).map_err(|_| corrupt("ACL index overflow"))?;
            let acl = lists.get(acl_index).cloned().ok_or_else(|| corrupt("ACL index out of range"))?;
            let mut m = Meta::default();
            for v in [&mut m.czxid, &mut m.mzxid, &mut m.pzxid, &mut m.ctime, &mut m.mtime, &mut m.ephemeral_owner] {
                *v = r.i64()?;
            }
            for v in [&mut m.version, &mut m.cversion, &mut m.aversion, &mut m.num_children] {
                *v = r.i32()?;
            }

            validate_path(&path).map_err(|_| corrupt(format!("invalid path {path:?}")))?;
            let key = node_key(&path);
            if previous_key.as_ref().is_some_and(|p| *p >= key) {
                return Err(corrupt("nodes out of order"));
            }
            if path == "/" {
                if previous_key.is_some() {
                    return Err(corrupt("root is not first"));
                }
            } else {
                let parent = parent_of(&path);
                if tree.node(parent).is_none() {
                    return Err(corrupt(format!("parent of {path:?} missing")));
                }
                *children.entry(parent.to_owned()).or_default() += 1;
            }
            previous_key = Some(key);
            tree.insert_node(&path, Node { data, acl, meta: m });
        }
        if !r.buf.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        if tree.node("/").is_none() {
            return Err(corrupt("no root"));
        }
        for (key, node) in &tree.nodes {
            let actual = children.get(key_path(key)).copied().unwrap_or(0);
            if node.meta.num_children != actual {
                return Err(corrupt(format!("child count of {:?}", key_path(key))));
            }
        }
        Ok(tree)
    }
}
