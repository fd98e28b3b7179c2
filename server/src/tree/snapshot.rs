//! Snapshots (a versioned, checksummed, deterministic byte format) and the content
//! digest replicas compare.
//!
//! Format version 1, all integers little-endian:
//! ```text
//! magic    8 bytes  "CORRALDT"
//! version  u32      1
//! checksum u64      FNV-1a 64 of the body
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
use std::sync::Arc;

use super::node::{Meta, Node};
use super::path::{key_path, node_key, parent_of, validate_path};
use super::txn::{Acl, Id};
use super::{DataTree, SessionInfo, DEFAULT_MAX_DATA_LEN};

const MAGIC: &[u8; 8] = b"CORRALDT";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8;

/// Why a snapshot could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a Corral tree snapshot (bad magic)")]
    BadMagic,
    #[error("unsupported tree snapshot format version {0} (this build reads version 1)")]
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
        let mut body = Vec::with_capacity(64 + self.nodes.len() * 96);
        body.u64(self.last_zxid);

        // Each distinct ACL list once, numbered by first use in node order.
        let mut index: BTreeMap<&[Acl], u64> = BTreeMap::new();
        let mut lists: Vec<&[Acl]> = Vec::new();
        for node in self.nodes.values() {
            index.entry(&node.acl[..]).or_insert_with(|| {
                lists.push(&node.acl[..]);
                lists.len() as u64 - 1
            });
        }
        body.u64(lists.len() as u64);
        for acl in &lists {
            put_acl(&mut body, acl);
        }

        put_sessions(&mut body, &self.sessions);

        body.u64(self.nodes.len() as u64);
        for (key, node) in &self.nodes {
            body.bytes(key_path(key).as_bytes());
            body.bytes(&node.data);
            body.u64(index.get(&node.acl[..]).copied().unwrap_or_default());
            put_meta(&mut body, &node.meta);
        }

        let mut checksum = Fnv64::new();
        checksum.put(&body);
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(MAGIC);
        out.u32(FORMAT_VERSION);
        out.u64(checksum.finish());
        out.extend_from_slice(&body);
        out
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
        if version != FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let expected = header.u64()?;
        let body = &bytes[HEADER_LEN..];
        let mut checksum = Fnv64::new();
        checksum.put(body);
        if checksum.finish() != expected {
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
