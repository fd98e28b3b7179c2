//! Sessions and ephemeral nodes under the full nemesis.
//!
//! Five clients each open a session and keep creating ephemeral nodes under `/e`. The seed gives
//! each one a fate: keep its session to the end, close it at some point, or have its node killed
//! (so its session must expire). After the workload and the faults, and a wait of a few session
//! timeouts, every member must hold the same tree, and in every replica: each ephemeral's owner
//! session is open; closed and killed clients' sessions are gone; a session that is still open
//! has every ephemeral it was acknowledged; a client that still reports its session connected
//! has it open in every replica.
#![cfg(madsim)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_client::{Client, CreateMode, CreateOptions, ErrorCode, SessionState};
use corral_sim_tests::harness;
use corral_sim_tests::sim::{rand_below, setup_node, Ensemble, Faults, Nemesis};
use madsim::runtime::Handle;
use parking_lot::Mutex;

const CLIENTS: usize = 5;
const WORKLOAD: Duration = Duration::from_secs(15);
const SESSION_TIMEOUT_MS: i32 = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keeps,
    Closes,
    Killed,
}

#[derive(Debug, Default, Clone)]
struct ClientLog {
    session: Option<i64>,
    acked: Vec<String>,
    /// The close was acknowledged.
    closed: bool,
    /// Its session state at the end (for the clients still running).
    final_state: Option<SessionState>,
}

#[test]
fn sessions_and_ephemerals_under_combined_faults() {
    harness::run(sessions);
}

async fn sessions() -> String {
    let mut ensemble = Ensemble::start(3);
    let endpoints = ensemble.endpoints();
    let handle = Handle::current();

    setup_node(endpoints.clone(), &[("/e", b"")]).await;

    let start = madsim::time::Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let logs: Vec<Arc<Mutex<ClientLog>>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let mut fates = Vec::new();
    let mut tasks = Vec::new();
    for (client, log) in logs.iter().enumerate() {
        let fate = match rand_below(3) {
            0 => Fate::Keeps,
            1 => Fate::Closes,
            _ => Fate::Killed,
        };
        fates.push(fate);
        let end_at = Duration::from_millis(2000 + rand_below(WORKLOAD.as_millis() as u64 - 4000));
        let (endpoints, log, done) = (endpoints.clone(), log.clone(), done.clone());
        let node = handle.create_node().name(format!("client-{client}")).ip(format!("10.0.2.{}", client + 1).parse().unwrap()).build();
        if fate == Fate::Killed {
            let id = node.id();
            madsim::task::spawn(async move {
                madsim::time::sleep(end_at).await;
                Handle::current().kill(id);
            });
        }
        tasks.push(node.spawn(async move {
            let c = Client::builder(endpoints).request_timeout(Duration::from_secs(3)).connect().await.unwrap();
            loop {
                match c.start_session(SESSION_TIMEOUT_MS).await {
                    Ok(info) => {
                        log.lock().session = Some(info.id);
                        break;
                    }
                    Err(_) if start.elapsed() < WORKLOAD => madsim::time::sleep(Duration::from_millis(200)).await,
                    Err(_) => return,
                }
            }
            let mut n = 0;
            while start.elapsed() < WORKLOAD {
                if fate == Fate::Closes && start.elapsed() >= end_at {
                    if c.close_session().await.is_ok() {
                        log.lock().closed = true;
                        return;
                    }
                    continue;
                }
                let name = format!("c{client}-{n}");
                n += 1;
                match c.create(&format!("/e/{name}"), b"", CreateOptions::new(CreateMode::Ephemeral)).await {
                    Ok(_) => log.lock().acked.push(name),
                    // Expired (a clock jump, a long partition): nothing more to create.
                    Err(e) if e.code() == ErrorCode::SessionExpired => break,
                    Err(_) => {}
                }
                madsim::time::sleep(Duration::from_millis(50 + rand_below(200))).await;
            }
            // Keep the session (pings) until the checks are done.
            while !done.load(Ordering::Relaxed) {
                madsim::time::sleep(Duration::from_millis(100)).await;
                log.lock().final_state = Some(c.session_state());
            }
        }));
    }

    let mut nemesis = Nemesis::new(Faults::all());
    nemesis.run(&mut ensemble, start + WORKLOAD).await;
    // Let killed and closed sessions expire, clients re-attach, everything settle.
    madsim::time::sleep(Duration::from_millis(5 * SESSION_TIMEOUT_MS as u64)).await;
    let states = match ensemble.converge(Duration::from_secs(30)).await {
        Ok(states) => states,
        Err(e) => panic!("seed {}: {e}\nnemesis: {:#?}", handle.seed(), nemesis.log),
    };
    // One more tick for the clients to note their state.
    madsim::time::sleep(Duration::from_millis(300)).await;

    let logs: Vec<ClientLog> = logs.iter().map(|l| l.lock().clone()).collect();
    let mut problems = Vec::new();
    let mut ephemerals_total = 0;
    for m in &ensemble.members {
        let member = m.running.lock().clone().expect("converged members run");
        let st = member.state.read();
        let open: BTreeSet<i64> = st.tree.sessions().map(|(id, _)| id).collect();
        let (children, _) = st.tree.get_children("/e", &[]).expect("/e exists");
        let mut present = BTreeSet::new();
        for child in &children {
            let stat = st.tree.exists(&format!("/e/{child}")).ok().flatten().expect("a listed child exists");
            if stat.ephemeral_owner != 0 && !open.contains(&stat.ephemeral_owner) {
                problems.push(format!("member {}: /e/{child} is owned by {:#x}, which is not open", m.id, stat.ephemeral_owner));
            }
            present.insert(child.clone());
        }
        ephemerals_total = children.len();
        for (client, (log, fate)) in logs.iter().zip(&fates).enumerate() {
            let Some(session) = log.session else { continue };
            let is_open = open.contains(&session);
            if is_open && (*fate == Fate::Killed || log.closed) {
                problems.push(format!("member {}: client {client} ({fate:?}, closed {}) still has session {session:#x}", m.id, log.closed));
            }
            if is_open {
                for name in &log.acked {
                    if !present.contains(name) {
                        problems.push(format!("member {}: session {session:#x} is open but its ephemeral /e/{name} is gone", m.id));
                    }
                }
            }
            if *fate == Fate::Keeps && log.final_state == Some(SessionState::Connected) && !is_open {
                problems.push(format!("member {}: client {client} reports its session {session:#x} connected, but it is not open", m.id));
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    if !problems.is_empty() {
        panic!("sessions (seed {}): {problems:#?}\nfates: {fates:?}\nclients: {logs:#?}\nnemesis: {:#?}", handle.seed(), nemesis.log);
    }
    let compared = ensemble.audit.assert_clean();
    let acked: usize = logs.iter().map(|l| l.acked.len()).sum();
    let summary = format!(
        "fates {fates:?}, {acked} ephemerals acknowledged, {ephemerals_total} left, {} faults, {} fatal stops, {compared} committed entries compared, converged at {states:?}",
        nemesis.log.len(),
        ensemble.audit.fatal_stops()
    );
    println!("seed {}: {summary}", handle.seed());
    summary
}
