//! A small load generator over the native gRPC API, for quick figures against
//! a running ensemble (the side-by-side comparison with ZooKeeper lives in
//! `bench/`).
//!
//! ```sh
//! cargo run --release -p corral-server -- dev &          # a 3-member ensemble
//! cargo run --release -p corral-client --example load -- set --concurrency 64 --seconds 20
//! cargo run --release -p corral-client --example load -- fill --nodes 1000000
//! ```
//!
//! `set`/`create`/`get` run `--concurrency` request loops spread over
//! `--connections` clients (one HTTP/2 connection each, spread over the
//! members) for `--seconds`, and print throughput and latency percentiles.
//! `fill` creates `--nodes` znodes under `/fill` in multis of 500, for memory
//! measurements. Errors are counted and printed, never hidden.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use corral_client::{Client, CreateMode, CreateOptions, Error, Op};
use hdrhistogram::Histogram;
use parking_lot::Mutex;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Workload {
    /// setData on keys of `--size` bytes.
    Set,
    /// create of new persistent nodes.
    Create,
    /// getData of existing keys (local reads).
    Get,
    /// create `--nodes` nodes under /fill, as fast as possible.
    Fill,
}

#[derive(Parser, Debug)]
struct Args {
    workload: Workload,
    #[arg(long, env = "CORRAL_ENDPOINTS", default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")]
    endpoints: String,
    /// Clients (HTTP/2 connections), each pinned to one member, round robin.
    #[arg(long, default_value_t = 12)]
    connections: usize,
    /// Request loops in flight at once, spread over the connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Distinct keys for set/get.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Nodes to create for `fill`.
    #[arg(long, default_value_t = 1_000_000)]
    nodes: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let endpoints: Vec<String> = args.endpoints.split(',').map(|s| s.trim().to_string()).collect();
    let mut clients = Vec::new();
    for i in 0..args.connections.max(1) {
        clients.push(Client::connect(vec![endpoints[i % endpoints.len()].clone()]).await?);
    }
    let setup = Client::connect(endpoints.clone()).await?;
    let payload = vec![b'x'; args.size];
    match args.workload {
        Workload::Fill => return fill(&args, &clients, &setup, &payload).await,
        Workload::Set | Workload::Get => prepare_keys(&args, &setup, &payload).await?,
        Workload::Create => ensure(&setup, "/load-create").await?,
    }

    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let last_error = Arc::new(Mutex::new(None::<Error>));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let mut tasks = Vec::new();
    for t in 0..args.concurrency {
        let client = clients[t % clients.len()].clone();
        let (stop, measuring, errors, last_error, hist) =
            (stop.clone(), measuring.clone(), errors.clone(), last_error.clone(), hist.clone());
        let payload = payload.clone();
        let (workload, keys) = (args.workload, args.keys);
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("/load/k{}", (t as u64 * 7919 + i) % keys as u64);
                let started = Instant::now();
                let r = match workload {
                    Workload::Set => client.set_data(&key, &payload, None).await.map(drop),
                    Workload::Get => client.get_data(&key).await.map(drop),
                    Workload::Create => client
                        .create(&format!("/load-create/t{t}-{i}"), &payload, CreateOptions::default())
                        .await
                        .map(drop),
                    Workload::Fill => unreachable!(),
                };
                if measuring.load(Ordering::Relaxed) {
                    match r {
                        Ok(()) => local.saturating_record(started.elapsed().as_micros() as u64),
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            *last_error.lock() = Some(e);
                        }
                    }
                }
                i += 1;
            }
            hist.lock().add(&local).expect("same bounds");
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.warmup_seconds)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let h = hist.lock();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{:?}: {} ops in {:.1} s = {:.0} ops/s, {} errors; latency ms p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} \
         (concurrency {}, connections {}, {} B values)",
        args.workload,
        h.len(),
        elapsed.as_secs_f64(),
        h.len() as f64 / elapsed.as_secs_f64(),
        errors.load(Ordering::Relaxed),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0,
        args.concurrency,
        args.connections,
        args.size,
    );
    if let Some(e) = last_error.lock().take() {
        println!("last error: {e}");
    }
    Ok(())
}

async fn ensure(client: &Client, path: &str) -> Result<(), Error> {
    match client.create(path, b"", CreateOptions::new(CreateMode::Persistent)).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == corral_client::ErrorCode::NodeExists => Ok(()),
        Err(e) => Err(e),
    }
}

async fn prepare_keys(args: &Args, client: &Client, payload: &[u8]) -> Result<(), Error> {
    ensure(client, "/load").await?;
    for k in 0..args.keys {
        let path = format!("/load/k{k}");
        if client.exists(&path).await?.is_none() {
            ensure(client, &path).await?;
        }
        client.set_data(&path, payload, None).await?;
    }
    Ok(())
}

async fn fill(args: &Args, clients: &[Client], setup: &Client, payload: &[u8]) -> anyhow::Result<()> {
    const BATCH: usize = 500;
    ensure(setup, "/fill").await?;
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let batches = args.nodes.div_ceil(BATCH) as u64;
    let mut tasks = Vec::new();
    for t in 0..args.concurrency.min(16) {
        let client = clients[t % clients.len()].clone();
        let next = next.clone();
        let payload = payload.to_vec();
        let nodes = args.nodes;
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return Ok::<(), Error>(());
                }
                let first = b as usize * BATCH;
                let ops = (first..(first + BATCH).min(nodes))
                    .map(|i| Op::create(format!("/fill/n{i:08}"), payload.clone(), CreateOptions::default()))
                    .collect();
                client.multi(ops).await?;
                if b % 200 == 0 {
                    eprintln!("{} nodes", first + BATCH);
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let count = setup.get_all_children_number("/fill").await?;
    println!(
        "fill: {} nodes under /fill ({} B each) in {:.1} s",
        count,
        args.size,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
