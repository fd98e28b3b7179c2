//! A read/write lock: readers share it, a writer has it alone, in arrival order.
//!
//! ```sh
//! cargo run --release -p corral-server -- dev          # in another terminal
//! cargo run -p corral-client --example rwlock
//! ```
//!
//! Starts three readers and one writer on `/examples/rwlock` in one process (each its own
//! client and session, as separate processes would be) and prints when each gets and gives up
//! the lock: the readers overlap, the writer runs alone, and readers that arrive after the
//! writer wait for it.

use std::time::{Duration, Instant};

use corral_client::recipes::RwLock;
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
    let mut tasks = Vec::new();
    for (i, writer) in [(0, false), (1, false), (2, true), (3, false)] {
        let client = session().await?;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100 * i)).await;
            let lock = RwLock::with_data(&client, "/examples/rwlock", format!("#{i}"));
            let guard = if writer { lock.write().await? } else { lock.read().await? };
            let what = if writer { "writer" } else { "reader" };
            println!("{:>5} ms  #{i} {what} in (token {})", start.elapsed().as_millis(), guard.fencing_token());
            tokio::time::sleep(Duration::from_millis(500)).await;
            println!("{:>5} ms  #{i} {what} out", start.elapsed().as_millis());
            guard.release().await?;
            client.close_session().await?;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
