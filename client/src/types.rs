//! The client's public data types. They mirror ZooKeeper's (field names,
//! permission bits, create modes) and are independent of the wire types, which
//! are converted in exactly one place (`convert.rs`).

use std::fmt;

use corral_proto::ErrorCode;

use crate::error::Error;

/// A znode's metadata, with ZooKeeper's field names (`ephemeralOwner` becomes
/// `ephemeral_owner`, and so on). Times are milliseconds since the Unix epoch,
/// taken from the leader's clock when the change was committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Stat {
    /// The zxid of the change that created the node.
    pub czxid: i64,
    /// The zxid of the change that last modified the node's data.
    pub mzxid: i64,
    /// Creation time, ms since the epoch.
    pub ctime: i64,
    /// Last data modification time, ms since the epoch.
    pub mtime: i64,
    /// Number of changes to the data (zkCli's `dataVersion`).
    pub version: i32,
    /// Number of changes to the children.
    pub cversion: i32,
    /// Number of changes to the ACL (zkCli's `aclVersion`).
    pub aversion: i32,
    /// The owning session's id for an ephemeral node, 0 otherwise.
    pub ephemeral_owner: i64,
    /// Length of the data in bytes.
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
    /// The zxid of the change that last modified the children.
    pub pzxid: i64,
}

/// One ACL entry: the permissions `perms` granted to identity `id` of `scheme`
/// (`world:anyone`, `digest:user:hash`, `ip:10.0.0.0/8`, `auth:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Acl {
    /// A bit set of [`Acl::READ`], [`Acl::WRITE`], [`Acl::CREATE`],
    /// [`Acl::DELETE`] and [`Acl::ADMIN`] (ZooKeeper's values).
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

impl Acl {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = Self::READ | Self::WRITE | Self::CREATE | Self::DELETE | Self::ADMIN;

    pub fn new(perms: i32, scheme: impl Into<String>, id: impl Into<String>) -> Acl {
        Acl { perms, scheme: scheme.into(), id: id.into() }
    }

    /// ZooKeeper's `OPEN_ACL_UNSAFE`: everyone may do everything.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(Self::ALL, "world", "anyone")]
    }

    /// ZooKeeper's `READ_ACL_UNSAFE`: everyone may read.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(Self::READ, "world", "anyone")]
    }

    /// ZooKeeper's `CREATOR_ALL_ACL`: every permission for the identities the
    /// creating client authenticated with (see `Client::add_auth`).
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl::new(Self::ALL, "auth", "")]
    }

    /// The permissions as zkCli prints them, e.g. `cdrwa` for [`Acl::ALL`].
    pub fn perm_string(&self) -> String {
        [(Self::CREATE, 'c'), (Self::DELETE, 'd'), (Self::READ, 'r'), (Self::WRITE, 'w'), (Self::ADMIN, 'a')]
            .iter()
            .filter(|(bit, _)| self.perms & bit != 0)
            .map(|(_, c)| *c)
            .collect()
    }
}

/// How a node is created (ZooKeeper's `CreateMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CreateMode {
    #[default]
    Persistent,
    /// Deleted when the creating session ends; cannot have children.
    Ephemeral,
    /// The name gets a 10-digit counter suffix taken from the parent.
    PersistentSequential,
    EphemeralSequential,
    /// Deleted by the server once its last child is deleted.
    Container,
    /// Deleted once it has had no children and no change for the TTL.
    PersistentWithTtl,
    PersistentSequentialWithTtl,
}

impl CreateMode {
    pub fn is_ephemeral(self) -> bool {
        matches!(self, CreateMode::Ephemeral | CreateMode::EphemeralSequential)
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    pub fn is_ttl(self) -> bool {
        matches!(self, CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl)
    }

    /// The mode zkCli's `create` flags select (`-e`, `-s`, `-c`, `-t`), or
    /// an error for combinations ZooKeeper has no mode for.
    pub fn from_flags(
        ephemeral: bool,
        sequential: bool,
        container: bool,
        ttl: bool,
    ) -> Result<CreateMode, Error> {
        let mode = match (ephemeral, sequential, container, ttl) {
            (false, false, false, false) => CreateMode::Persistent,
            (true, false, false, false) => CreateMode::Ephemeral,
            (false, true, false, false) => CreateMode::PersistentSequential,
            (true, true, false, false) => CreateMode::EphemeralSequential,
            (false, false, true, false) => CreateMode::Container,
            (false, false, false, true) => CreateMode::PersistentWithTtl,
            (false, true, false, true) => CreateMode::PersistentSequentialWithTtl,
            _ => {
                return Err(Error::InvalidArgument(
                    "a node is either ephemeral, a container, or has a TTL".into(),
                ))
            }
        };
        Ok(mode)
    }
}

/// Options for `Client::create`. The default is a persistent node readable
/// and writable by everyone (`Acl::open_unsafe()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    pub mode: CreateMode,
    pub acl: Vec<Acl>,
    /// Required for the `*WithTtl` modes (milliseconds, > 0); must be `None`
    /// for every other mode.
    pub ttl_ms: Option<i64>,
}

