//! A semaphore: at most N holders at once, served in arrival order.
//!
//! ```sh
//! cargo run --release -p corral-server -- dev          # in another terminal
//! cargo run -p corral-client --example semaphore
//! ```
//!
//! Six workers (each its own client and session) share `/examples/crawlers`, which has two
//! leases: the output shows at most two working at any time. kazoo's
//! `client.Semaphore("/examples/crawlers", max_leases=2)` takes part in the same semaphore.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_client::recipes::Semaphore;
use corral_client::Client;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoints = std::env::var("CORRAL_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003".into());
    let start = Instant::now();
    let busy = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let client = Client::connect(endpoints.split(',').map(String::from).collect()).await?;
        client.start_session(10_000).await?;
        let busy = busy.clone();
        tasks.push(tokio::spawn(async move {
            let sem = Semaphore::with_data(&client, "/examples/crawlers", 2, format!("worker {i}"));
            let lease = sem.acquire().await?;
            let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
            println!("{:>5} ms  worker {i} working ({now} busy)", start.elapsed().as_millis());
            tokio::time::sleep(Duration::from_millis(300)).await;
            busy.fetch_sub(1, Ordering::SeqCst);
            lease.release().await?;
            client.close_session().await?;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
