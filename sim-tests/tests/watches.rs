//! Watches under the full nemesis.
//!
//! Writers without sessions create, change and delete three znodes under `/w` and their
//! children. Watchers with sessions keep one-shot data, exists and child watches on them,
//! re-arming each as it fires, plus a persistent-recursive watch on `/w` and a persistent one on
//! one znode; between re-arms they read, and sometimes write, the same znodes. After every
//! request, and while idle, a watcher drains its watches and writes down what it found (see
//! `corral_sim_tests::watches`); a session that expires is replaced by a new one.
//!
//! After the workload the faults are healed and the ensemble converges; each watcher then arms
//! every watch it can, and a last writer changes every znode (data and children). Then, per
//! session: events in zxid order, none after a reply that reflected its change, every one-shot
//! registration completed at most once, and every one completed (no watch lost, across
//! re-attaches to other members too); every live session's recursive watch saw the last
//! changes. The log audit and convergence are checked too.
#![cfg(madsim)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_client::{
    AddWatchMode, Client, CreateMode, CreateOptions, Error, ErrorCode, SessionState, SessionStates, Stat, Watch, WatchStream,
};
use corral_sim_tests::harness;
use corral_sim_tests::sim::{on_node, rand_below, setup_node, Ensemble, Faults, Nemesis};
use corral_sim_tests::watches::{check, Entry, Event, EventType, History, Registration, WatchKind};
use futures::FutureExt;
use madsim::runtime::Handle;

const PARENT: &str = "/w";
const KEYS: [&str; 3] = ["/w/a", "/w/b", "/w/c"];
const WATCHERS: usize = 6;
const WRITERS: usize = 4;
const WORKLOAD: Duration = Duration::from_secs(30);
const SESSION_TIMEOUT_MS: i32 = 6000;
/// The one-shot watch calls; with a key, a slot holding at most one registration at a time.
const METHODS: [&str; 3] = ["get_data_watch", "exists_watch", "get_children_watch"];

#[test]
fn watches_under_combined_faults() {
    harness::run(watches);
}

/// Seeds that found bugs (docs/testing.md, bugs found): 5027, four entries never answered by
/// openraft held every proposal slot of a healthy leader, and the last writes retried forever.
#[test]
fn watches_regression_seeds() {
    harness::run_seeds(&[5027], watches);
}

/// The highest zxid a stat proves the state it came from is at or after.
fn reflects(stat: &Stat) -> u64 {
    stat.czxid.max(stat.mzxid).max(stat.pzxid).max(0) as u64
}

fn zxid(z: i64) -> u64 {
    z.max(0) as u64
}

fn pick<T: Copy>(from: &[T]) -> T {
    from[rand_below(from.len() as u64) as usize]
}

/// Where the scenario tells the watchers to go.
#[derive(Default)]
struct Phase {
    /// Stop the workload and arm every watch.
    quiesce: AtomicBool,
    /// Watchers that armed every watch they could.
    ready: AtomicUsize,
    /// The last writes are done and their events had time to arrive: stop.
    done: AtomicBool,
}

