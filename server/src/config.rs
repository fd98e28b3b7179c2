//! One configuration type for a member, read from TOML and/or flags, checked by
//! one validator. Tests and the dev ensemble build members through it too.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The largest `max_data_len` accepted: a znode must fit in one gRPC message with room to spare.
pub const MAX_DATA_LEN_CEILING: usize = 32 * 1024 * 1024;

/// A voting member of the initial ensemble.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddr {
    pub id: u64,
    /// The member's gRPC address ("host:port"): client API and peer service.
    pub addr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This member's id: ≥ 1 and unique in the ensemble.
    pub id: u64,
    /// Where the log, the vote and the snapshots live.
    pub data_dir: PathBuf,
    /// Address to listen on for the gRPC API and the peer service.
    pub grpc_addr: String,
    /// Address of the ZooKeeper protocol port ("host:port", 2181 style); empty: none.
    pub zk_addr: String,
    /// The initial voting members, the same list on every member. A member whose
    /// log is empty initializes the ensemble with it; later starts ignore it.
    pub members: Vec<MemberAddr>,
    /// This member joins a running ensemble: it never initializes one, and waits until the
    /// leader adds it (`corral member add`). `members` is then ignored and may be empty.
    pub join: bool,
    /// Shared secret that member-to-member calls must present.
    pub cluster_secret: String,
    /// ZooKeeper's tickTime, in ms: session timeouts are negotiated within [2, 20] ticks.
    pub tick_ms: u32,
    /// Largest znode payload in bytes (ZooKeeper's jute.maxbuffer, 1 MiB by default). Must be
    /// the same on every member, and below the 64 MiB gRPC message limit.
    pub max_data_len: usize,
    /// Leader heartbeat interval, in ms.
    pub heartbeat_ms: u64,
    /// Election timeout range, in ms: a follower that hears no leader for a random
    /// time in this range starts an election.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Take a snapshot of the tree after at most this many log entries since the last one (each
    /// member waits a fixed share between half and all of it; see `staggered_snapshot_every`).
    /// The default is ZooKeeper's snapCount: an entry carries at least one txn, so members
    /// snapshot no more often than ZooKeeper's do. A snapshot serializes the whole tree (a
    /// hundred MB at half a million znodes); at 20,000, writes one at a time made each member
    /// snapshot every few seconds and the copies' CPU showed as p99 spikes.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot, so briefly lagging members catch up
    /// from the log instead of a full snapshot.
    pub keep_logs_behind_snapshot: u64,
    /// Session streams one client address may hold on this member (ZooKeeper's
    /// maxClientCnxns); 0 = unlimited.
    pub max_client_cnxns: u32,
    /// How often the leader looks for empty containers and expired TTL nodes, in ms
    /// (ZooKeeper's znode.container.checkIntervalMs).
    pub container_check_ms: u64,
    /// Where the Raft log lives: `file` (append-only segments, one fdatasync per group commit;
    /// the default) or `sled` (one sled database). A member must be restarted on the store it
    /// was created with.
    pub storage: StorageKind,
}

/// The member's durable store (see `storage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    #[default]
    File,
    Sled,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            id: 1,
            data_dir: PathBuf::from("corral-data/member-1"),
            grpc_addr: "127.0.0.1:7001".into(),
            zk_addr: String::new(),
            members: Vec::new(),
            join: false,
            cluster_secret: "corral-dev-secret".into(),
            tick_ms: 2000,
            max_data_len: 1024 * 1024,
            heartbeat_ms: 150,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_every: 100_000,
            keep_logs_behind_snapshot: 5_000,
            max_client_cnxns: 60,
            container_check_ms: 60_000,
            storage: StorageKind::File,
        }
    }
}

