//! One znode as stored, and ZooKeeper's encoding of node kinds in ephemeralOwner.

use std::sync::Arc;

use super::txn::{Acl, Stat};

/// ZooKeeper's `EphemeralType.CONTAINER_EPHEMERAL_OWNER`.
pub const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;
/// High byte set on the ephemeralOwner of TTL nodes (`EphemeralType.EXTENDED_MASK`).
pub const TTL_EPHEMERAL_MASK: i64 = 0xFF00_0000_0000_0000_u64 as i64;
/// Largest TTL ZooKeeper accepts, in ms (`EphemeralType.TTL.maxValue()`).
pub const MAX_TTL_MS: i64 = 0x00FF_FFFF_FFFF;

/// The ephemeralOwner of a TTL node with the given TTL (`EphemeralType.TTL.toEphemeralOwner`).
pub fn ttl_ephemeral_owner(ttl_ms: i64) -> i64 {
    TTL_EPHEMERAL_MASK | (ttl_ms & MAX_TTL_MS)
}

/// What an ephemeralOwner value denotes (`EphemeralType.get`, extended types enabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerKind {
    /// A plain persistent node.
    Void,
    /// An ephemeral node owned by this session.
    Session(i64),
    Container,
    /// A TTL node with this TTL in ms.
    Ttl(i64),
}

pub(crate) fn owner_kind(owner: i64) -> OwnerKind {
    if owner == 0 {
        OwnerKind::Void
    } else if owner == CONTAINER_EPHEMERAL_OWNER {
        OwnerKind::Container
    } else if owner & TTL_EPHEMERAL_MASK == TTL_EPHEMERAL_MASK {
        OwnerKind::Ttl(owner & MAX_TTL_MS)
    } else {
        OwnerKind::Session(owner)
    }
}

/// The fixed-size part of a node: its Stat minus what is derived from the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Meta {
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub ephemeral_owner: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub num_children: i32,
}

/// A stored znode. ACL lists are interned and shared between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub data: Box<[u8]>,
    pub acl: Arc<[Acl]>,
    pub meta: Meta,
}

impl Node {
    /// The Stat clients see. `meta.cversion` counts the creates under the node (sequential
    /// names come from it); clients see creates plus deletes, which ZooKeeper's
    /// `DataNode.copyStat` derives as `2 * cversion - numChildren` (every create has a delete
    /// except for the children still there). Java int arithmetic: it wraps.
    pub fn stat(&self) -> Stat {
        let m = &self.meta;
        Stat {
            czxid: m.czxid,
            mzxid: m.mzxid,
            ctime: m.ctime,
            mtime: m.mtime,
            version: m.version,
            cversion: m.cversion.wrapping_mul(2).wrapping_sub(m.num_children),
            aversion: m.aversion,
            ephemeral_owner: m.ephemeral_owner,
            data_length: i32::try_from(self.data.len()).unwrap_or(i32::MAX),
            num_children: m.num_children,
            pzxid: m.pzxid,
        }
    }
}