/// One watcher: its client, its current session's history and outstanding watches.
struct Watcher {
    name: String,
    client: Client,
    sessions: usize,
    history: History,
    next_id: u64,
    /// Outstanding one-shot registrations by slot (method, path).
    one_shot: BTreeMap<(&'static str, &'static str), (u64, Watch)>,
    /// Persistent registrations still delivering, by path and mode.
    streams: BTreeMap<(&'static str, bool), (u64, WatchStream)>,
    /// Finished sessions' histories.
    done: Vec<History>,
    /// The session's state changes, noted in the history as they are drained.
    states: Option<SessionStates>,
}

impl Watcher {
    fn new(name: String, client: Client) -> Watcher {
        Watcher {
            history: History { name: format!("{name} session 0"), ..History::default() },
            name,
            client,
            sessions: 0,
            next_id: 0,
            one_shot: BTreeMap::new(),
            streams: BTreeMap::new(),
            done: Vec::new(),
            states: None,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A reply came back: what it reflects, the last zxid now, the registration it made.
    fn reply(&mut self, what: String, reflects: u64, registered: Option<Registration>) {
        let last_zxid = self.client.last_zxid();
        self.history.entries.push(Entry::Reply { what, reflects, last_zxid, registered });
    }

    /// Polls every watch without waiting and writes down what it found.
    fn drain(&mut self) {
        self.history.entries.push(Entry::Drain);
        if let Some(states) = &mut self.states {
            while let Some(Some(state)) = states.next_state().now_or_never() {
                let on = self.client.current_endpoint().unwrap_or_default();
                self.history.entries.push(Entry::Note(format!("{state:?} (endpoint {on})")));
            }
        }
        let mut fired = Vec::new();
        for (slot, (id, watch)) in &mut self.one_shot {
            match watch.now_or_never() {
                None => {}
                Some(Ok(e)) => {
                    let event = Event { kind: e.kind, path: e.path, zxid: e.zxid };
                    self.history.entries.push(Entry::Event { watch: *id, event });
                    fired.push(*slot);
                }
                Some(Err(e)) => {
                    self.history.entries.push(Entry::Failed { watch: *id, error: e.to_string() });
                    fired.push(*slot);
                }
            }
        }
        for slot in fired {
            self.one_shot.remove(&slot);
        }
        let mut ended = Vec::new();
        for (key, (id, stream)) in &mut self.streams {
            loop {
                match stream.next_event().now_or_never() {
                    None => break,
                    Some(Some(e)) => {
                        let event = Event { kind: e.kind, path: e.path, zxid: e.zxid };
                        self.history.entries.push(Entry::Event { watch: *id, event });
                    }
                    Some(None) => {
                        ended.push(*key);
                        break;
                    }
                }
            }
        }
        for key in ended {
            self.streams.remove(&key);
        }
    }

    fn session_over(&self) -> bool {
        matches!(self.client.session_state(), SessionState::Expired | SessionState::Closed | SessionState::AuthFailed)
    }

    /// Starts a session (after closing out an ended one), retrying until `give_up` says so.
    async fn start_session(&mut self, give_up: &(dyn Fn() -> bool + Sync)) -> bool {
        if self.sessions > 0 {
            self.drain();
            self.history.ended = true;
            let next = History { name: format!("{} session {}", self.name, self.sessions), ..History::default() };
            self.done.push(std::mem::replace(&mut self.history, next));
            self.one_shot.clear();
            self.streams.clear();
            while self.client.close_session().await.is_err() {
                madsim::time::sleep(Duration::from_millis(100)).await;
            }
        }
        loop {
            match self.client.start_session(SESSION_TIMEOUT_MS).await {
                Ok(_) => {
                    self.sessions += 1;
                    self.states = Some(self.client.session_states());
                    return true;
                }
                Err(_) if give_up() => return false,
                Err(_) => madsim::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Registers a one-shot watch in `slot` (which must be free); whether it is armed.
    async fn arm(&mut self, method: &'static str, path: &'static str) -> bool {
        let c = self.client.clone();
        let (watch, kind, seen, reflected) = match method {
            "get_data_watch" => match c.get_data_watch(path).await {
                Ok((_, stat, w)) => (w, WatchKind::Data, Some(zxid(stat.mzxid)), reflects(&stat)),
                Err(_) => return false,
            },
            "exists_watch" => match c.exists_watch(path).await {
                Ok((Some(stat), w)) => (w, WatchKind::Data, Some(zxid(stat.mzxid)), reflects(&stat)),
                Ok((None, w)) => (w, WatchKind::Created, None, 0),
                Err(_) => return false,
            },
            _ => match c.get_children_watch(path).await {
                Ok((_, stat, w)) => (w, WatchKind::Child, Some(zxid(stat.pzxid)), reflects(&stat)),
                Err(_) => return false,
            },
        };
        let id = self.id();
        let registration = Registration { id, method, kind, path: path.to_string(), seen };
        self.reply(format!("{method} {path}"), reflected, Some(registration));
        self.one_shot.insert((method, path), (id, watch));
        true
    }

    /// Adds the persistent watches that are missing: recursive on `/w`, plain on one key.
    async fn add_persistent(&mut self, key: &'static str) {
        for (path, recursive) in [(PARENT, true), (key, false)] {
            if self.streams.contains_key(&(path, recursive)) {
                continue;
            }
            let mode = if recursive { AddWatchMode::PersistentRecursive } else { AddWatchMode::Persistent };
            if let Ok(stream) = self.client.add_watch(path, mode).await {
                let id = self.id();
                let kind = if recursive { WatchKind::Recursive } else { WatchKind::Persistent };
                let registration = Registration { id, method: "add_watch", kind, path: path.to_string(), seen: None };
                self.reply(format!("add_watch {path} {mode:?}"), 0, Some(registration));
                self.streams.insert((path, recursive), (id, stream));
            }
            self.drain();
        }
    }

    /// A read without a watch, or a write; records what its reply reflects.
    async fn plain(&mut self, n: usize) {
        let c = self.client.clone();
        let path = pick(&KEYS);
        let (what, reflected) = match rand_below(5) {
            0 => match c.get_data(path).await {
                Ok((_, stat)) => ("get_data", reflects(&stat)),
                Err(_) => return,
            },
            1 => match c.exists(path).await {
                Ok(stat) => ("exists", stat.as_ref().map_or(0, reflects)),
                Err(_) => return,
            },
            2 => match c.get_children(path).await {
                Ok((_, stat)) => ("get_children", reflects(&stat)),
                Err(_) => return,
            },
            3 => match c.set_data(path, format!("{}-{n}", self.name).as_bytes(), None).await {
                Ok(stat) => ("set_data", zxid(stat.mzxid)),
                Err(_) => return,
            },
            _ => {
                let child = format!("{path}/{}-{n}", self.name);
                match c.create(&child, b"", CreateOptions::new(CreateMode::Persistent)).await {
                    Ok((_, stat)) => ("create", zxid(stat.czxid)),
                    Err(_) => return,
                }
            }
        };
        self.reply(format!("{what} {path}"), reflected, None);
    }

    fn finish(mut self) -> Vec<History> {
        self.drain();
        self.history.ended = self.session_over();
        self.done.push(self.history);
        self.done
    }
}

/// What a watcher leaves: its sessions' histories, and how often its session was not connected
/// while the last changes were made.
struct Outcome {
    histories: Vec<History>,
    disconnects_at_end: usize,
}

async fn watcher(i: usize, endpoints: Vec<String>, phase: Arc<Phase>) -> Outcome {
    let client = Client::builder(endpoints).request_timeout(Duration::from_secs(3)).connect().await.unwrap();
    let mut w = Watcher::new(format!("watcher {i}"), client);
    let persistent_key = KEYS[i % KEYS.len()];
    let quiescing = || phase.quiesce.load(Ordering::Relaxed);
    if !w.start_session(&quiescing).await {
        return Outcome { histories: w.finish(), disconnects_at_end: 0 };
    }
    let mut n = 0;
    while !phase.quiesce.load(Ordering::Relaxed) {
        n += 1;
        match rand_below(10) {
            0..=4 => {
                let (method, path) = (pick(&METHODS), pick(&KEYS));
                if w.one_shot.contains_key(&(method, path)) {
                    w.plain(n).await;
                } else {
                    w.arm(method, path).await;
                }
            }
            5..=8 => w.plain(n).await,
            _ => w.add_persistent(persistent_key).await,
        }
        w.drain();
        if w.session_over() && !w.start_session(&quiescing).await {
            break;
        }
        madsim::time::sleep(Duration::from_millis(rand_below(20))).await;
        w.drain();
    }

    // Arm everything that can be armed (data and child watches need the node), then wait.
    let give_up = || false;
    loop {
        if w.session_over() {
            w.start_session(&give_up).await;
        }
        w.add_persistent(persistent_key).await;
        for path in KEYS {
            for method in METHODS {
                if !w.one_shot.contains_key(&(method, path)) {
                    w.arm(method, path).await;
                    w.drain();
                }
            }
        }
        let exists_everywhere = KEYS.iter().all(|p| w.one_shot.contains_key(&("exists_watch", *p)));
        if exists_everywhere && w.streams.len() == 2 && !w.session_over() {
            break;
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
    let mut states = w.client.session_states();
    phase.ready.fetch_add(1, Ordering::Relaxed);
    let mut disconnects_at_end = 0;
    while !phase.done.load(Ordering::Relaxed) {
        madsim::time::sleep(Duration::from_millis(50)).await;
        w.drain();
        while let Some(Some(state)) = states.next_state().now_or_never() {
            if state != SessionState::Connected {
                disconnects_at_end += 1;
            }
        }
    }
    Outcome { histories: w.finish(), disconnects_at_end }
}

async fn writer(i: usize, endpoints: Vec<String>, start: madsim::time::Instant) -> usize {
    let c = Client::builder(endpoints).request_timeout(Duration::from_secs(3)).connect().await.unwrap();
    let mut n = 0;
    while start.elapsed() < WORKLOAD {
        n += 1;
        let path = pick(&KEYS);
        let persistent = CreateOptions::new(CreateMode::Persistent);
        match rand_below(8) {
            0..=2 => {
                let _ = c.set_data(path, format!("writer {i}-{n}").as_bytes(), None).await;
            }
            3 => {
                let _ = c.create(path, b"", persistent).await;
            }
            4 | 5 => {
                let _ = c.create(&format!("{path}/w{i}-{n}"), b"", persistent).await;
            }
            6 => {
                if let Ok((children, _)) = c.get_children(path).await {
                    if let Some(child) = children.first() {
                        let _ = c.delete(&format!("{path}/{child}"), None).await;
                    }
                }
            }
            _ => {
                // Empty the node, then delete it.
                if let Ok((children, _)) = c.get_children(path).await {
                    for child in children {
                        let _ = c.delete(&format!("{path}/{child}"), None).await;
                    }
                }
                let _ = c.delete(path, None).await;
            }
        }
        madsim::time::sleep(Duration::from_millis(rand_below(40))).await;
    }
    n
}

/// Changes every key once the faults are over: creates it if missing, sets its data, adds a
/// child. Returns the zxids of the changes a recursive watch on `/w` fires for.
async fn last_changes(endpoints: Vec<String>) -> Vec<(EventType, String, u64)> {
    let c = Client::builder(endpoints).request_timeout(Duration::from_secs(30)).connect().await.unwrap();
    let persistent = || CreateOptions::new(CreateMode::Persistent);
    let mut changes = Vec::new();
    let retry = |e: &Error| !e.is_definite();
    for path in KEYS {
        loop {
            match c.create(path, b"", persistent()).await {
                Ok((_, stat)) => {
                    changes.push((EventType::NodeCreated, path.to_string(), zxid(stat.czxid)));
                    break;
                }
                Err(e) if e.code() == ErrorCode::NodeExists => break,
                Err(e) if retry(&e) => {}
                Err(e) => panic!("last create of {path}: {e}"),
            }
        }
        loop {
            match c.set_data(path, b"last", None).await {
                Ok(stat) => {
                    changes.push((EventType::NodeDataChanged, path.to_string(), zxid(stat.mzxid)));
                    break;
                }
                Err(e) if retry(&e) => {}
                Err(e) => panic!("last set of {path}: {e}"),
            }
        }
        let child = format!("{path}/last");
        loop {
            match c.create(&child, b"", persistent()).await {
                Ok((_, stat)) => {
                    changes.push((EventType::NodeCreated, child.clone(), zxid(stat.czxid)));
                    break;
                }
                Err(e) if e.code() == ErrorCode::NodeExists => break,
                Err(e) if retry(&e) => {}
                Err(e) => panic!("last create of {child}: {e}"),
            }
        }
    }
    changes
}

async fn watches() -> String {
    let mut ensemble = Ensemble::start(3);
    let endpoints = ensemble.endpoints();
    let handle = Handle::current();
    let mut znodes: Vec<(&str, &[u8])> = vec![(PARENT, b"")];
    znodes.extend(KEYS.iter().map(|k| (*k, &b""[..])));
    setup_node(endpoints.clone(), &znodes).await;

    let start = madsim::time::Instant::now();
    let phase = Arc::new(Phase::default());
    let mut watchers = Vec::new();
    for i in 0..WATCHERS {
        let node = handle.create_node().name(format!("watcher-{i}")).ip(format!("10.0.2.{}", i + 1).parse().unwrap()).build();
        watchers.push(node.spawn(watcher(i, endpoints.clone(), phase.clone())));
    }
    let mut writers = Vec::new();
    for i in 0..WRITERS {
        let node = handle.create_node().name(format!("writer-{i}")).ip(format!("10.0.4.{}", i + 1).parse().unwrap()).build();
        writers.push(node.spawn(writer(i, endpoints.clone(), start)));
    }

    let mut nemesis = Nemesis::new(Faults::all());
    nemesis.run(&mut ensemble, start + WORKLOAD).await;
    let mut writes = 0;
    for w in writers {
        writes += w.await.unwrap();
    }
    let states = match ensemble.converge(Duration::from_secs(30)).await {
        Ok(states) => states,
        Err(e) => panic!("seed {}: {e}\nnemesis: {:#?}", handle.seed(), nemesis.log),
    };

    // Every watcher arms what it can; then every key changes, and every watch must fire.
    phase.quiesce.store(true, Ordering::Relaxed);
    let ready_by = madsim::time::Instant::now() + Duration::from_secs(60);
    while phase.ready.load(Ordering::Relaxed) < WATCHERS {
        assert!(madsim::time::Instant::now() < ready_by, "seed {}: watchers could not arm their watches", handle.seed());
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
    let last = on_node("last", "10.0.1.2", last_changes(endpoints.clone())).await;
    madsim::time::sleep(Duration::from_millis(3 * SESSION_TIMEOUT_MS as u64)).await;
    phase.done.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for w in watchers {
        outcomes.push(w.await.unwrap());
    }

    let mut problems = Vec::new();
    let (mut events, mut registrations, mut sessions) = (0, 0, 0);
    for outcome in &outcomes {
        for h in &outcome.histories {
            sessions += 1;
            problems.extend(check(h, true));
            for entry in &h.entries {
                match entry {
                    Entry::Event { .. } => events += 1,
                    Entry::Reply { registered: Some(_), .. } => registrations += 1,
                    _ => {}
                }
            }
        }
        // The live session's recursive watch on /w heard every last change (nothing was in
        // the way: the faults were over, and the session stayed connected).
        let Some(h) = outcome.histories.last().filter(|h| !h.ended) else { continue };
        if outcome.disconnects_at_end > 0 {
            continue;
        }
        let recursive: Vec<u64> = h
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Reply { registered: Some(r), .. } if r.kind == WatchKind::Recursive => Some(r.id),
                _ => None,
            })
            .collect();
        let Some(stream) = recursive.last() else { continue };
        for (kind, path, zxid) in &last {
            let heard = h.entries.iter().any(|e| {
                matches!(e, Entry::Event { watch, event } if watch == stream && event.kind == *kind && event.path == *path && event.zxid == *zxid)
            });
            if !heard {
                problems.push(format!("{}: the recursive watch on {PARENT} missed {kind:?} {path} @{zxid}", h.name));
            }
        }
    }
    if !problems.is_empty() {
        let histories: Vec<&History> = outcomes.iter().flat_map(|o| &o.histories).collect();
        panic!(
            "watches (seed {}): {problems:#?}\nlast changes: {last:?}\nhistories: {histories:#?}\nnemesis: {:#?}",
            handle.seed(),
            nemesis.log
        );
    }
    let compared = ensemble.audit.assert_clean();
    let summary = format!(
        "{writes} writer ops, {sessions} sessions, {registrations} registrations, {events} events, {} faults, {} fatal stops, {compared} committed entries compared, converged at {states:?}",
        nemesis.log.len(),
        ensemble.audit.fatal_stops()
    );
    println!("seed {}: {summary}", handle.seed());
    summary
}
