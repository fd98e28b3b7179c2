//! The simulation harness: members as madsim nodes over in-memory disks with honest fsync, a
//! nemesis that crashes, pauses, partitions and slows them, fails their disks and jumps the
//! clock, and an [`Audit`] of every member's committed log and applied zxids; all driven by the
//! seed.
//!
//! A member's disk ([`MemBackend`]) lives outside its node, so a restart finds what was synced
//! and a crash loses what was not. The node's init future is its `main`: it starts the member
//! and then waits until the node is killed, or until Raft stops on a fatal storage error (an
//! injected fsync failure), in which case it stops the member as the binary does, loses what was
//! not synced, and returns (which ends the node until the nemesis restarts it).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use corral_client::{Client, CreateMode, CreateOptions, ErrorCode};
use corral_server::api::member::Member;
use corral_server::config::{Config, MemberAddr};
use corral_server::raft::state_machine::TreeEvent;
use corral_server::server::Server;
use corral_server::storage::{LogBackend, MemBackend};

use crate::membership::{Change, Operator};
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
    /// False between a crash and the restart that follows.
    pub up: bool,
    pub paused: bool,
}

pub struct Ensemble {
    pub members: Vec<SimMember>,
    pub audit: Audit,
    /// Makes the membership changes the nemesis asks for (see [`crate::membership`]).
    pub operator: Operator,
    /// How many active faults clog each directed member link (`(from, to)` member indexes), so
    /// that overlapping partitions heal independently.
    link_clogs: BTreeMap<(usize, usize), u32>,
}

pub fn member_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8))
}

pub fn member_addr(id: u64) -> String {
    SocketAddr::new(member_ip(id), GRPC_PORT).to_string()
}

/// Violations of the per-member invariants, collected while the simulation runs and checked at
/// the end ([`Audit::assert_clean`]):
/// - committed entries are identical on every member: whenever a member's disk says index `i`
///   is committed, the bytes of entry `i` (term, leader, payload) are the ones every other member
///   has for `i`;
/// - every member applies zxids in strictly increasing order within one incarnation: the zxids
///   of the applied entries its state machine reports, and its applied zxid, never go back.
#[derive(Clone, Default)]
pub struct Audit {
    inner: Arc<Mutex<AuditState>>,
}

#[derive(Default)]
struct AuditState {
    /// Index → the entry's bytes, as first seen committed on some member.
    committed: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Per member: the committed index up to which its log was compared.
    compared: BTreeMap<u64, u64>,
    entries_compared: u64,
    violations: Vec<String>,
    /// Members that stopped themselves on a fatal storage error.
    fatal_stops: u64,
}

impl Audit {
    fn violation(&self, what: String) {
        tracing::error!("audit: {what}");
        self.inner.lock().violations.push(what);
    }

    /// Compares what each disk holds as committed with what the others hold.
    fn compare_logs(&self, members: &[(u64, Arc<MemBackend>)]) {
        let mut st = self.inner.lock();
        let st = &mut *st;
        for (id, disk) in members {
            let Ok(Some(committed)) = disk.read_committed() else { continue };
            let purged = disk.last_purged().ok().flatten().map_or(0, |l| l.index);
            let from = st.compared.get(id).copied().unwrap_or(0).max(purged) + 1;
            if committed.index < from {
                continue;
            }
            let Ok(entries) = disk.read_range(from, committed.index + 1) else { continue };
            for (index, bytes) in entries {
                st.entries_compared += 1;
                match st.committed.get(&index) {
                    Some((other, b)) if *b != bytes => st.violations.push(format!(
                        "committed entry {index} differs between member {other} and member {id}"
                    )),
                    Some(_) => {}
                    None => {
                        st.committed.insert(index, (*id, bytes));
                    }
                }
            }
            st.compared.insert(*id, committed.index);
        }
    }

    /// Panics (failing the seed) if any invariant was violated; returns how many committed
    /// entries were compared across members.
    pub fn assert_clean(&self) -> u64 {
        let st = self.inner.lock();
        assert!(st.violations.is_empty(), "audit found {} violations: {:#?}", st.violations.len(), st.violations);
        st.entries_compared
    }

    /// How many times a member stopped itself on a fatal storage error.
    pub fn fatal_stops(&self) -> u64 {
        self.inner.lock().fatal_stops
    }
}

