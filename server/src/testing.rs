//! `TestCluster`: N real members in this process, each with its own sled data
//! directory and a loopback gRPC listener on an ephemeral port. Integration
//! tests drive it with the real client; members can be killed and restarted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::api::member::Member;
use crate::config::{Config, MemberAddr};
use crate::server::Server;

pub struct TestCluster {
    /// Removed when the cluster is dropped.
    dir: tempfile::TempDir,
    configs: Vec<Config>,
    /// `None` while a member is down.
    servers: Vec<Option<Server>>,
}

impl TestCluster {
    /// Starts `n` members with test-friendly timings.
    pub async fn start(n: usize) -> TestCluster {
        TestCluster::start_with(n, |_| {}).await
    }

    /// Starts `n` members after letting the test adjust every member's config.
    pub async fn start_with(n: usize, tweak: impl Fn(&mut Config)) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut listeners = Vec::new();
        for _ in 0..n {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let members: Vec<MemberAddr> = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| MemberAddr {
                id: i as u64 + 1,
                addr: l.local_addr().expect("addr").to_string(),
            })
            .collect();
        let mut configs = Vec::new();
        for m in &members {
            let mut c = Config {
                id: m.id,
                data_dir: dir.path().join(format!("member-{}", m.id)),
                grpc_addr: m.addr.clone(),
                // Bound on a free port at start; the port is kept for restarts.
                zk_addr: "127.0.0.1:0".into(),
                members: members.clone(),
                heartbeat_ms: 100,
                election_timeout_min_ms: 400,
                election_timeout_max_ms: 800,
                ..Config::default()
            };
            tweak(&mut c);
            configs.push(c);
        }
        let mut servers = Vec::new();
        for (config, listener) in configs.iter_mut().zip(listeners) {
            let server = Server::start(config.clone(), listener).await.expect("member starts");
            if let Some(zk) = server.zk_addr() {
                config.zk_addr = zk.to_string();
            }
            servers.push(Some(server));
        }
        TestCluster { dir, configs, servers }
    }

    /// Starts one more member (id `size() + 1`) with `join` set: it serves nothing of its own
    /// and waits until the ensemble adds it (`Member::change_membership`). Returns its id.
    pub async fn start_joining_member(&mut self) -> u64 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let id = self.size() as u64 + 1;
        let mut config = Config {
            id,
            data_dir: self.dir.path().join(format!("member-{id}")),
            grpc_addr: listener.local_addr().expect("addr").to_string(),
            zk_addr: "127.0.0.1:0".into(),
            members: Vec::new(),
            join: true,
            ..self.configs[0].clone()
        };
        let server = Server::start(config.clone(), listener).await.expect("member starts");
        if let Some(zk) = server.zk_addr() {
            config.zk_addr = zk.to_string();
        }
        self.configs.push(config);
        self.servers.push(Some(server));
        id
    }

    pub fn size(&self) -> usize {
        self.configs.len()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Every member's gRPC address, up or down, in id order.
    pub fn endpoints(&self) -> Vec<String> {
        self.configs.iter().map(|c| c.grpc_addr.clone()).collect()
    }

    /// Every member's ZooKeeper protocol address, in id order (`host:port,...` joined, as
    /// ZooKeeper clients take them).
    pub fn zk_endpoints(&self) -> Vec<String> {
        self.configs.iter().map(|c| c.zk_addr.clone()).collect()
    }

    /// One member's ZooKeeper protocol address.
    pub fn zk_endpoint(&self, id: u64) -> String {
        self.configs[Self::index(id)].zk_addr.clone()
    }

    /// One member's gRPC address.
    pub fn endpoint(&self, id: u64) -> String {
        self.configs[Self::index(id)].grpc_addr.clone()
    }

    fn index(id: u64) -> usize {
        (id as usize).checked_sub(1).expect("member ids start at 1")
    }

    /// The running member with this id.
    pub fn member(&self, id: u64) -> &Arc<Member> {
        self.servers[Self::index(id)].as_ref().expect("member is up").member()
    }

    pub fn is_up(&self, id: u64) -> bool {
        self.servers[Self::index(id)].is_some()
    }

    /// Ids of the members that are up.
    pub fn live_ids(&self) -> Vec<u64> {
        (1..=self.size() as u64).filter(|id| self.is_up(*id)).collect()
    }

    /// Waits until every live member agrees on one live leader, and returns its id.
    pub async fn wait_leader(&self, timeout: Duration) -> u64 {
        self.wait_leader_among(&self.live_ids(), timeout).await
    }

    /// Waits until the members `ids` (all up) agree on a leader among them, and returns it.
    pub async fn wait_leader_among(&self, ids: &[u64], timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let live = ids.to_vec();
            let leaders: Vec<Option<u64>> = live
                .iter()
                .map(|id| self.member(*id).raft.metrics().borrow().current_leader)
                .collect();
            if let Some(Some(l)) = leaders.first() {
                if live.contains(l) && leaders.iter().all(|x| *x == Some(*l)) {
                    return *l;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "no agreed leader within {timeout:?}: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a member's replica has applied `zxid`.
    pub async fn wait_applied(&self, id: u64, zxid: u64, timeout: Duration) {
        self.member(id)
            .wait_applied(zxid, timeout)
            .await
            .unwrap_or_else(|e| panic!("member {id} did not apply {zxid}: {e}"));
    }

    /// Stops a member abruptly: it stops serving and its Raft stops; whatever it
    /// had fsync'd stays on disk, as after a crash.
    pub async fn kill(&mut self, id: u64) {
        if let Some(server) = self.servers[Self::index(id)].take() {
            server.shutdown().await;
        }
    }

    /// Starts a stopped member again on its old address and data directory.
    pub async fn restart(&mut self, id: u64) {
        assert!(!self.is_up(id), "member {id} is already up");
        let config = self.configs[Self::index(id)].clone();
        // The old address may linger and the old instance's storage may take a
        // moment to be released: retry both for a while.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let server = loop {
            let attempt = match tokio::net::TcpListener::bind(&config.grpc_addr).await {
                Ok(listener) => Server::start(config.clone(), listener).await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("binding {}: {e}", config.grpc_addr)),
            };
            match attempt {
                Ok(s) => break s,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!("restarting member {id}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("restarting member {id}: {e}"),
            }
        };
        self.servers[Self::index(id)] = Some(server);
    }

    /// Stops every member cleanly.
    pub async fn shutdown(mut self) {
        for s in self.servers.iter_mut() {
            if let Some(server) = s.take() {
                server.shutdown().await;
            }
        }
    }
}
