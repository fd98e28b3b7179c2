//! The data tree: ZooKeeper's znode model, pure and synchronous.
//! (Being written: the API below is stable; bodies are being filled in.)

mod txn;

pub use txn::*;

use corral_proto::ErrorCode;
use std::collections::BTreeMap;

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

/// Why a snapshot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a Corral tree snapshot (bad magic)")]
    BadMagic,
    #[error("unsupported tree snapshot format version {0}")]
    UnsupportedVersion(u32),
    #[error("corrupt tree snapshot: {0}")]
    Corrupt(String),
}

/// ZooKeeper's default data limit (jute.maxbuffer).
pub const DEFAULT_MAX_DATA_LEN: usize = 1_048_576;

/// The znode tree.
#[derive(Debug, Clone)]
#[allow(dead_code)] // filled in next
pub struct DataTree {
    max_data_len: usize,
    last_zxid: u64,
    sessions: BTreeMap<i64, SessionInfo>,
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new()
    }
}

/// `user:base64(sha1(user:password))`, as ZooKeeper's DigestAuthenticationProvider.generateDigest.
pub fn digest_id(user_password: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let user = user_password.split(':').next().unwrap_or("");
    let hash = sha1::Sha1::digest(user_password.as_bytes());
    format!("{}:{}", user, base64::engine::general_purpose::STANDARD.encode(hash))
}

impl DataTree {
    pub fn new() -> DataTree {
        DataTree::with_max_data_len(DEFAULT_MAX_DATA_LEN)
    }
    pub fn with_max_data_len(max: usize) -> DataTree {
        DataTree { max_data_len: max, last_zxid: 0, sessions: BTreeMap::new() }
    }
    pub fn apply(&mut self, zxid: u64, _txn: &Txn) -> Applied {
        self.last_zxid = self.last_zxid.max(zxid);
        Applied { result: Err(ErrorCode::Unimplemented), events: vec![] }
    }
    pub fn get_data(&self, _path: &str, _auth: &[Id]) -> Result<(Vec<u8>, Stat), ErrorCode> {
        Err(ErrorCode::Unimplemented)
    }
    pub fn exists(&self, _path: &str) -> Result<Option<Stat>, ErrorCode> {
        Err(ErrorCode::Unimplemented)
    }
    pub fn get_children(&self, _path: &str, _auth: &[Id]) -> Result<(Vec<String>, Stat), ErrorCode> {
        Err(ErrorCode::Unimplemented)
    }
    pub fn get_all_children_number(&self, _path: &str) -> Result<i32, ErrorCode> {
        Err(ErrorCode::Unimplemented)
    }
    pub fn get_ephemerals(&self, _session_id: i64, _prefix_path: &str) -> Vec<String> {
        vec![]
    }
    pub fn get_acl(&self, _path: &str) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        Err(ErrorCode::Unimplemented)
    }
    pub fn multi_read(&self, ops: &[ReadOp], _auth: &[Id]) -> Vec<Result<ReadOutcome, ErrorCode>> {
        ops.iter().map(|_| Err(ErrorCode::Unimplemented)).collect()
    }
    pub fn node_count(&self) -> usize {
        0
    }
    pub fn sessions(&self) -> impl Iterator<Item = (i64, &SessionInfo)> {
        self.sessions.iter().map(|(k, v)| (*k, v))
    }
    pub fn session(&self, id: i64) -> Option<&SessionInfo> {
        self.sessions.get(&id)
    }
    pub fn last_zxid(&self) -> u64 {
        self.last_zxid
    }
    pub fn digest(&self) -> u64 {
        0
    }
    pub fn to_snapshot(&self) -> Vec<u8> {
        vec![]
    }
    pub fn from_snapshot(_bytes: &[u8]) -> Result<DataTree, SnapshotError> {
        Err(SnapshotError::Corrupt("unimplemented".into()))
    }
    pub fn expired_ttl_nodes(&self, _now_ms: i64) -> Vec<String> {
        vec![]
    }
    pub fn empty_containers(&self) -> Vec<String> {
        vec![]
    }
}