/// Watches one member incarnation's state machine from inside its node: applied zxids and the
/// zxids of applied entries must strictly increase.
async fn observe(id: u64, member: Arc<Member>, audit: Audit) {
    let mut events = member.state.subscribe_events();
    let mut applied = member.state.subscribe_applied();
    let mut last_event_zxid = 0u64;
    let mut last_applied = *applied.borrow();
    loop {
        tokio::select! {
            biased;
            event = events.recv() => {
                let Some(event) = event else { return };
                let zxids: Vec<u64> = match &*event {
                    TreeEvent::Applied(entries) => entries.iter().map(|e| e.zxid).collect(),
                    TreeEvent::SnapshotInstalled { zxid } => vec![*zxid],
                };
                for zxid in zxids {
                    if zxid <= last_event_zxid {
                        audit.violation(format!("member {id} applied zxid {zxid} after {last_event_zxid}"));
                    }
                    last_event_zxid = zxid;
                }
            }
            changed = applied.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *applied.borrow_and_update();
                if now < last_applied {
                    audit.violation(format!("member {id}'s applied zxid went back from {last_applied} to {now}"));
                }
                last_applied = now;
            }
        }
    }
}

impl Ensemble {
    /// Starts `n` members with simulation-friendly timings.
    pub fn start(n: u64) -> Ensemble {
        // Logs only on demand (`RUST_LOG=info` when replaying a seed).
        if std::env::var_os("RUST_LOG").is_some() {
            madsim::runtime::init_logger();
        }
        let handle = Handle::current();
        let audit = Audit::default();
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
            let (disk2, running2, audit2) = (disk.clone(), running.clone(), audit.clone());
            let node = handle
                .create_node()
                .name(format!("member-{id}"))
                .ip(member_ip(id))
                .init(move || {
                    let (config, disk, running, audit) = (config.clone(), disk2.clone(), running2.clone(), audit2.clone());
                    async move {
                        let backend: Arc<dyn LogBackend> = disk.clone();
                        let server = match Server::start_simulated(config, backend).await {
                            Ok(server) => server,
                            Err(e) => {
                                // Only an injected storage failure can get here: stop like
                                // the binary (exit), and let the nemesis restart the node.
                                tracing::warn!("member {id} did not start: {e}");
                                disk.crash();
                                audit.inner.lock().fatal_stops += 1;
                                return;
                            }
                        };
                        *running.lock() = Some(server.member().clone());
                        madsim::task::spawn(observe(id, server.member().clone(), audit.clone()));
                        // The node's main: serve until killed, or until Raft stops on a fatal
                        // storage error; then stop as the binary does.
                        let fatal = server.failed().await;
                        tracing::warn!("member {id} stops: {fatal}");
                        *running.lock() = None;
                        audit.inner.lock().fatal_stops += 1;
                        drop(server);
                        // What the failed fsync did not make durable is gone.
                        disk.crash();
                    }
                })
                .build();
            members.push(SimMember { id, node, disk, running, up: true, paused: false });
        }
        // The log audit runs beside the members for the whole simulation.
        let disks: Vec<(u64, Arc<MemBackend>)> = members.iter().map(|m| (m.id, m.disk.clone())).collect();
        let audit2 = audit.clone();
        madsim::task::spawn(async move {
            loop {
                audit2.compare_logs(&disks);
                madsim::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        Ensemble { members, audit, operator: Operator::new(&ids), link_clogs: BTreeMap::new() }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| member_addr(m.id)).collect()
    }

    /// Power loss: the node stops at once and its disk keeps what was synced and, as the seed
    /// decides, a prefix of what was written since, the last of it possibly torn
    /// (`MemBackend::crash_tearing`).
    pub fn crash(&mut self, i: usize) {
        let m = &mut self.members[i];
        Handle::current().kill(m.node.id());
        *m.running.lock() = None;
        m.disk.fail_syncs(0);
        m.disk.crash_tearing(|n| rand_below(n as u64) as usize);
        m.up = false;
        m.paused = false;
    }

    pub fn restart(&mut self, i: usize) {
        let m = &mut self.members[i];
        // A node whose main returned (a member that stopped itself) is marked killed without
        // its sockets being closed (madsim 0.2.34 `exit` skips `reset_node`, and `BindGuard`
        // skips closing on a killed node): the next incarnation could not bind its port, and
        // connections would go to the dead one. `kill` resets; do the same here.
        NetSim::current().reset_node(m.node.id());
        Handle::current().restart(m.node.id());
        m.up = true;
        m.paused = false;
    }

    /// The index of a running member that believes it leads, if any.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|i| {
            self.members[*i].running.lock().as_ref().is_some_and(|m| m.raft.metrics().borrow().state.is_leader())
        })
    }

    /// Whether the member's node runs (it may be paused): not crashed, not stopped by itself.
    pub fn is_running(&self, i: usize) -> bool {
        let m = &self.members[i];
        m.up && !Handle::current().is_exit(m.node.id())
    }

    /// Stops scheduling the member's tasks (a long GC pause, a stopped VM): it keeps its state
    /// and connections, messages to it queue up, and when resumed every timer it had is overdue,
    /// which is also what a forward jump of its own monotonic clock would do.
    pub fn pause(&mut self, i: usize) {
        let m = &mut self.members[i];
        Handle::current().pause(m.node.id());
        m.paused = true;
    }

    pub fn resume(&mut self, i: usize) {
        let m = &mut self.members[i];
        Handle::current().resume(m.node.id());
        m.paused = false;
    }

    /// The member's next `n` fsyncs fail: its Raft stops on the storage error and the member
    /// stops itself (see the module doc); the nemesis restarts it later.
    pub fn fail_syncs(&self, i: usize, n: u32) {
        self.members[i].disk.fail_syncs(n);
    }

    /// Cuts the member off from everyone, clients included.
    pub fn isolate(&self, i: usize) {
        NetSim::current().clog_node(self.members[i].node.id());
    }

    pub fn heal(&self, i: usize) {
        NetSim::current().unclog_node(self.members[i].node.id());
    }

    /// One-way isolation: the member hears nobody (`inbound`) or nobody hears it.
    pub fn isolate_one_way(&self, i: usize, inbound: bool) {
        let id = self.members[i].node.id();
        if inbound {
            NetSim::current().clog_node_in(id);
        } else {
            NetSim::current().clog_node_out(id);
        }
    }

    pub fn heal_one_way(&self, i: usize, inbound: bool) {
        let id = self.members[i].node.id();
        if inbound {
            NetSim::current().unclog_node_in(id);
        } else {
            NetSim::current().unclog_node_out(id);
        }
    }

    /// Clogs the member link `from → to` (one direction only).
    pub fn clog(&mut self, from: usize, to: usize) {
        let n = self.link_clogs.entry((from, to)).or_insert(0);
        *n += 1;
        if *n == 1 {
            NetSim::current().clog_link(self.members[from].node.id(), self.members[to].node.id());
        }
    }

    pub fn unclog(&mut self, from: usize, to: usize) {
        let Some(n) = self.link_clogs.get_mut(&(from, to)) else { return };
        *n -= 1;
        if *n == 0 {
            self.link_clogs.remove(&(from, to));
            NetSim::current().unclog_link(self.members[from].node.id(), self.members[to].node.id());
        }
    }

    pub fn cut(&mut self, a: usize, b: usize) {
        self.clog(a, b);
        self.clog(b, a);
    }

    pub fn uncut(&mut self, a: usize, b: usize) {
        self.unclog(a, b);
        self.unclog(b, a);
    }

    /// Splits the members into `side` and the rest: no member message crosses (clients still
    /// reach both sides).
    pub fn partition(&mut self, side: &[usize]) {
        for a in side.iter().copied() {
            for b in (0..self.members.len()).filter(|b| !side.contains(b)) {
                self.cut(a, b);
            }
        }
    }

    pub fn unpartition(&mut self, side: &[usize]) {
        for a in side.iter().copied() {
            for b in (0..self.members.len()).filter(|b| !side.contains(b)) {
                self.uncut(a, b);
            }
        }
    }

    /// Waits until every membership change asked for is done (every member votes again), every
    /// member is up, and all have applied the same zxid and hold the same tree; returns each
    /// member's (applied zxid, tree digest), or what they were at the deadline.
    pub async fn converge(&self, within: Duration) -> Result<Vec<(u64, u64)>, String> {
        let deadline = madsim::time::Instant::now() + within;
        self.operator.settle(within).await?;
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
                return Ok(states.into_iter().flatten().collect());
            }
            if madsim::time::Instant::now() >= deadline {
                let raft: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| match m.running.lock().as_ref() {
                        Some(member) => {
                            let r = member.raft.metrics().borrow().clone();
                            format!(
                                "member {}: {:?} term {} leader {:?} last log {:?} applied {:?} {:?}",
                                m.id, r.state, r.current_term, r.current_leader, r.last_log_index, r.last_applied, r.running_state
                            )
                        }
                        None => format!("member {}: down", m.id),
                    })
                    .collect();
                return Err(format!(
                    "members did not converge: {states:?}\n{raft:#?}\nmembership changes: {:#?}",
                    self.operator.log()
                ));
            }
            madsim::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs `task` on a client node of its own, named `name`, at address `ip` (client code never
/// runs on the test's main node), and returns its result.
pub async fn on_node<T, F>(name: &str, ip: &str, task: F) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    Handle::current()
        .create_node()
        .name(name)
        .ip(ip.parse().expect("an IP address"))
        .build()
        .spawn(task)
        .await
        .expect("a client node's task")
}

