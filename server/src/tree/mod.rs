//! The data tree: ZooKeeper's znode model, pure and synchronous.
//!
//! [`DataTree::apply`] takes one committed log entry ([`Txn`]) with its zxid and
//! returns the result and the watch events it triggers; reads never mutate. No I/O,
//! clock or randomness: every replica that applies the same entries holds the same
//! tree, byte for byte ([`DataTree::to_snapshot`], [`DataTree::digest`]).
//!
//! Semantics follow ZooKeeper 3.8's `PrepRequestProcessor` + `DataTree`, including the
//! order in which errors are checked.

mod acl;
mod apply;
mod node;
mod path;
mod snapshot;
mod txn;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use corral_proto::ErrorCode;

pub use acl::digest_id;
pub(crate) use acl::check_acl;
// The ZooKeeper front end (not built in the simulator) checks ACLs before proposing.
#[cfg(not(madsim))]
pub(crate) use acl::fixup_acl;
pub use node::{CONTAINER_EPHEMERAL_OWNER, MAX_TTL_MS, TTL_EPHEMERAL_MASK};
pub use path::{validate_create_path, validate_path};
pub use snapshot::{SnapshotAbandoned, SnapshotError, SnapshotWriter};
pub use txn::*;

use acl::AclCache;
use node::{owner_kind, Meta, Node, OwnerKind};
use path::{children_key_prefix, node_key};

/// A session as the tree knows it: created and closed through the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionInfo {
    pub timeout_ms: i32,
    pub password: Vec<u8>,
}

/// One read inside a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetData { path: String },
    GetChildren { path: String },
}

/// The result of one successful read inside a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    Data { data: Vec<u8>, stat: Stat },
    Children { children: Vec<String>, stat: Stat },
}

/// ZooKeeper's default data limit (jute.maxbuffer), in bytes.
pub const DEFAULT_MAX_DATA_LEN: usize = 1_048_576;

/// The znode tree plus the sessions that own its ephemeral nodes.
#[derive(Clone)]
pub struct DataTree {
    /// Largest data a create/setData may carry, in bytes. Configuration, not state:
    /// not part of snapshots or the digest.
    max_data_len: usize,
    last_zxid: u64,
    /// Every node, keyed by [`node_key`] (depth, then path).
    nodes: BTreeMap<Box<[u8]>, Node>,
    sessions: BTreeMap<i64, SessionInfo>,
    // Indexes derived from `nodes` (rebuilt on restore):
    ephemerals: BTreeMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    acls: AclCache,
    /// Set while a [`SnapshotWriter`] copies the tree out piece by piece: what each node changed
    /// since then looked like when the snapshot began. Local bookkeeping, not state.
    frozen: Option<snapshot::Frozen>,
}

impl std::fmt::Debug for DataTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataTree")
            .field("nodes", &self.nodes.len())
            .field("sessions", &self.sessions.len())
            .field("last_zxid", &self.last_zxid)
            .field("max_data_len", &self.max_data_len)
            .finish_non_exhaustive()
    }
}

/// Equal trees: same nodes (paths, data, stats, ACLs), sessions and last zxid.
impl PartialEq for DataTree {
    fn eq(&self, other: &Self) -> bool {
        self.last_zxid == other.last_zxid && self.nodes == other.nodes && self.sessions == other.sessions
    }
}

impl Eq for DataTree {}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new()
    }
}

impl DataTree {
    /// A fresh tree as a ZooKeeper 3.8 standalone server starts with: `/`,
    /// `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config` (world-readable only,
    /// aversion -1, as ZooKeeper's `addConfigNode` leaves it), all with zxid 0.
    pub fn new() -> DataTree {
        DataTree::with_max_data_len(DEFAULT_MAX_DATA_LEN)
    }

    pub fn with_max_data_len(max: usize) -> DataTree {
        let mut tree = DataTree::empty(max);
        let open = tree.acls.intern(&Acl::open_unsafe());
        let read_only = tree.acls.intern(&[Acl { perms: perms::READ, id: Id::anyone() }]);
        let mut put = |path: &str, acl, aversion, num_children| {
            let meta = Meta { aversion, num_children, ..Meta::default() };
            tree.insert_node(path, Node { data: Box::default(), acl, meta });
        };
        put("/", open.clone(), 0, 1);
        put("/zookeeper", open.clone(), 0, 2);
        put("/zookeeper/quota", open, 0, 0);
        put("/zookeeper/config", read_only, -1, 0);
        tree
    }

    fn empty(max_data_len: usize) -> DataTree {
        DataTree {
            max_data_len,
            last_zxid: 0,
            nodes: BTreeMap::new(),
            sessions: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            acls: AclCache::default(),
            frozen: None,
        }
    }

