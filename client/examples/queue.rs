//! A work queue with competing consumers: every item is consumed exactly once, even when a
//! consumer dies mid-item, and a bounded queue makes producers wait.
//!
//! ```sh
//! cargo run --release -p corral-server -- dev          # in another terminal
//! cargo run -p corral-client --example queue
//! ```
//!
//! One producer puts 200 jobs (a few urgent ones with priority 1) into `/examples/jobs`, bounded
//! to 50 items; three consumers take and acknowledge them. Consumer 0 "crashes" once, holding a
//! job: its claim goes with its session (3 s) and another consumer gets the job. The counts at
//! the end add up to 200, each job acknowledged once. kazoo's
//! `client.LockingQueue("/examples/jobs")` produces and consumes on the same queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use corral_client::recipes::Queue;
use corral_client::Client;

const JOBS: usize = 200;

async fn session(timeout_ms: i32) -> anyhow::Result<Client> {
    let endpoints = std::env::var("CORRAL_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003".into());
    let client = Client::connect(endpoints.split(',').map(String::from).collect()).await?;
    client.start_session(timeout_ms).await?;
    Ok(client)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let producer = session(10_000).await?;
    let done = Arc::new(AtomicUsize::new(0));
    let producing = tokio::spawn(async move {
        let queue = Queue::bounded(&producer, "/examples/jobs", 50);
        for i in 0..JOBS {
            let priority = if i % 50 == 49 { 1 } else { 100 };
            queue.put_with_priority(format!("job {i}").as_bytes(), priority).await?;
        }
        println!("producer: {JOBS} jobs queued");
        producer.close_session().await?;
        anyhow::Ok(())
    });
    let mut consumers = Vec::new();
    for k in 0..3 {
        let done = done.clone();
        consumers.push(tokio::spawn(async move {
            let mut mine = 0;
            let mut crashed = k != 0;
            while done.load(Ordering::SeqCst) < JOBS {
                let client = session(3000).await?;
                let queue = Queue::new(&client, "/examples/jobs");
                while done.load(Ordering::SeqCst) < JOBS {
                    let Some(job) = queue.take_timeout(std::time::Duration::from_millis(500)).await? else { continue };
                    if !crashed && mine == 10 {
                        println!("consumer {k}: crashing while holding {:?}", String::from_utf8_lossy(job.data()));
                        job.abandon();
                        crashed = true;
                        break; // the client (and so the session) is dropped
                    }
                    if job.priority() == Some(1) {
                        println!("consumer {k}: urgent {}", String::from_utf8_lossy(job.data()));
                    }
                    job.ack().await?;
                    mine += 1;
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
            println!("consumer {k}: {mine} jobs");
            anyhow::Ok(mine)
        }));
    }
    producing.await??;
    let mut total = 0;
    for c in consumers {
        total += c.await??;
    }
    println!("{total} jobs consumed, each once");
    Ok(())
}
