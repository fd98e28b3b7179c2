//! A barrier and a double barrier.
//!
//! ```sh
//! cargo run --release -p corral-server -- dev          # in another terminal
//! cargo run -p corral-client --example barrier
//! ```
//!
//! Four workers wait at `/examples/gate` until the coordinator lowers it; then they go
//! through the double barrier `/examples/phase`, which starts the computation only once all
//! four have entered and lets them leave only once all four have finished it.

use std::time::{Duration, Instant};

use corral_client::recipes::{Barrier, DoubleBarrier};
use corral_client::Client;

async fn session() -> anyhow::Result<Client> {
    let endpoints = std::env::var("CORRAL_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003".into());
    let client = Client::connect(endpoints.split(',').map(String::from).collect()).await?;
    client.start_session(10_000).await?;
    Ok(client)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let start = Instant::now();
    let coordinator = session().await?;
    let gate = Barrier::new(&coordinator, "/examples/gate");
    gate.create().await?;
    let mut workers = Vec::new();
    for i in 0..4u64 {
        let client = session().await?;
        workers.push(tokio::spawn(async move {
            Barrier::new(&client, "/examples/gate").wait().await?;
            println!("{:>5} ms  worker {i}: through the gate", start.elapsed().as_millis());
            let phase = DoubleBarrier::new(&client, "/examples/phase", 4);
            tokio::time::sleep(Duration::from_millis(100 * i)).await;
            phase.enter().await?;
            println!("{:>5} ms  worker {i}: computing", start.elapsed().as_millis());
            tokio::time::sleep(Duration::from_millis(400 - 100 * i)).await;
            phase.leave().await?;
            println!("{:>5} ms  worker {i}: everyone is done", start.elapsed().as_millis());
            client.close_session().await?;
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("{:>5} ms  coordinator: lowering the gate", start.elapsed().as_millis());
    gate.remove().await?;
    for w in workers {
        w.await??;
    }
    coordinator.close_session().await?;
    Ok(())
}