    /// The data limit in bytes (see [`DataTree::with_max_data_len`]).
    pub fn max_data_len(&self) -> usize {
        self.max_data_len
    }

    /// Sets the data limit, e.g. after [`DataTree::from_snapshot`] (snapshots do not
    /// carry it: it is configuration and must be the same on every member).
    pub fn set_max_data_len(&mut self, max: usize) {
        self.max_data_len = max;
    }

    // ----- reads -----

    /// Data and stat of a node. NoNode, NoAuth (READ), BadArguments (invalid path).
    pub fn get_data(&self, path: &str, auth: &[Id]) -> Result<(Vec<u8>, Stat), ErrorCode> {
        let node = self.readable(path, auth)?;
        Ok((node.data.to_vec(), node.stat()))
    }

    /// The stat of a node, `None` if it does not exist. No ACL check, as ZooKeeper.
    pub fn exists(&self, path: &str) -> Result<Option<Stat>, ErrorCode> {
        validate_path(path)?;
        Ok(self.node(path).map(Node::stat))
    }

    /// Children names, sorted, and the node's stat. NoNode, NoAuth (READ), BadArguments.
    pub fn get_children(&self, path: &str, auth: &[Id]) -> Result<(Vec<String>, Stat), ErrorCode> {
        let node = self.readable(path, auth)?;
        Ok((self.child_names(path), node.stat()))
    }

