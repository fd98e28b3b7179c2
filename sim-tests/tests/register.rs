//! Linearizable registers under crashes, restarts and partitions.
//!
//! Many clients read (linearizably), write and compare-and-set a few znodes while a nemesis
//! works on the ensemble: in the first scenario one fault at a time (crash losing unsynced
//! writes, isolation, a cut link); in the second, up to two overlapping faults of every kind the
//! harness has (`sim::Faults::all`: also pauses, one-way isolation and links, random partitions,
//! message loss and latency, fsync failures, clock jumps). The history must be linearizable per
//! key; the audit must find committed entries identical across members and applied zxids
//! strictly increasing; afterwards every member must hold the same tree at the same zxid.
//!
//! Each seed's history is thousands of operations: many clients with little think time over a
//! long simulated run (simulated time is cheap, a seed's cost is its operations). Faults make
//! clients wait (for a quorum, an election, a 3 s timeout), so the runs with more faults are
//! longer.
//!
//! Run: see docs/testing.md; `MADSIM_TEST_NUM=N` seeds, `MADSIM_TEST_SEED=S` to replay one.
#![cfg(madsim)]

use std::sync::Arc;
use std::time::Duration;

use corral_client::{Client, Error, ErrorCode};
use corral_sim_tests::checker::{check, Call, Op, Outcome};
use corral_sim_tests::harness;
use corral_sim_tests::sim::{on_node, rand_below, setup_node, Ensemble, Faults, Nemesis};
use madsim::runtime::Handle;
use parking_lot::Mutex;

const KEYS: usize = 3;
/// Clients, and how long they run, per scenario.
const ONE_AT_A_TIME: (usize, Duration) = (16, Duration::from_secs(30));
const COMBINED: (usize, Duration) = (32, Duration::from_secs(90));
const LEADER_RESTARTS: (usize, Duration) = (32, Duration::from_secs(60));
/// A client's pause between two operations: up to this many milliseconds.
const THINK_MS: u64 = 5;
const INITIAL: &str = "init";

fn now_ns(start: madsim::time::Instant) -> u128 {
    start.elapsed().as_nanos()
}