impl Default for CreateOptions {
    fn default() -> CreateOptions {
        CreateOptions::new(CreateMode::Persistent)
    }
}

impl CreateOptions {
    /// `mode` with the open ACL and no TTL.
    pub fn new(mode: CreateMode) -> CreateOptions {
        CreateOptions { mode, acl: Acl::open_unsafe(), ttl_ms: None }
    }

    pub fn with_acl(mut self, acl: Vec<Acl>) -> CreateOptions {
        self.acl = acl;
        self
    }

    pub fn with_ttl_ms(mut self, ttl_ms: i64) -> CreateOptions {
        self.ttl_ms = Some(ttl_ms);
        self
    }

    /// Rejects option combinations before anything is sent.
    pub(crate) fn check(&self) -> Result<(), Error> {
        match (self.mode.is_ttl(), self.ttl_ms) {
            (true, Some(ttl)) if ttl > 0 => Ok(()),
            (true, _) => Err(Error::InvalidArgument(format!(
                "{:?} needs a TTL greater than 0 ms",
                self.mode
            ))),
            (false, Some(_)) => {
                Err(Error::InvalidArgument(format!("{:?} does not take a TTL", self.mode)))
            }
            (false, None) => Ok(()),
        }
    }
}

/// One operation of a `multi` (writes and checks, applied atomically) or a
/// `multi_read` (reads from one consistent view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create { path: String, data: Vec<u8>, options: CreateOptions },
    /// `version: None` deletes whatever the version.
    Delete { path: String, version: Option<i32> },
    /// `version: None` sets whatever the version.
    SetData { path: String, data: Vec<u8>, version: Option<i32> },
    /// Fails the multi unless the node's data version is `version`.
    Check { path: String, version: i32 },
    GetData { path: String },
    GetChildren { path: String },
}

impl Op {
    pub fn create(path: impl Into<String>, data: impl Into<Vec<u8>>, options: CreateOptions) -> Op {
        Op::Create { path: path.into(), data: data.into(), options }
    }

    pub fn delete(path: impl Into<String>, version: Option<i32>) -> Op {
        Op::Delete { path: path.into(), version }
    }

    pub fn set_data(path: impl Into<String>, data: impl Into<Vec<u8>>, version: Option<i32>) -> Op {
        Op::SetData { path: path.into(), data: data.into(), version }
    }

    pub fn check(path: impl Into<String>, version: i32) -> Op {
        Op::Check { path: path.into(), version }
    }

    pub fn get_data(path: impl Into<String>) -> Op {
        Op::GetData { path: path.into() }
    }

    pub fn get_children(path: impl Into<String>) -> Op {
        Op::GetChildren { path: path.into() }
    }

    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. }
            | Op::Delete { path, .. }
            | Op::SetData { path, .. }
            | Op::Check { path, .. }
            | Op::GetData { path }
            | Op::GetChildren { path } => path,
        }
    }

    /// True for the ops `multi` accepts; the others belong in `multi_read`.
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::GetData { .. } | Op::GetChildren { .. })
    }
}

/// The result of one [`Op`], in the same position as the op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// `path` is the created node's actual path (with the sequence suffix).
    Create { path: String, stat: Stat },
    Delete,
    SetData { stat: Stat },
    Check,
    GetData { data: Vec<u8>, stat: Stat },
    GetChildren { children: Vec<String>, stat: Stat },
    /// The op failed (`multi_read`), or the whole multi did (`Error::Multi`,
    /// where ops that would have succeeded carry `Ok`).
    Error { code: ErrorCode },
}

