//! `corral-bench run`: one workload against one ensemble, measured with HDR histograms.
//!
//! Clients (sessions) are spread round robin over the given members; each keeps `inflight`
//! requests outstanding (one loop per slot). Nothing is measured during the warm-up. Every
//! failed request is counted by kind and reported; a run never hides errors.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::driver::{Conn, DataWatcher, Protocol};
use crate::report::Report;

/// What each request loop does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Workload {
    /// create of new persistent nodes with `--size`-byte data.
    Create,
    /// setData (any version) over `--keys` existing nodes.
    Set,
    /// getData over `--keys` existing nodes (served by the member the client is on).
    Get,
    /// getData or setData, `--read-pct` percent reads.
    Mixed,
    /// multi of `--multi-ops` setData ops on distinct keys.
    Multi,
    /// One writer sets a node that `--watchers` sessions watch; latency is from the write to
    /// each notification, throughput counts notifications.
    Watch,
    /// Session establishment: connect (handshake, a committed createSession) then close.
    Sessions,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::Set => "set",
            Workload::Get => "get",
            Workload::Mixed => "mixed",
            Workload::Multi => "multi",
            Workload::Watch => "watch",
            Workload::Sessions => "sessions",
        }
    }
}

#[derive(Clone, Debug, clap::Args, Serialize, Deserialize)]
pub struct RunArgs {
    #[arg(long, value_enum, default_value = "set")]
    pub workload: Workload,
    #[arg(long, value_enum, default_value = "zk")]
    pub protocol: Protocol,
    /// Members to spread the clients over: ZooKeeper ports for `--protocol zk`, gRPC addresses
    /// for `--protocol grpc`.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183")]
    pub endpoints: Vec<String>,
    /// Client sessions (one connection each).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Requests each client keeps outstanding.
    #[arg(long, default_value_t = 1)]
    pub inflight: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Distinct existing keys for set/get/mixed/multi.
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// Percentage of reads in the mixed workload.
    #[arg(long, default_value_t = 90)]
    pub read_pct: u32,
    /// Ops per multi.
    #[arg(long, default_value_t = 10)]
    pub multi_ops: usize,
    /// Watching sessions in the watch workload.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Target total request rate (ops/s) spread evenly over the request loops; 0 = as fast as
    /// the replies come. With a rate, latency is measured from each request's scheduled start,
    /// so a stalled server is not hidden by requests that were never sent (coordinated omission).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Session timeout asked for, in ms.
    #[arg(long, default_value_t = 30_000)]
    pub session_timeout_ms: i32,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

const ROOT: &str = "/corral-bench";

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// What the request loops share.
struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Completed requests, measured or not (for the progress bar).
    done: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    histogram: Mutex<Histogram<u64>>,
}

impl Shared {
    fn error(&self, kind: String) {
        if self.measuring.load(Ordering::Relaxed) {
            *self.errors.lock().entry(kind).or_default() += 1;
        }
    }
}

fn key(i: usize) -> String {
    format!("{ROOT}/k/{i:07}")
}

/// Runs one workload and returns its report.
pub async fn run(args: &RunArgs, label: &str) -> anyhow::Result<Report> {
    anyhow::ensure!(!args.endpoints.is_empty(), "no endpoints");
    anyhow::ensure!(args.clients > 0 && args.inflight > 0, "--clients and --inflight must be at least 1");
    let payload = vec![b'x'; args.size];
    let setup = Conn::open(args.protocol, &args.endpoints[0], args.session_timeout_ms)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to {}: {e}", args.endpoints[0]))?;
    prepare(args, &setup, &payload).await?;

    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
        histogram: Mutex::new(new_histogram()),
    });
    let run_id = format!("{:08x}", rand::random::<u32>());
    let tasks = match args.workload {
        Workload::Watch => start_watch(args, &shared, &payload).await?,
        Workload::Sessions => start_sessions(args, &shared),
        _ => {
            if args.workload == Workload::Create {
                setup.ensure(&format!("{ROOT}/c-{run_id}"), b"").await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            start_requests(args, &shared, &payload, &run_id).await?
        }
    };

    let progress = progress_bar(args, label);
    let tick = Duration::from_millis(250);
    let warmup_end = Instant::now() + Duration::from_secs_f64(args.warmup);
    while Instant::now() < warmup_end {
        tokio::time::sleep(tick.min(warmup_end.saturating_duration_since(Instant::now()))).await;
        progress.set_position(shared.done.load(Ordering::Relaxed));
    }
    shared.measuring.store(true, Ordering::Relaxed);
    let measured_from = shared.done.load(Ordering::Relaxed);
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(args.duration);
    while Instant::now() < end {
        tokio::time::sleep(tick.min(end.saturating_duration_since(Instant::now()))).await;
        let done = shared.done.load(Ordering::Relaxed);
        progress.set_position(done);
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        progress.set_message(format!("{:.0} ops/s", (done - measured_from) as f64 / secs));
    }
    shared.measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    progress.finish_and_clear();
    // Loops finish their current request; a watcher blocked on a notification that will not
    // come (the writer stopped) is aborted after a grace period.
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    if tokio::time::timeout(Duration::from_secs(15), futures::future::join_all(tasks)).await.is_err() {
        aborts.iter().for_each(|a| a.abort());
    }
    let _ = setup.close().await;
    let h = shared.histogram.lock().clone();
    let errors = shared.errors.lock().clone();
    Ok(Report::new(label, args, &h, errors, elapsed))
}