fn outcome_of_write(r: Result<corral_client::Stat, Error>) -> Outcome {
    match r {
        Ok(stat) => Outcome::Written { version: stat.version },
        Err(e) if e.code() == ErrorCode::BadVersion => Outcome::Refused,
        Err(e) if e.is_definite() => panic!("a register write failed definitely: {e}"),
        Err(_) => Outcome::Unknown,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    OneAtATime,
    Combined,
    LeaderRestarts,
}

#[test]
fn linearizable_registers_under_crashes_and_partitions() {
    harness::run(|| registers(Mode::OneAtATime));
}

#[test]
fn linearizable_registers_under_combined_faults() {
    harness::run(|| registers(Mode::Combined));
}

/// The leader crashes and comes back quickly, again and again: a restarted member must not serve
/// read indexes from the commit point it recovered from disk (see docs/testing.md, bugs found).
#[test]
fn linearizable_registers_across_leader_restarts() {
    harness::run(|| registers(Mode::LeaderRestarts));
}

async fn registers(mode: Mode) -> String {
    let combined = mode == Mode::Combined;
    let (clients_n, workload) = match mode {
        Mode::OneAtATime => ONE_AT_A_TIME,
        Mode::Combined => COMBINED,
        Mode::LeaderRestarts => LEADER_RESTARTS,
    };
    let mut ensemble = Ensemble::start(3);
    let endpoints = ensemble.endpoints();
    let handle = Handle::current();

    let keys: Vec<String> = (0..KEYS).map(|k| format!("/r{k}")).collect();
    let znodes: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), INITIAL.as_bytes())).collect();
    setup_node(endpoints.clone(), &znodes).await;

    let start = madsim::time::Instant::now();
    let history = Arc::new(Mutex::new(Vec::<Op>::new()));
    let mut clients = Vec::new();
    for client in 0..clients_n {
        let (endpoints, history) = (endpoints.clone(), history.clone());
        let node = handle.create_node().name(format!("client-{client}")).ip(format!("10.0.2.{}", client + 1).parse().unwrap()).build();
        clients.push(node.spawn(async move {
            let c = Client::builder(endpoints).request_timeout(Duration::from_secs(3)).connect().await.unwrap();
            let reader = c.linearizable();
            let mut n = 0;
            let mut last_version = [0; KEYS];
            while start.elapsed() < workload {
                let key = rand_below(KEYS as u64) as usize;
                let path = format!("/r{key}");
                let invoked = now_ns(start);
                let (call, outcome) = match rand_below(3) {
                    0 => {
                        let outcome = match reader.get_data(&path).await {
                            Ok((data, stat)) => {
                                last_version[key] = stat.version;
                                Outcome::Read { value: String::from_utf8_lossy(&data).into_owned(), version: stat.version }
                            }
                            Err(_) => Outcome::Unknown,
                        };
                        (Call::Read, outcome)
                    }
                    1 => {
                        let value = format!("c{client}-{n}");
                        let r = c.set_data(&path, value.as_bytes(), None).await;
                        (Call::Write { value }, outcome_of_write(r))
                    }
                    _ => {
                        let value = format!("c{client}-{n}");
                        let expected = last_version[key];
                        let r = c.set_data(&path, value.as_bytes(), Some(expected)).await;
                        (Call::Cas { expected, value }, outcome_of_write(r))
                    }
                };
                n += 1;
                // A failed read tells nothing; an unknown write stays in the history.
                if !(call == Call::Read && outcome == Outcome::Unknown) {
                    history.lock().push(Op { client, key, call, invoked, returned: now_ns(start), outcome });
                }
                madsim::time::sleep(Duration::from_millis(rand_below(THINK_MS))).await;
            }
        }));
    }

    let mut nemesis = Nemesis::new(Faults::all());
    if combined {
        nemesis.run(&mut ensemble, start + workload).await;
    }
    // Crash whoever leads, and restart it at once.
    while mode == Mode::LeaderRestarts && start.elapsed() < workload {
        madsim::time::sleep(Duration::from_millis(200 + rand_below(600))).await;
        if let Some(leader) = ensemble.leader() {
            nemesis.note(format!("crash leader {leader}"));
            ensemble.crash(leader);
            madsim::time::sleep(Duration::from_millis(rand_below(100))).await;
            ensemble.restart(leader);
        }
    }
    // The first nemesis: one fault at a time, so a quorum is usually there.
    while mode == Mode::OneAtATime && start.elapsed() < workload {
        madsim::time::sleep(Duration::from_millis(500 + rand_below(1500))).await;
        let victim = rand_below(3) as usize;
        match rand_below(4) {
            0 => {
                ensemble.crash(victim);
                madsim::time::sleep(Duration::from_millis(rand_below(3000))).await;
                ensemble.restart(victim);
            }
            1 => {
                ensemble.isolate(victim);
                madsim::time::sleep(Duration::from_millis(rand_below(3000))).await;
                ensemble.heal(victim);
            }
            2 => {
                let other = (victim + 1 + rand_below(2) as usize) % 3;
                ensemble.cut(victim, other);
                madsim::time::sleep(Duration::from_millis(rand_below(3000))).await;
                ensemble.uncut(victim, other);
            }
            _ => {}
        }
    }
    for c in clients {
        c.await.unwrap();
    }

    // Afterwards: a final linearizable read of every key, then the checks.
    let final_history = history.clone();
    on_node("final", "10.0.1.2", async move {
        let c = Client::builder(endpoints).request_timeout(Duration::from_secs(30)).connect().await.unwrap();
        let reader = c.linearizable();
        for key in 0..KEYS {
            let invoked = now_ns(start);
            let (data, stat) = reader.get_data(&format!("/r{key}")).await.expect("final read");
            final_history.lock().push(Op {
                client: usize::MAX,
                key,
                call: Call::Read,
                invoked,
                returned: now_ns(start),
                outcome: Outcome::Read { value: String::from_utf8_lossy(&data).into_owned(), version: stat.version },
            });
        }
    })
    .await;

    let history = history.lock().clone();
    let acked = history.iter().filter(|op| matches!(op.outcome, Outcome::Written { .. })).count();
    assert!(acked > 0, "no write was acknowledged in {} operations", history.len());
    if let Err(violation) = check(&history, INITIAL) {
        panic!("not linearizable (seed {}): {violation}\nnemesis: {:#?}", handle.seed(), nemesis.log);
    }
    let states = match ensemble.converge(Duration::from_secs(30)).await {
        Ok(states) => states,
        Err(e) => panic!("seed {}: {e}\nnemesis: {:#?}", handle.seed(), nemesis.log),
    };
    let compared = ensemble.audit.assert_clean();
    let summary = format!(
        "{} ops, {acked} writes acknowledged, {} faults, {} fatal stops, {compared} committed entries compared, members converged at {states:?}",
        history.len(),
        nemesis.log.len(),
        ensemble.audit.fatal_stops()
    );
    println!("seed {}: {summary}", handle.seed());
    summary
}