/// A member's role as it reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Role {
    Leader,
    Follower,
    /// A non-voting replica (ZooKeeper's observer).
    Learner,
    Candidate,
    #[default]
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Learner => "learner",
            Role::Candidate => "candidate",
            Role::Unknown => "unknown",
        }
    }

    /// Parses the wire's role name; anything unrecognised is `Unknown`, so a
    /// newer server's roles don't break older clients.
    pub fn parse(s: &str) -> Role {
        match s {
            "leader" => Role::Leader,
            "follower" => Role::Follower,
            "learner" | "observer" => Role::Learner,
            "candidate" => Role::Candidate,
            _ => Role::Unknown,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of the ensemble as seen by the member that answered `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub id: u64,
    pub addr: String,
    pub role: Role,
    /// False for learners (observers), which replicate but never vote.
    pub voter: bool,
}

/// The ensemble's membership once a change is committed (`Client::add_member`,
/// `Client::remove_member`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The first zxid of the log entry holding this configuration (ZooKeeper's config version).
    pub config_zxid: u64,
    /// Voting members as (id, gRPC address), by id.
    pub voters: Vec<(u64, String)>,
    /// Observers (non-voting replicas) as (id, gRPC address), by id.
    pub observers: Vec<(u64, String)>,
}

/// The answer to `Client::status`: one member's view of the ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The member that answered.
    pub member_id: u64,
    pub role: Role,
    /// `None` while no leader is known (an election is under way).
    pub leader_id: Option<u64>,
    /// Raft term: ZooKeeper's epoch.
    pub term: u64,
    /// Highest zxid known committed.
    pub commit_zxid: u64,
    /// Highest zxid applied to the answering member's tree.
    pub applied_zxid: u64,
    pub last_log_index: u64,
    pub members: Vec<MemberStatus>,
    pub znode_count: u64,
    pub session_count: u64,
}

/// The session this client's requests carry, as the server granted it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: i64,
    /// Proves ownership when the session moves to another connection.
    pub password: Vec<u8>,
    /// The negotiated timeout, which may differ from the one requested.
    pub timeout_ms: i32,
}

impl fmt::Debug for SessionInfo {
    // The password is a credential: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionInfo")
            .field("id", &format_args!("{:#x}", self.id))
            .field("password", &"<redacted>")
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// Where a client's session stands, ZooKeeper's `KeeperState` plus the
/// states of the client's own life cycle. Observe it with
/// `Client::session_state` and `Client::session_states`.
///
/// The transitions: `NoSession → Connecting → Connected ⇄ Disconnected`, and
/// from any of those to one of the ends, `Expired`, `AuthFailed` or `Closed`.
/// `Expired` and `AuthFailed` are terminal for the session: every later request
/// fails (with SessionExpired or AuthFailed) until `Client::close_session`
/// clears it, which moves to `Closed`; from `Closed` (or `NoSession`) a new
/// `Client::start_session` begins again at `Connecting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// The client has never had a session: its requests carry none.
    NoSession,
    /// The session exists and the client is attaching its stream for the
    /// first time (inside `Client::start_session`).
    Connecting,
    /// The session's stream is attached to a member: pings flow, watch events
    /// arrive, and requests go to that member.
    Connected,
    /// The stream broke and the client is re-attaching, to whichever member
    /// answers first (ZooKeeper's Disconnected, Curator's SUSPENDED). The
    /// session, its ephemeral nodes and its watches live on unless the
    /// server expires it meanwhile; requests wait for the reconnect (or fail
    /// with ConnectionLoss when their timeout runs out).
    Disconnected,
    /// The server expired the session: it heard nothing for the session
    /// timeout. Its ephemeral nodes are gone and its watches will not fire.
    Expired,
    /// A member refused the session's password.
    AuthFailed,
    /// The session was closed by `Client::close_session`.
    Closed,
}

impl SessionState {
    /// True for the states after which the session can't come back:
    /// `Expired`, `AuthFailed` and `Closed`.
    pub fn is_terminal(self) -> bool {
        matches!(self, SessionState::Expired | SessionState::AuthFailed | SessionState::Closed)
    }

    /// ZooKeeper's name for the state (`SyncConnected` for `Connected`).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::NoSession => "NoSession",
            SessionState::Connecting => "Connecting",
            SessionState::Connected => "SyncConnected",
            SessionState::Disconnected => "Disconnected",
            SessionState::Expired => "Expired",
            SessionState::AuthFailed => "AuthFailed",
            SessionState::Closed => "Closed",
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a watched node: ZooKeeper's `EventType`, with its numbers
/// (see [`EventType::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// The node was created (an exists watch on a missing node).
    NodeCreated,
    /// The node was deleted.
    NodeDeleted,
    /// The node's data changed (set_data; also a re-created node's data).
    NodeDataChanged,
    /// A child was created or deleted (a child watch).
    NodeChildrenChanged,
    /// `Client::remove_watches` removed this data or exists watch.
    DataWatchRemoved,
    /// `Client::remove_watches` removed this child watch.
    ChildWatchRemoved,
    /// `Client::remove_watches` removed this persistent watch: its
    /// [`WatchStream`](crate::WatchStream) ends after this event.
    PersistentWatchRemoved,
}

impl EventType {
    /// ZooKeeper's number for the type (NodeCreated = 1 ... PersistentWatchRemoved = 7).
    pub fn code(self) -> i32 {
        match self {
            EventType::NodeCreated => 1,
            EventType::NodeDeleted => 2,
            EventType::NodeDataChanged => 3,
            EventType::NodeChildrenChanged => 4,
            EventType::DataWatchRemoved => 5,
            EventType::ChildWatchRemoved => 6,
            EventType::PersistentWatchRemoved => 7,
        }
    }

    /// ZooKeeper's name for the type, e.g. `NodeDataChanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::NodeCreated => "NodeCreated",
            EventType::NodeDeleted => "NodeDeleted",
            EventType::NodeDataChanged => "NodeDataChanged",
            EventType::NodeChildrenChanged => "NodeChildrenChanged",
            EventType::DataWatchRemoved => "DataWatchRemoved",
            EventType::ChildWatchRemoved => "ChildWatchRemoved",
            EventType::PersistentWatchRemoved => "PersistentWatchRemoved",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One watch notification: what happened, to which node, in which change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchedEvent {
    pub kind: EventType,
    /// The node the event is about (for a recursive watch, the descendant that
    /// changed, not the watched root).
    pub path: String,
    /// The zxid of the change. 0 when the event was fired on reconnect for a
    /// change missed while disconnected (ZooKeeper does the same), and for the
    /// `*WatchRemoved` events.
    pub zxid: u64,
}

impl fmt::Display for WatchedEvent {
    /// `NodeDataChanged /a (zxid 0x1f)`, the `corral watch` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} (zxid {:#x})", self.kind, self.path, self.zxid)
    }
}

/// Which watches `Client::remove_watches` removes (ZooKeeper's `WatcherType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatcherType {
    /// Child watches (`get_children_watch`).
    Children,
    /// Data and exists watches (`get_data_watch`, `exists_watch`).
    Data,
    /// Every kind, persistent ones included.
    Any,
    /// `AddWatchMode::Persistent` watches.
    Persistent,
    /// `AddWatchMode::PersistentRecursive` watches.
    PersistentRecursive,
}

