//! Sequential nodes created concurrently under one parent while the full nemesis runs.
//!
//! Four clients create persistent sequential nodes under `/q`, each carrying a unique tag, for
//! 15 simulated seconds under `Faults::all()`. Afterwards a final client lists `/q` and reads
//! every child; `sequential::check` then requires unique acknowledged names, sequence numbers
//! increasing in zxid order, every acknowledged create present, and no create applied twice.
//! The log audit and convergence are checked too.
#![cfg(madsim)]

use std::sync::Arc;
use std::time::Duration;

use corral_client::{Client, CreateMode, CreateOptions};
use corral_sim_tests::harness;
use corral_sim_tests::sequential::{check, Child, Created};
use corral_sim_tests::sim::{on_node, rand_below, setup_node, Ensemble, Faults, Nemesis};
use madsim::runtime::Handle;
use parking_lot::Mutex;

const CLIENTS: usize = 4;
const WORKLOAD: Duration = Duration::from_secs(15);

#[test]
fn sequential_nodes_under_combined_faults() {
    harness::run(sequential);
}

async fn sequential() -> String {
    let mut ensemble = Ensemble::start(3);
    let endpoints = ensemble.endpoints();
    let handle = Handle::current();

    setup_node(endpoints.clone(), &[("/q", b"")]).await;

    let start = madsim::time::Instant::now();
    let attempts = Arc::new(Mutex::new(Vec::<Created>::new()));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (endpoints, attempts) = (endpoints.clone(), attempts.clone());
        let node = handle.create_node().name(format!("client-{client}")).ip(format!("10.0.2.{}", client + 1).parse().unwrap()).build();
        clients.push(node.spawn(async move {
            let c = Client::builder(endpoints).request_timeout(Duration::from_secs(3)).connect().await.unwrap();
            let mut n = 0;
            while start.elapsed() < WORKLOAD {
                let tag = format!("c{client}-{n}");
                n += 1;
                let r = c.create("/q/n-", tag.as_bytes(), CreateOptions::new(CreateMode::PersistentSequential)).await;
                let attempt = match r {
                    Ok((path, stat)) => {
                        let name = path.strip_prefix("/q/").unwrap_or(&path).to_string();
                        Created::Acked { tag, name, czxid: stat.czxid }
                    }
                    Err(e) if e.is_definite() => panic!("a sequential create failed definitely: {e}"),
                    Err(_) => Created::Unknown { tag },
                };
                attempts.lock().push(attempt);
                madsim::time::sleep(Duration::from_millis(rand_below(20))).await;
            }
        }));
    }

    let mut nemesis = Nemesis::new(Faults::all());
    nemesis.run(&mut ensemble, start + WORKLOAD).await;
    for c in clients {
        c.await.unwrap();
    }

    // The final state, read linearizably after the faults are healed.
    let children = on_node("final", "10.0.1.2", async move {
        let c = Client::builder(endpoints).request_timeout(Duration::from_secs(30)).connect().await.unwrap();
        let reader = c.linearizable();
        let (names, _) = reader.get_children("/q").await.expect("final listing");
        let mut children = Vec::new();
        for name in names {
            let (data, stat) = reader.get_data(&format!("/q/{name}")).await.expect("final read");
            children.push(Child { name, czxid: stat.czxid, tag: String::from_utf8_lossy(&data).into_owned() });
        }
        children
    })
    .await;

    let attempts = attempts.lock().clone();
    let acked = attempts.iter().filter(|a| matches!(a, Created::Acked { .. })).count();
    assert!(acked > 0, "no create was acknowledged in {} attempts", attempts.len());
    if let Err(violation) = check(&attempts, &children) {
        panic!("sequential nodes (seed {}): {violation}\nnemesis: {:#?}", handle.seed(), nemesis.log);
    }
    let states = match ensemble.converge(Duration::from_secs(30)).await {
        Ok(states) => states,
        Err(e) => panic!("seed {}: {e}\nnemesis: {:#?}", handle.seed(), nemesis.log),
    };
    let compared = ensemble.audit.assert_clean();
    let summary = format!(
        "{} creates, {acked} acknowledged, {} children, {} faults, {} fatal stops, {compared} committed entries compared, converged at {states:?}",
        attempts.len(),
        children.len(),
        nemesis.log.len(),
        ensemble.audit.fatal_stops()
    );
    println!("seed {}: {summary}", handle.seed());
    summary
}
