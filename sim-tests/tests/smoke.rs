//! The smallest scenario: an ensemble elects a leader, takes writes through every member, and
//! converges. A fast canary for the simulation build and its determinism.
#![cfg(madsim)]

use std::time::Duration;

use corral_client::{Client, CreateMode, CreateOptions};
use corral_sim_tests::sim::{on_node, Ensemble};

#[test]
fn an_ensemble_takes_writes_and_converges() {
    corral_sim_tests::harness::run(smoke);
}

async fn smoke() -> String {
    let ensemble = Ensemble::start(3);
    let endpoints = ensemble.endpoints();
    if std::env::var("SIM_SMOKE_NO_CLIENT").is_err() {
        on_node("client", "10.0.1.1", async move {
            for (i, endpoint) in endpoints.iter().cycle().take(9).enumerate() {
                let c = Client::builder(vec![endpoint.clone()]).request_timeout(Duration::from_secs(30)).connect().await.unwrap();
                c.create(&format!("/n{i}"), b"x", CreateOptions::new(CreateMode::Persistent)).await.unwrap();
            }
        })
        .await;
    } else {
        madsim::time::sleep(Duration::from_secs(3)).await;
    }
    let states = ensemble.converge(Duration::from_secs(10)).await.unwrap();
    println!("converged at {states:?}");
    format!("{states:?}")
}