/// The kind of watch `Client::add_watch` leaves (ZooKeeper's `AddWatchMode`).
/// Both stay until removed (or the session ends), unlike the one-shot watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddWatchMode {
    /// Every NodeCreated, NodeDeleted, NodeDataChanged and NodeChildrenChanged
    /// of the node itself.
    Persistent,
    /// Every NodeCreated, NodeDeleted and NodeDataChanged of the node and all
    /// its descendants (no NodeChildrenChanged: a child's creation or deletion
    /// already arrives as that child's own event).
    PersistentRecursive,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_bits_are_zookeepers() {
        assert_eq!((Acl::READ, Acl::WRITE, Acl::CREATE, Acl::DELETE, Acl::ADMIN), (1, 2, 4, 8, 16));
        assert_eq!(Acl::ALL, 31);
        assert_eq!(Acl::open_unsafe()[0].perm_string(), "cdrwa");
        assert_eq!(Acl::new(Acl::READ | Acl::WRITE, "ip", "10.0.0.1").perm_string(), "rw");
        assert_eq!(Acl::new(0, "world", "anyone").perm_string(), "");
    }

    #[test]
    fn zkcli_flags_select_modes() {
        let m = |e, s, c, t| CreateMode::from_flags(e, s, c, t);
        assert_eq!(m(false, false, false, false), Ok(CreateMode::Persistent));
        assert_eq!(m(true, false, false, false), Ok(CreateMode::Ephemeral));
        assert_eq!(m(false, true, false, false), Ok(CreateMode::PersistentSequential));
        assert_eq!(m(true, true, false, false), Ok(CreateMode::EphemeralSequential));
        assert_eq!(m(false, false, true, false), Ok(CreateMode::Container));
        assert_eq!(m(false, false, false, true), Ok(CreateMode::PersistentWithTtl));
        assert_eq!(m(false, true, false, true), Ok(CreateMode::PersistentSequentialWithTtl));
        assert!(m(true, false, true, false).is_err());
        assert!(m(true, false, false, true).is_err());
        assert!(m(false, true, true, false).is_err());
        assert!(m(false, false, true, true).is_err());
    }

    #[test]
    fn ttl_must_match_the_mode() {
        assert!(CreateOptions::default().check().is_ok());
        assert!(CreateOptions::new(CreateMode::PersistentWithTtl).check().is_err());
        assert!(CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl_ms(0).check().is_err());
        assert!(CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl_ms(5).check().is_ok());
        assert!(CreateOptions::new(CreateMode::Ephemeral).with_ttl_ms(5).check().is_err());
    }

    #[test]
    fn roles_parse_and_print() {
        for r in [Role::Leader, Role::Follower, Role::Learner, Role::Candidate, Role::Unknown] {
            assert_eq!(Role::parse(r.as_str()), r);
        }
        assert_eq!(Role::parse("shiny-new-role"), Role::Unknown);
    }

    #[test]
    fn session_debug_hides_the_password() {
        let s = SessionInfo { id: 255, password: b"secret".to_vec(), timeout_ms: 1 };
        let shown = format!("{s:?}");
        assert!(!shown.contains("secret") && shown.contains("0xff"), "{shown}");
    }
}
