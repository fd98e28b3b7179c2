//! The simulation harness: members as madsim nodes over in-memory disks with honest fsync, and
//! a nemesis that crashes, restarts and partitions them, all driven by the seed.
//!
//! A member's disk ([`MemBackend`]) lives outside its node, so a restart finds what was synced
//! and a crash loses what was not. The node's init future is its `main`: it starts the member
//! and then waits forever; killing the node drops everything it ran.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use corral_server::api::member::Member;
use corral_server::config::{Config, MemberAddr};
use corral_server::server::Server;
use corral_server::storage::{LogBackend, MemBackend};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use parking_lot::Mutex;

pub const GRPC_PORT: u16 = 7001;

/// One simulated member.
pub struct SimMember {
    pub id: u64,
    pub node: NodeHandle,
    pub disk: Arc<MemBackend>,
    /// The running member, for checks from outside (digest, applied zxid).
    pub running: Arc<Mutex<Option<Arc<Member>>>>,
    pub up: bool,
}

pub struct Ensemble {
    pub members: Vec<SimMember>,
}

pub fn member_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8))
}

pub fn member_addr(id: u64) -> String {
    SocketAddr::new(member_ip(id), GRPC_PORT).to_string()
}

impl Ensemble {
    /// Starts `n` members with simulation-friendly timings.
    pub fn start(n: u64) -> Ensemble {
        let handle = Handle::current();
        let addrs: Vec<MemberAddr> = (1..=n).map(|id| MemberAddr { id, addr: member_addr(id) }).collect();
        let mut members = Vec::new();
        for id in 1..=n {
            let disk = Arc::new(MemBackend::new());
            let running: Arc<Mutex<Option<Arc<Member>>>> = Arc::new(Mutex::new(None));
            let config = Config {
                id,
                data_dir: format!("/sim/member-{id}").into(),
                grpc_addr: format!("0.0.0.0:{GRPC_PORT}"),
                members: addrs.clone(),
                heartbeat_ms: 100,
                election_timeout_min_ms: 500,
                election_timeout_max_ms: 1000,
                tick_ms: 500,
                snapshot_every: 200,
                keep_logs_behind_snapshot: 50,
                container_check_ms: 1000,
                ..Config::default()
            };
            let (disk2, running2) = (disk.clone(), running.clone());
            let node = handle
                .create_node()
                .name(format!("member-{id}"))
                .ip(member_ip(id))
                .init(move || {
                    let (config, disk, running) = (config.clone(), disk2.clone(), running2.clone());
                    async move {
                        let backend: Arc<dyn LogBackend> = disk;
                        let server = Server::start_simulated(config, backend).await.expect("member starts");
                        *running.lock() = Some(server.member().clone());
                        // The node's main: keep the member until the node is killed.
                        std::future::pending::<()>().await;
                        drop(server);
                    }
                })
                .build();
            members.push(SimMember { id, node, disk, running, up: true });
        }
        Ensemble { members }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| member_addr(m.id)).collect()
    }

    /// Power loss: the node stops at once and its disk keeps only what was synced.
    pub fn crash(&mut self, i: usize) {
        let m = &mut self.members[i];
        Handle::current().kill(m.node.id());
        *m.running.lock() = None;
        m.disk.crash();
        m.up = false;
    }

    pub fn restart(&mut self, i: usize) {
        let m = &mut self.members[i];
        Handle::current().restart(m.node.id());
        m.up = true;
    }

    pub fn isolate(&self, i: usize) {
        NetSim::current().clog_node(self.members[i].node.id());
    }

    pub fn heal(&self, i: usize) {
        NetSim::current().unclog_node(self.members[i].node.id());
    }

    pub fn cut(&self, a: usize, b: usize) {
        let (a, b) = (self.members[a].node.id(), self.members[b].node.id());
        NetSim::current().clog_link(a, b);
        NetSim::current().clog_link(b, a);
    }

    pub fn uncut(&self, a: usize, b: usize) {
        let (a, b) = (self.members[a].node.id(), self.members[b].node.id());
        NetSim::current().unclog_link(a, b);
        NetSim::current().unclog_link(b, a);
    }

    /// Waits until every member is up and all have applied the same zxid and hold the same tree;
    /// returns each member's (applied zxid, tree digest). Panics (failing the seed) otherwise.
    pub async fn converge(&self, within: Duration) -> Vec<(u64, u64)> {
        let deadline = madsim::time::Instant::now() + within;
        loop {
            let states: Vec<Option<(u64, u64)>> = self
                .members
                .iter()
                .map(|m| {
                    m.running.lock().as_ref().map(|member| {
                        let st = member.state.read();
                        (st.last_applied.map_or(0, |l| l.index), st.tree.digest())
                    })
                })
                .collect();
            if states.iter().all(Option::is_some) && states.windows(2).all(|w| w[0] == w[1]) {
                return states.into_iter().flatten().collect();
            }
            assert!(madsim::time::Instant::now() < deadline, "members did not converge: {states:?}");
            madsim::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A random number in `0..n` from the simulator's generator (the seed decides).
pub fn rand_below(n: u64) -> u64 {
    use rand_core_compat::RngCore;
    madsim::rand::thread_rng().next_u64() % n.max(1)
}

/// madsim's generator implements rand's `RngCore`; only that trait is needed here.
mod rand_core_compat {
    pub use madsim::rand::RngCore;
}
