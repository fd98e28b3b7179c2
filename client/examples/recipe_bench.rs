//! Recipe throughput against a running ensemble: mutex acquire/release round trips per second,
//! uncontended and with 16 contenders, and queue items per second with 4 producers and 4
//! consumers.
//!
//! ```sh
//! cargo run --release -p corral-server -- dev                      # in another terminal
//! cargo run --release -p corral-client --example recipe_bench      # or: -- --seconds 20 --items 20000
//! ```
//!
//! - **uncontended**: one client and session; each round trip is `acquire` (create the lock node,
//!   list the lock's children) then `release` (delete it).
//! - **16 contenders**: 16 clients, each with its own session (as 16 processes would be), loop on
//!   the same lock; every grant is handed over by a deletion and one watch event. A shared
//!   counter checks that no two hold it at once.
//! - **queue**: 4 producers (`put`, one item per call) and 4 consumers, each its own client and
//!   session; items per second from the first put to the last ack. Run twice: consumers that
//!   `take` and `ack` each item (two writes per item), then consumers that use
//!   `Claim::ack_and_take` (the ack and the next claim in one transaction).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use corral_client::recipes::{Mutex, Queue};
use corral_client::{Client, ErrorCode};
use hdrhistogram::Histogram;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "CORRAL_ENDPOINTS", default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")]
    endpoints: String,
    /// How long each lock measurement runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 16)]
    contenders: usize,
    /// Items through the queue (in each of its two runs).
    #[arg(long, default_value_t = 10_000)]
    items: usize,
    #[arg(long, default_value_t = 4)]
    producers: usize,
    #[arg(long, default_value_t = 4)]
    consumers: usize,
}

async fn session(endpoints: &[String]) -> anyhow::Result<Client> {
    let client = Client::connect(endpoints.to_vec()).await?;
    client.start_session(30_000).await?;
    Ok(client)
}

fn micros(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let endpoints: Vec<String> = args.endpoints.split(',').map(|s| s.trim().to_string()).collect();
    let run = format!("/bench-recipes/{}-{}", std::process::id(), Instant::now().elapsed().as_nanos());
    let seconds = Duration::from_secs(args.seconds);

    // Uncontended.
    let client = session(&endpoints).await?;
    let mutex = Mutex::new(&client, &format!("{run}/solo"));
    drop(mutex.acquire().await?); // creates the parents
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut h = Histogram::<u64>::new(3)?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < seconds {
        let t = Instant::now();
        let g = mutex.acquire().await?;
        g.release().await?;
        h.record(t.elapsed().as_nanos() as u64)?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "mutex, uncontended: {rate:.0} acquire/release round trips/s (p50 {:.0} µs, p99 {:.0} µs, {n} in {:?})",
        micros(&h, 0.5),
        micros(&h, 0.99),
        start.elapsed()
    );

    // Contended.
    let path = format!("{run}/contended");
    drop(Mutex::new(&client, &path).acquire().await?);
    let inside = Arc::new(AtomicUsize::new(0));
    let grants = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..args.contenders {
        clients.push(session(&endpoints).await?);
    }
    let start = Instant::now();
    for c in &clients {
        let (mutex, inside, grants, stop) = (Mutex::new(c, &path), inside.clone(), grants.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let g = mutex.acquire().await?;
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                inside.fetch_sub(1, Ordering::SeqCst);
                grants.fetch_add(1, Ordering::Relaxed);
                g.release().await?;
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(seconds).await;
    stop.store(true, Ordering::Relaxed);
    let counted = grants.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    for t in tasks {
        t.await??;
    }
    println!(
        "mutex, {} contenders: {:.0} acquire/release round trips/s in total ({counted} grants in {elapsed:?})",
        args.contenders,
        counted as f64 / elapsed.as_secs_f64()
    );
    for c in clients {
        c.close_session().await?;
    }

    // Queue: consumers that ack each item, then consumers that ack and claim
    // the next in one transaction.
    for chained in [false, true] {
        let qpath = format!("{run}/queue-{chained}");
        queue_run(&endpoints, &qpath, &args, chained).await?;
    }
    remove_tree(&client, &run).await?;
    client.close_session().await?;
    Ok(())
}

async fn queue_run(endpoints: &[String], qpath: &str, args: &Args, chained: bool) -> anyhow::Result<()> {
    let consumed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut producers = Vec::new();
    for p in 0..args.producers {
        let c = session(endpoints).await?;
        let (qpath, items, producers_n) = (qpath.to_string(), args.items, args.producers);
        producers.push(tokio::spawn(async move {
            let q = Queue::new(&c, &qpath);
            for i in (p..items).step_by(producers_n) {
                q.put(i.to_string().as_bytes()).await?;
            }
            c.close_session().await?;
            anyhow::Ok(Instant::now())
        }));
    }
    let mut consumers = Vec::new();
    for _ in 0..args.consumers {
        let c = session(endpoints).await?;
        let (qpath, consumed, items) = (qpath.to_string(), consumed.clone(), args.items);
        consumers.push(tokio::spawn(async move {
            let q = Queue::new(&c, &qpath);
            let mut next = None;
            while consumed.load(Ordering::SeqCst) < items {
                let item = match next.take() {
                    Some(item) => item,
                    None => match q.take_timeout(Duration::from_millis(200)).await? {
                        Some(item) => item,
                        None => continue,
                    },
                };
                if chained {
                    next = item.ack_and_take().await?;
                } else {
                    item.ack().await?;
                }
                consumed.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(item) = next {
                item.release().await?;
            }
            c.close_session().await?;
            anyhow::Ok(())
        }));
    }
    let mut produced_by = start;
    for p in producers {
        produced_by = produced_by.max(p.await??);
    }
    for c in consumers {
        c.await??;
    }
    let elapsed = start.elapsed();
    println!(
        "queue, {} producers + {} consumers ({}): {:.0} items/s end to end ({} items in {elapsed:?}; puts alone {:.0}/s)",
        args.producers,
        args.consumers,
        if chained { "take, then ack_and_take" } else { "take + ack" },
        args.items as f64 / elapsed.as_secs_f64(),
        args.items,
        args.items as f64 / (produced_by - start).as_secs_f64()
    );
    Ok(())
}

/// Deletes `path` and everything under it.
async fn remove_tree(client: &Client, path: &str) -> anyhow::Result<()> {
    let (children, _) = match client.get_children(path).await {
        Ok(r) => r,
        Err(e) if e.code() == ErrorCode::NoNode => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for child in children {
        Box::pin(remove_tree(client, &format!("{path}/{child}"))).await?;
    }
    match client.delete(path, None).await {
        Ok(()) => Ok(()),
        Err(e) if e.code() == ErrorCode::NoNode => Ok(()),
        Err(e) => Err(e.into()),
    }
}