    /// The number of all descendants of a node (ZooKeeper's getAllChildrenNumber), for a caller
    /// with READ on the node. NoNode, NoAuth, BadArguments.
    pub fn get_all_children_number(&self, path: &str, auth: &[Id]) -> Result<i32, ErrorCode> {
        self.readable(path, auth)?;
        if path == "/" {
            return Ok(clamp_i32(self.nodes.len().saturating_sub(1)));
        }
        // Descendants at each depth below `path` form one key range; a level with
        // none ends the walk (deeper nodes need a parent on it).
        let mut total = 0usize;
        let mut prefix = children_key_prefix(path);
        loop {
            let level = self.key_range(&prefix).count();
            if level == 0 {
                break;
            }
            total += level;
            let depth = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) + 1;
            prefix[..4].copy_from_slice(&depth.to_be_bytes());
        }
        Ok(clamp_i32(total))
    }

    /// The session's ephemeral nodes whose path starts with `prefix_path` (a plain
    /// string prefix, as ZooKeeper; empty or `/` means all), sorted.
    pub fn get_ephemerals(&self, session_id: i64, prefix_path: &str) -> Vec<String> {
        let Some(paths) = self.ephemerals.get(&session_id) else {
            return Vec::new();
        };
        let prefix = prefix_path.trim();
        let all = prefix.is_empty() || prefix == "/";
        paths.iter().filter(|p| all || p.starts_with(prefix_path)).cloned().collect()
    }

    /// ACL and stat of a node. ZooKeeper checks READ|ADMIN at the request layer;
    /// this does not.
    pub fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        validate_path(path)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        Ok((node.acl.to_vec(), node.stat()))
    }

    /// A node's ACL as a client may see it, and its stat (ZooKeeper's getACL, as its
    /// FinalRequestProcessor answers it): READ or ADMIN on the node is needed (NoAuth), and
    /// without ADMIN the digest entries' hashes are masked to `user:x` (CVE-2019-0201).
    pub fn read_acl(&self, path: &str, auth: &[Id]) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        let (mut acl, stat) = self.get_acl(path)?;
        acl::check_acl(&acl, perms::READ | perms::ADMIN, auth)?;
        if acl::check_acl(&acl, perms::ADMIN, auth).is_err() {
            for a in acl.iter_mut().filter(|a| a.id.scheme == "digest") {
                let user = a.id.id.split(':').next().unwrap_or_default();
                a.id.id = format!("{user}:x");
            }
        }
        Ok((acl, stat))
    }

    /// Independent reads; each fails on its own, as ZooKeeper's multiRead.
    pub fn multi_read(&self, ops: &[ReadOp], auth: &[Id]) -> Vec<Result<ReadOutcome, ErrorCode>> {
        ops.iter()
            .map(|op| match op {
                ReadOp::GetData { path } => {
                    self.get_data(path, auth).map(|(data, stat)| ReadOutcome::Data { data, stat })
                }
                ReadOp::GetChildren { path } => {
                    self.get_children(path, auth).map(|(children, stat)| ReadOutcome::Children { children, stat })
                }
            })
            .collect()
    }

    /// The number of znodes, the root included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// ZooKeeper's `approximateDataSize`: path plus data bytes over all nodes (`mntr`).
    pub fn approximate_data_size(&self) -> u64 {
        // The key is a 4-byte depth plus the path.
        self.nodes.iter().map(|(k, n)| (k.len().saturating_sub(4) + n.data.len()) as u64).sum()
    }

    /// Open sessions, ordered by id.
    pub fn sessions(&self) -> impl Iterator<Item = (i64, &SessionInfo)> {
        self.sessions.iter().map(|(id, info)| (*id, info))
    }

    pub fn session(&self, id: i64) -> Option<&SessionInfo> {
        self.sessions.get(&id)
    }

    /// The highest zxid applied (0 for a fresh tree).
    pub fn last_zxid(&self) -> u64 {
        self.last_zxid
    }

    // ----- sweeps (proposed by the leader, applied as ordinary deletes) -----

    /// TTL nodes with no children whose TTL has run out: `now_ms - mtime > ttl`, as
    /// ZooKeeper's ContainerManager. Sorted.
    pub fn expired_ttl_nodes(&self, now_ms: i64) -> Vec<String> {
        self.ttls
            .iter()
            .filter(|path| {
                self.node(path).is_some_and(|n| match owner_kind(n.meta.ephemeral_owner) {
                    OwnerKind::Ttl(ttl) => {
                        n.meta.num_children == 0 && ttl != 0 && now_ms.saturating_sub(n.meta.mtime) > ttl
                    }
                    _ => false,
                })
            })
            .cloned()
            .collect()
    }

    /// Containers that had children once (cversion > 0) and have none now. Sorted.
    pub fn empty_containers(&self) -> Vec<String> {
        self.containers
            .iter()
            .filter(|path| self.node(path).is_some_and(|n| n.meta.num_children == 0 && n.meta.cversion > 0))
            .cloned()
            .collect()
    }

    // ----- internals -----

    fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(&node_key(path)[..])
    }

    fn node_mut(&mut self, path: &str) -> Option<&mut Node> {
        let key = node_key(path);
        self.remember(&key);
        self.nodes.get_mut(&key[..])
    }

    /// Before a node changes while a snapshot is being written: keeps the node as it was when
    /// the snapshot began (the first change only), so the snapshot still sees that version.
    fn remember(&mut self, key: &[u8]) {
        if let Some(frozen) = &mut self.frozen {
            if !frozen.before.contains_key(key) {
                frozen.before.insert(key.into(), self.nodes.get(key).cloned());
            }
        }
    }

    fn readable(&self, path: &str, auth: &[Id]) -> Result<&Node, ErrorCode> {
        validate_path(path)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        acl::check_acl(&node.acl, perms::READ, auth)?;
        Ok(node)
    }

    /// The entries whose key starts with `prefix`.
    fn key_range<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = (&'a Box<[u8]>, &'a Node)> + 'a {
        self.nodes
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    fn child_names(&self, path: &str) -> Vec<String> {
        let prefix = children_key_prefix(path);
        let skip = prefix.len();
        self.key_range(&prefix)
            .map(|(k, _)| String::from_utf8_lossy(k.get(skip..).unwrap_or_default()).into_owned())
            .collect()
    }

    /// Inserts a node and indexes it by kind. The parent's bookkeeping is the caller's.
    fn insert_node(&mut self, path: &str, node: Node) {
        match owner_kind(node.meta.ephemeral_owner) {
            OwnerKind::Void => {}
            OwnerKind::Session(s) => {
                self.ephemerals.entry(s).or_default().insert(path.to_owned());
            }
            OwnerKind::Container => {
                self.containers.insert(path.to_owned());
            }
            OwnerKind::Ttl(_) => {
                self.ttls.insert(path.to_owned());
            }
        }
        let key = node_key(path);
        self.remember(&key);
        self.nodes.insert(key.into_boxed_slice(), node);
    }

    /// Removes a node and its index entries. The parent's bookkeeping is the caller's.
    fn remove_node(&mut self, path: &str) -> Option<Node> {
        let key = node_key(path);
        self.remember(&key);
        let node = self.nodes.remove(&key[..])?;
        match owner_kind(node.meta.ephemeral_owner) {
            OwnerKind::Void => {}
            OwnerKind::Session(s) => {
                if let Some(set) = self.ephemerals.get_mut(&s) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&s);
                    }
                }
            }
            OwnerKind::Container => {
                self.containers.remove(path);
            }
            OwnerKind::Ttl(_) => {
                self.ttls.remove(path);
            }
        }
        Some(node)
    }

    /// Every node's path, in storage order (for tests and snapshots).
    #[cfg(test)]
    fn paths(&self) -> Vec<String> {
        self.nodes.keys().map(|k| path::key_path(k).to_owned()).collect()
    }
}

fn clamp_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