/// Every scenario's first step: from a client node of its own ("setup", 10.0.1.1), creates the
/// persistent znodes `(path, data)` in order, retrying each every 200 ms until it exists. The
/// ensemble may still be electing its first leader, and an attempt whose outcome was unknown
/// may have created the node, so NodeExists counts as done.
pub async fn setup_node(endpoints: Vec<String>, znodes: &[(&str, &[u8])]) {
    let znodes: Vec<(String, Vec<u8>)> = znodes.iter().map(|(p, d)| (p.to_string(), d.to_vec())).collect();
    on_node("setup", "10.0.1.1", async move {
        let c = Client::builder(endpoints).request_timeout(Duration::from_secs(30)).connect().await.expect("a client");
        for (path, data) in &znodes {
            loop {
                match c.create(path, data, CreateOptions::new(CreateMode::Persistent)).await {
                    Ok(_) => break,
                    Err(e) if e.code() == ErrorCode::NodeExists => break,
                    Err(_) => madsim::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
    })
    .await;
}

/// Which faults a [`Nemesis`] may inject.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub crash: bool,
    pub pause: bool,
    pub isolate: bool,
    /// One-way isolation and one-way links.
    pub asymmetric: bool,
    /// Random two-sided partitions of the members.
    pub partition: bool,
    /// Message loss (retransmission delays on the simulated TCP), long and uneven latency (which
    /// reorders messages across connections).
    pub lossy_network: bool,
    pub sync_failure: bool,
    /// Forward jumps of the (one, shared) simulated clock.
    pub clock_jump: bool,
    /// A voter removed from the ensemble through the public API, and added back later.
    pub membership: bool,
    /// At most this many faults at once.
    pub max_active: usize,
}

impl Faults {
    /// Everything madsim can do to Corral, up to two faults at a time.
    pub fn all() -> Faults {
        Faults {
            crash: true,
            pause: true,
            isolate: true,
            asymmetric: true,
            partition: true,
            lossy_network: true,
            sync_failure: true,
            clock_jump: true,
            membership: true,
            max_active: 2,
        }
    }
}

/// One fault in force, and what heals it.
#[derive(Debug, Clone)]
enum Active {
    Crash(usize),
    Pause(usize),
    Isolate(usize),
    OneWay { member: usize, inbound: bool },
    Link { from: usize, to: usize },
    Partition(Vec<usize>),
    Lossy,
    SyncFailure(usize),
    /// The member (by index) is out of the ensemble (or on its way out).
    Removed(usize),
}

impl Active {
    /// The member whose process this fault holds (at most one such fault per member).
    fn process(&self) -> Option<usize> {
        match self {
            Active::Crash(i) | Active::Pause(i) | Active::SyncFailure(i) => Some(*i),
            _ => None,
        }
    }

    /// The member whose whole network this fault clogs (at most one such fault per member:
    /// madsim's node clogs are flags, not counts).
    fn node_clog(&self) -> Option<usize> {
        match self {
            Active::Isolate(i) | Active::OneWay { member: i, .. } => Some(*i),
            _ => None,
        }
    }
}

/// The fault injector: a seed-driven schedule of overlapping faults, each healed after a random
/// while. Every choice comes from madsim's generator.
pub struct Nemesis {
    faults: Faults,
    active: Vec<(madsim::time::Instant, Active)>,
    /// What was done, for the failure message of a seed.
    pub log: Vec<String>,
}

impl Nemesis {
    pub fn new(faults: Faults) -> Nemesis {
        Nemesis { faults, active: Vec::new(), log: Vec::new() }
    }

    /// Injects and heals faults until `until`, then heals everything.
    pub async fn run(&mut self, ensemble: &mut Ensemble, until: madsim::time::Instant) {
        while madsim::time::Instant::now() < until {
            madsim::time::sleep(Duration::from_millis(100 + rand_below(900))).await;
            self.heal_due(ensemble);
            if self.active.len() < self.faults.max_active {
                self.inject(ensemble);
            }
        }
        self.heal_all(ensemble);
    }

    pub fn note(&mut self, what: String) {
        tracing::info!("nemesis: {what}");
        let at = madsim::time::Instant::now();
        self.log.push(format!("{at:?} {what}"));
    }

    fn inject(&mut self, e: &mut Ensemble) {
        let n = e.members.len();
        let busy: Vec<usize> = self.active.iter().filter_map(|(_, a)| a.process()).collect();
        let free: Vec<usize> = (0..n).filter(|i| !busy.contains(i) && e.is_running(*i)).collect();
        let clog_free: Vec<usize> =
            (0..n).filter(|i| !self.active.iter().any(|(_, a)| a.node_clog() == Some(*i))).collect();
        let lossy_active = self.active.iter().any(|(_, a)| matches!(a, Active::Lossy));
        let heal_at = madsim::time::Instant::now() + Duration::from_millis(200 + rand_below(3500));
        let f = self.faults;
        let kind = rand_below(10);
        let fault = match kind {
            0 if f.crash && !free.is_empty() => {
                let i = pick(&free);
                e.crash(i);
                Active::Crash(i)
            }
            1 if f.pause && !free.is_empty() => {
                let i = pick(&free);
                e.pause(i);
                Active::Pause(i)
            }
            2 if f.isolate && !clog_free.is_empty() => {
                let i = pick(&clog_free);
                e.isolate(i);
                Active::Isolate(i)
            }
            3 if f.asymmetric && !clog_free.is_empty() => {
                let (member, inbound) = (pick(&clog_free), rand_below(2) == 0);
                e.isolate_one_way(member, inbound);
                Active::OneWay { member, inbound }
            }
            4 if f.asymmetric => {
                let from = rand_below(n as u64) as usize;
                let to = (from + 1 + rand_below(n as u64 - 1) as usize) % n;
                e.clog(from, to);
                Active::Link { from, to }
            }
            5 if f.partition => {
                // A random nonempty proper subset on one side.
                let mask = 1 + rand_below((1 << n) - 2);
                let side: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
                e.partition(&side);
                Active::Partition(side)
            }
            6 if f.lossy_network && !lossy_active => {
                let loss = rand_below(20) as f64 / 100.0;
                let max_ms = 10 + rand_below(300);
                NetSim::current().update_config(|c| {
                    c.packet_loss_rate = loss;
                    c.send_latency = Duration::from_millis(1)..Duration::from_millis(max_ms);
                });
                self.note(format!("network: loss {loss}, latency 1..{max_ms} ms"));
                Active::Lossy
            }
            7 if f.sync_failure && !free.is_empty() => {
                let i = pick(&free);
                e.fail_syncs(i, 1 + rand_below(3) as u32);
                Active::SyncFailure(i)
            }
            8 if f.clock_jump => {
                let jump = Duration::from_millis(100 + rand_below(3000));
                self.note(format!("clock jumps {jump:?}"));
                madsim::time::advance(jump);
                return;
            }
            // One member out at a time, and never below two voters.
            9 if f.membership
                && e.operator.voters().len() == n
                && n >= 3
                && !self.active.iter().any(|(_, a)| matches!(a, Active::Removed(_))) =>
            {
                let i = rand_below(n as u64) as usize;
                e.operator.ask(Change::Remove(e.members[i].id));
                Active::Removed(i)
            }
            _ => return,
        };
        self.note(format!("inject {fault:?}"));
        self.active.push((heal_at, fault));
    }

    fn heal_due(&mut self, e: &mut Ensemble) {
        let now = madsim::time::Instant::now();
        let (due, rest): (Vec<_>, Vec<_>) = self.active.drain(..).partition(|(at, _)| *at <= now);
        self.active = rest;
        for (_, fault) in due {
            self.heal(e, fault);
        }
    }

    /// Ends every fault and brings every member back up.
    pub fn heal_all(&mut self, e: &mut Ensemble) {
        for (_, fault) in std::mem::take(&mut self.active) {
            self.heal(e, fault);
        }
        for i in 0..e.members.len() {
            if !e.is_running(i) {
                self.note(format!("restart stopped member {i}"));
                e.restart(i);
            }
        }
    }

    fn heal(&mut self, e: &mut Ensemble, fault: Active) {
        self.note(format!("heal {fault:?}"));
        match fault {
            Active::Crash(i) => e.restart(i),
            Active::Pause(i) => e.resume(i),
            Active::Isolate(i) => e.heal(i),
            Active::OneWay { member, inbound } => e.heal_one_way(member, inbound),
            Active::Link { from, to } => e.unclog(from, to),
            Active::Partition(side) => e.unpartition(&side),
            Active::Lossy => NetSim::current().update_config(|c| *c = madsim::net::Config::default()),
            Active::Removed(i) => {
                let id = e.members[i].id;
                e.operator.ask(Change::Add(id));
            }
            Active::SyncFailure(i) => {
                e.fail_syncs(i, 0);
                // A member that stopped on the failure comes back as after a crash.
                if !e.is_running(i) {
                    e.restart(i);
                }
            }
        }
    }
}

fn pick(from: &[usize]) -> usize {
    from[rand_below(from.len() as u64) as usize]
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