fn progress_bar(args: &RunArgs, label: &str) -> indicatif::ProgressBar {
    if args.quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {prefix} {elapsed} {pos} requests {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_prefix(format!("{label} {} c={} i={}", args.workload.name(), args.clients, args.inflight));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Creates the root and the keys the workload reads and writes (idempotent across runs).
async fn prepare(args: &RunArgs, setup: &Conn, payload: &[u8]) -> anyhow::Result<()> {
    let e = |e: String| anyhow::anyhow!("preparing keys: {e}");
    setup.ensure(ROOT, b"").await.map_err(e)?;
    match args.workload {
        Workload::Set | Workload::Get | Workload::Mixed | Workload::Multi => {
            setup.ensure(&format!("{ROOT}/k"), b"").await.map_err(e)?;
            let have = setup.children_count(&format!("{ROOT}/k")).await.map_err(e)? as usize;
            if have < args.keys {
                load_nodes(setup, (0..args.keys).map(key).collect(), payload).await?;
            }
        }
        Workload::Watch => setup.ensure(&format!("{ROOT}/w"), payload).await.map_err(e)?,
        Workload::Create | Workload::Sessions => {}
    }
    Ok(())
}

/// Creates `paths` in multis of 100, skipping any that exist.
pub async fn load_nodes(conn: &Conn, paths: Vec<String>, payload: &[u8]) -> anyhow::Result<()> {
    for batch in paths.chunks(100) {
        if conn.multi_create(batch, payload).await.is_err() {
            for p in batch {
                conn.ensure(p, payload).await.map_err(|e| anyhow::anyhow!("creating {p}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Opens `n` sessions spread over the endpoints, a few at a time.
async fn open_clients(args: &RunArgs, n: usize) -> anyhow::Result<Vec<Conn>> {
    let mut out = Vec::with_capacity(n);
    for chunk_start in (0..n).step_by(32) {
        let opens = (chunk_start..(chunk_start + 32).min(n)).map(|i| {
            let endpoint = args.endpoints[i % args.endpoints.len()].clone();
            async move {
                Conn::open(args.protocol, &endpoint, args.session_timeout_ms)
                    .await
                    .map_err(|e| anyhow::anyhow!("opening a session on {endpoint}: {e}"))
            }
        });
        for c in futures::future::join_all(opens).await {
            out.push(c?);
        }
    }
    Ok(out)
}

async fn start_requests(
    args: &RunArgs,
    shared: &Arc<Shared>,
    payload: &[u8],
    run_id: &str,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let conns = open_clients(args, args.clients).await.context("opening clients")?;
    let mut tasks = Vec::new();
    for (c, conn) in conns.into_iter().enumerate() {
        for slot in 0..args.inflight {
            let (conn, shared, payload) = (conn.clone(), shared.clone(), payload.to_vec());
            let args = args.clone();
            let create_parent = format!("{ROOT}/c-{run_id}");
            let lane = c * args.inflight + slot;
            tasks.push(tokio::spawn(async move {
                let mut local = new_histogram();
                // A cheap per-loop generator: the workload's key choice need not be random in any
                // strong sense, only spread.
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (lane as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                let mut i: u64 = 0;
                let lanes = (args.clients * args.inflight) as f64;
                let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(lanes / args.rate));
                // Loops start spread over one interval, so the rate is smooth.
                let mut scheduled = Instant::now() + interval.map_or(Duration::ZERO, |d| d.mul_f64(lane as f64 / lanes));
                while !shared.stop.load(Ordering::Relaxed) {
                    let started = match interval {
                        Some(interval) => {
                            let at = scheduled;
                            scheduled += interval;
                            tokio::time::sleep_until(at.into()).await;
                            at
                        }
                        None => Instant::now(),
                    };
                    let r = match args.workload {
                        Workload::Create => conn.create(&format!("{create_parent}/n{lane}-{i}"), &payload).await,
                        Workload::Set => conn.set(&key(next() as usize % args.keys), &payload).await,
                        Workload::Get => conn.get(&key(next() as usize % args.keys)).await.map(drop),
                        Workload::Mixed => {
                            let k = key(next() as usize % args.keys);
                            if (next() % 100) < args.read_pct as u64 {
                                conn.get(&k).await.map(drop)
                            } else {
                                conn.set(&k, &payload).await
                            }
                        }
                        Workload::Multi => {
                            let first = next() as usize % args.keys;
                            let paths: Vec<String> =
                                (0..args.multi_ops).map(|j| key((first + j) % args.keys)).collect();
                            conn.multi_set(&paths, &payload).await
                        }
                        Workload::Watch | Workload::Sessions => unreachable!("own loops"),
                    };
                    let us = started.elapsed().as_micros() as u64;
                    shared.done.fetch_add(1, Ordering::Relaxed);
                    match r {
                        Ok(()) if shared.measuring.load(Ordering::Relaxed) => local.saturating_record(us.max(1)),
                        Ok(()) => {}
                        Err(kind) => {
                            shared.error(kind);
                            if matches!(&conn, Conn::Zk(z) if z.is_dead()) {
                                // The session's connection is gone; the loop's errors are counted.
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    i += 1;
                }
                shared.histogram.lock().add(&local).expect("same bounds");
            }));
        }
    }
    Ok(tasks)
}

fn start_sessions(args: &RunArgs, shared: &Arc<Shared>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for lane in 0..args.clients * args.inflight {
        let (shared, args) = (shared.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = new_histogram();
            let endpoint = args.endpoints[lane % args.endpoints.len()].clone();
            while !shared.stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match Conn::open(args.protocol, &endpoint, args.session_timeout_ms).await {
                    Ok(conn) => {
                        let us = started.elapsed().as_micros() as u64;
                        shared.done.fetch_add(1, Ordering::Relaxed);
                        if shared.measuring.load(Ordering::Relaxed) {
                            local.saturating_record(us.max(1));
                        }
                        if let Err(e) = conn.close().await {
                            shared.error(format!("close: {e}"));
                        }
                    }
                    Err(e) => {
                        shared.done.fetch_add(1, Ordering::Relaxed);
                        shared.error(e);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            shared.histogram.lock().add(&local).expect("same bounds");
        }));
    }
    tasks
}

/// The watch fan-out: rounds of (every watcher armed → one setData → every watcher notified).
async fn start_watch(
    args: &RunArgs,
    shared: &Arc<Shared>,
    payload: &[u8],
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let path = format!("{ROOT}/w");
    let watchers = open_clients(args, args.watchers.max(1)).await.context("opening watchers")?;
    let writer = Conn::open(args.protocol, &args.endpoints[0], args.session_timeout_ms)
        .await
        .map_err(|e| anyhow::anyhow!("opening the writer: {e}"))?;
    let (armed_tx, mut armed_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (fired_tx, mut fired_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let mut tasks = Vec::new();
    for conn in watchers {
        let mut watcher = DataWatcher::new(&conn).map_err(|e| anyhow::anyhow!(e))?;
        let (path, shared, armed_tx, fired_tx) = (path.clone(), shared.clone(), armed_tx.clone(), fired_tx.clone());
        tasks.push(tokio::spawn(async move {
            let _conn = conn;
            while !shared.stop.load(Ordering::Relaxed) {
                if let Err(e) = watcher.arm(&path).await {
                    shared.error(format!("arm: {e}"));
                    return;
                }
                if armed_tx.send(()).is_err() {
                    return;
                }
                if let Err(e) = watcher.fired().await {
                    shared.error(format!("watch: {e}"));
                    return;
                }
                if fired_tx.send(Instant::now()).is_err() {
                    return;
                }
            }
        }));
    }
    drop((armed_tx, fired_tx));
    let (shared, payload, n) = (shared.clone(), payload.to_vec(), args.watchers.max(1));
    tasks.push(tokio::spawn(async move {
        let mut local = new_histogram();
        'rounds: while !shared.stop.load(Ordering::Relaxed) {
            for _ in 0..n {
                match tokio::time::timeout(Duration::from_secs(10), armed_rx.recv()).await {
                    Ok(Some(())) => {}
                    _ => {
                        shared.error("watcher not re-armed within 10 s".into());
                        break 'rounds;
                    }
                }
            }
            let written = Instant::now();
            if let Err(e) = writer.set(&path, &payload).await {
                shared.error(format!("write: {e}"));
                break;
            }
            for _ in 0..n {
                match tokio::time::timeout(Duration::from_secs(10), fired_rx.recv()).await {
                    Ok(Some(at)) => {
                        shared.done.fetch_add(1, Ordering::Relaxed);
                        if shared.measuring.load(Ordering::Relaxed) {
                            local.saturating_record((at.duration_since(written).as_micros() as u64).max(1));
                        }
                    }
                    _ => {
                        shared.error("notification not delivered within 10 s".into());
                        break 'rounds;
                    }
                }
            }
        }
        shared.histogram.lock().add(&local).expect("same bounds");
        let _ = writer.close().await;
    }));
    Ok(tasks)
}