/// A configuration mistake, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("parsing {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    pub fn from_toml_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.into(), e))
    }

    /// Parses `1=127.0.0.1:7001,2=127.0.0.1:7002` into a member list.
    pub fn parse_members(s: &str) -> Result<Vec<MemberAddr>, ConfigError> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|part| {
                let (id, addr) = part.trim().split_once('=').ok_or_else(|| {
                    ConfigError::Invalid(format!("member {part:?} is not ID=HOST:PORT"))
                })?;
                let id = id
                    .parse()
                    .map_err(|_| ConfigError::Invalid(format!("member id {id:?} is not a number")))?;
                Ok(MemberAddr { id, addr: addr.to_string() })
            })
            .collect()
    }

    /// Rejects cross-field mistakes before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.id == 0 {
            return bad("id must be ≥ 1".into());
        }
        if !self.join {
            if self.members.is_empty() {
                return bad("members must list the initial ensemble (including this member)".into());
            }
            if !self.members.iter().any(|m| m.id == self.id) {
                return bad(format!("members does not include this member's id {}", self.id));
            }
        }
        let mut ids: Vec<u64> = self.members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.members.len() || ids.contains(&0) {
            return bad("member ids must be unique and ≥ 1".into());
        }
        if self.tick_ms == 0 || self.tick_ms > 60_000 {
            return bad(format!("tick_ms {} is outside 1..=60000", self.tick_ms));
        }
        if self.heartbeat_ms == 0 || self.election_timeout_min_ms <= self.heartbeat_ms {
            return bad("election_timeout_min_ms must exceed heartbeat_ms (> 0)".into());
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return bad("election_timeout_max_ms must exceed election_timeout_min_ms".into());
        }
        if self.max_data_len == 0 || self.max_data_len > MAX_DATA_LEN_CEILING {
            return bad(format!("max_data_len must be in 1..={MAX_DATA_LEN_CEILING}"));
        }
        if self.container_check_ms == 0 {
            return bad("container_check_ms must be > 0".into());
        }
        if self.snapshot_every == 0 {
            return bad("snapshot_every must be > 0".into());
        }
        if self.cluster_secret.is_empty() {
            return bad("cluster_secret must not be empty".into());
        }
        Ok(())
    }

    /// How many entries this member lets pass between snapshots: between half of
    /// `snapshot_every` and all of it. As ZooKeeper randomizes its snapCount, so that the
    /// members of an ensemble do not all build and write a snapshot at the same moment (which
    /// stalled commits when they shared a disk, and takes the CPU from request handling). The
    /// members of the initial list are spaced evenly over that range by their place in it, so
    /// any two are a sixth of `snapshot_every` apart in a 3-member ensemble (a hash of the id,
    /// as before, put members 1, 2 and 3 within 5% of each other); a member outside the list
    /// (one that joins later) takes a place from a hash of its id. Not drawn at random, so a
    /// member's behaviour is reproducible.
    pub fn staggered_snapshot_every(&self) -> u64 {
        let half = (self.snapshot_every / 2).max(1);
        let mut ids: Vec<u64> = self.members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        let spread = match ids.iter().position(|id| *id == self.id) {
            Some(place) => half * place as u64 / ids.len() as u64,
            None => self.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) % half,
        };
        half + spread
    }

    /// openraft's configuration derived from ours.
    pub fn raft_config(&self) -> openraft::Config {
        openraft::Config {
            cluster_name: "corral".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.staggered_snapshot_every()),
            max_in_snapshot_log_to_keep: self.keep_logs_behind_snapshot,
            // Entries per AppendEntries. Each entry already carries up to 1024 txns (1 MiB), and
            // openraft gives an AppendEntries only one heartbeat interval before it calls the
            // follower unreachable and backs off for half a second: 32 entries keep a call well
            // inside that on a loaded machine and under the 64 MiB message limit.
            max_payload_entries: 32,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_snapshot_at_points_spread_over_the_range() {
        let at = |id| Config { id, ..three() }.staggered_snapshot_every();
        assert_eq!([at(1), at(2), at(3)], [50_000, 66_666, 83_333]);
        let joining = Config { id: 9, ..three() }.staggered_snapshot_every();
        assert!((50_000..100_000).contains(&joining), "{joining}");
    }

    fn three() -> Config {
        Config {
            members: Config::parse_members("1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003")
                .unwrap(),
            ..Config::default()
        }
    }

    #[test]
    fn a_three_member_config_is_valid() {
        three().validate().unwrap();
        assert_eq!(three().members[2], MemberAddr { id: 3, addr: "127.0.0.1:7003".into() });
    }

    #[test]
    fn validation_rejects_cross_field_mistakes() {
        let mut c = three();
        c.id = 4;
        assert!(c.validate().is_err(), "self not in members");
        let mut c = three();
        c.members.push(MemberAddr { id: 1, addr: "x:1".into() });
        assert!(c.validate().is_err(), "duplicate id");
        let mut c = three();
        c.election_timeout_min_ms = c.heartbeat_ms;
        assert!(c.validate().is_err(), "election timeout below heartbeat");
        // A joining member is not in the initial list, and needs none.
        let joining = Config { id: 4, join: true, ..three() };
        joining.validate().unwrap();
        Config { members: Vec::new(), ..joining }.validate().unwrap();
        assert!(Config::parse_members("1:127.0.0.1").is_err());
        assert!(Config::parse_members("x=127.0.0.1:1").is_err());
    }

    #[test]
    fn toml_round_trips_and_rejects_unknown_fields() {
        let text = toml::to_string(&three()).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.members, three().members);
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
        let partial: Config = toml::from_str("id = 2\ngrpc_addr = \"127.0.0.1:9\"").unwrap();
        assert_eq!(partial.id, 2);
        assert_eq!(partial.tick_ms, 2000);
    }
}
