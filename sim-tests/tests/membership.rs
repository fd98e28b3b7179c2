//! Membership churn: voters (the leader among them) are removed and added back again and again
//! while their members are also crashed and isolated, and writes go on through every member.
//!
//! The regression scenario of the membership bugs in docs/testing.md: a leader that had just
//! removed itself asked to change the membership again, and a deposed, isolated leader answering
//! a change from its stale configuration. Three clients create persistent znodes through all
//! members for 15 simulated seconds under `Faults { membership, crash, isolate }` (so about one
//! injection in three is a membership change). Afterwards every acknowledged create must be on
//! every member, all three members must vote again, and the audit and convergence must hold.
#![cfg(madsim)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use corral_client::{Client, CreateMode, CreateOptions};
use corral_sim_tests::harness;
use corral_sim_tests::sim::{rand_below, setup_node, Ensemble, Faults, Nemesis};
use madsim::runtime::Handle;
use parking_lot::Mutex;

const CLIENTS: usize = 3;
const WORKLOAD: Duration = Duration::from_secs(15);

#[test]
fn writes_survive_membership_churn() {
    harness::run(churn);
}

fn faults() -> Faults {
    Faults {
        crash: true,
        pause: false,
        isolate: true,
        asymmetric: false,
        partition: false,
        lossy_network: false,
        sync_failure: false,
        clock_jump: false,
        membership: true,
        max_active: 2,
    }
}

async fn churn() -> String {
    let mut ensemble = Ensemble::start(3);
    let endpoints = ensemble.endpoints();
    let handle = Handle::current();
    setup_node(endpoints.clone(), &[("/m", b"")]).await;

    let start = madsim::time::Instant::now();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let attempts = Arc::new(Mutex::new(0usize));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (endpoints, acked, attempts) = (endpoints.clone(), acked.clone(), attempts.clone());
        let node = handle
            .create_node()
            .name(format!("client-{client}"))
            .ip(format!("10.0.2.{}", client + 1).parse().unwrap())
            .build();
        clients.push(node.spawn(async move {
            let c = Client::builder(endpoints).request_timeout(Duration::from_secs(3)).connect().await.unwrap();
            let mut n = 0;
            while start.elapsed() < WORKLOAD {
                let path = format!("/m/c{client}-{n}");
                n += 1;
                *attempts.lock() += 1;
                match c.create(&path, b"", CreateOptions::new(CreateMode::Persistent)).await {
                    Ok(_) => acked.lock().push(path),
                    Err(e) if e.is_definite() => panic!("create {path} failed definitely: {e}"),
                    // Unknown outcome (a member cut off, a leader removed mid-write).
                    Err(_) => {}
                }
                madsim::time::sleep(Duration::from_millis(rand_below(30))).await;
            }
        }));
    }

    let mut nemesis = Nemesis::new(faults());
    nemesis.run(&mut ensemble, start + WORKLOAD).await;
    for c in clients {
        c.await.unwrap();
    }
    let states = match ensemble.converge(Duration::from_secs(60)).await {
        Ok(states) => states,
        Err(e) => panic!("seed {}: {e}\nnemesis: {:#?}", handle.seed(), nemesis.log),
    };
    // Every member votes again, and holds every acknowledged create.
    let acked = acked.lock().clone();
    assert!(!acked.is_empty(), "seed {}: no create was acknowledged", handle.seed());
    let changes = ensemble.operator.log();
    for m in &ensemble.members {
        let member = m.running.lock().clone().expect("converged members run");
        let view = member.membership();
        assert_eq!(
            view.voters.keys().copied().collect::<Vec<_>>(),
            [1, 2, 3],
            "seed {}: member {} sees {view:?}\nchanges: {changes:#?}",
            handle.seed(),
            m.id
        );
        let st = member.state.read();
        let children: BTreeSet<String> =
            st.tree.get_children("/m", &[]).expect("/m exists").0.into_iter().map(|c| format!("/m/{c}")).collect();
        let lost: Vec<&String> = acked.iter().filter(|p| !children.contains(*p)).collect();
        assert!(
            lost.is_empty(),
            "seed {}: member {} lost acknowledged creates {lost:?}\nnemesis: {:#?}\nchanges: {changes:#?}",
            handle.seed(),
            m.id,
            nemesis.log
        );
    }
    let compared = ensemble.audit.assert_clean();
    let removals = changes.iter().filter(|c| c.contains("Remove(") && !c.contains("retrying")).count();
    let summary = format!(
        "{} creates, {} acknowledged, {removals} removals done, {} faults, {compared} committed entries compared, converged at {states:?}",
        attempts.lock(),
        acked.len(),
        nemesis.log.len()
    );
    println!("seed {}: {summary}", handle.seed());
    summary
}
