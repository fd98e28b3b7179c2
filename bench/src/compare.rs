//! `corral-bench compare`: Apache ZooKeeper and Corral side by side on this machine.
//!
//! Both ensembles run at once on loopback with the same durability (every log append fsync'd),
//! and every measurement point runs against one and then the other, alternating which goes
//! first, so machine noise hits both. The machine's fsync and loopback latencies are measured
//! in the same run. Results go to `RESULTS.md` (tables, targets, plots) and `results.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::driver::{Conn, Protocol};
use crate::ensemble::{self, Ensemble, System};
use crate::machine::{self, Limits};
use crate::plot::{self, Series};
use crate::report::Report;
use crate::runner::{self, RunArgs, Workload};

#[derive(Clone, Debug, clap::Args)]
pub struct CompareArgs {
    /// Where to write the results (plots and results.json go beside it).
    #[arg(long, default_value = "bench/RESULTS.md")]
    pub out: PathBuf,
    /// Directory for the ensembles' data (on the disk being measured); removed afterwards.
    #[arg(long, default_value = "corral-bench-data")]
    pub dir: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "create,set,get,mixed,multi,watch,sessions")]
    pub workloads: Vec<Workload>,
    /// Concurrency levels: client sessions (watchers for the watch workload).
    #[arg(long, value_delimiter = ',', default_value = "4,16,64,256")]
    pub clients: Vec<usize>,
    /// Requests each client keeps outstanding.
    #[arg(long, default_value_t = 1)]
    pub inflight: usize,
    /// Seconds measured per point.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of warm-up per point.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Payload bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Znodes loaded for the memory comparison.
    #[arg(long, default_value_t = 1_000_000)]
    pub memory_nodes: usize,
    /// Ensemble sizes besides 3 that get a set/get row.
    #[arg(long, value_delimiter = ',', default_value = "1,5")]
    pub other_sizes: Vec<usize>,
    /// A quick run that only proves the command works (seconds per point, tiny load).
    #[arg(long)]
    pub smoke: bool,
    /// Show progress bars.
    #[arg(long)]
    pub progress: bool,
}

impl CompareArgs {
    fn apply_smoke(&mut self) {
        if self.smoke {
            self.clients = vec![4];
            self.duration = 1.0;
            self.warmup = 0.3;
            self.memory_nodes = 2_000;
            self.other_sizes = vec![1];
        }
    }
}

#[derive(Serialize)]
struct Results {
    limits: Limits,
    runs: Vec<Report>,
    memory: Vec<MemoryRow>,
    smoke: bool,
}

#[derive(Serialize, Clone)]
struct MemoryRow {
    label: String,
    nodes: usize,
    /// RSS of each member, bytes, with the nodes loaded.
    rss: Vec<u64>,
    /// RSS of each member just after start, bytes.
    rss_empty: Vec<u64>,
    load_seconds: f64,
}

fn run_args(args: &CompareArgs, workload: Workload, endpoints: &[String], clients: usize) -> RunArgs {
    RunArgs {
        workload,
        protocol: Protocol::Zk,
        endpoints: endpoints.to_vec(),
        clients: if workload == Workload::Watch { 1 } else { clients },
        inflight: args.inflight,
        size: args.size,
        keys: 1000,
        read_pct: 90,
        multi_ops: 10,
        watchers: clients,
        warmup: args.warmup,
        duration: args.duration,
        rate: 0.0,
        session_timeout_ms: 30_000,
        quiet: !args.progress,
    }
}

async fn measure(ensemble: &Ensemble, run: &RunArgs, runs: &mut Vec<Report>, tag: &str) -> anyhow::Result<Report> {
    let label = format!("{}{tag}", ensemble.label());
    let mut run = run.clone();
    run.endpoints = ensemble.zk_endpoints.clone();
    let mut report = runner::run(&run, &label).await.with_context(|| format!("{label} {}", run.workload.name()))?;
    report.watchers_fixup(&run);
    println!("{}", report.table_row());
    if let Some(e) = report.error_summary() {
        println!("  {e}");
    }
    runs.push(report.clone());
    Ok(report)
}

/// Runs the same point against both, alternating which goes first.
async fn both(
    pair: [&Ensemble; 2],
    run: &RunArgs,
    flip: bool,
    runs: &mut Vec<Report>,
    tag: &str,
) -> anyhow::Result<[Report; 2]> {
    let (first, second) = if flip { (1, 0) } else { (0, 1) };
    let a = measure(pair[first], run, runs, tag).await?;
    let b = measure(pair[second], run, runs, tag).await?;
    Ok(if flip { [b, a] } else { [a, b] })
}

/// Loads `n` znodes of `size` bytes under /corral-bench-memory through 8 sessions.
async fn load(ensemble: &Ensemble, n: usize, size: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let payload = vec![b'm'; size];
    let setup = Conn::open(Protocol::Zk, &ensemble.zk_endpoints[0], 30_000).await.map_err(anyhow::Error::msg)?;
    setup.ensure("/corral-bench-memory", b"").await.map_err(anyhow::Error::msg)?;
    let loaders = 8;
    let mut tasks = Vec::new();
    for l in 0..loaders {
        let endpoint = ensemble.zk_endpoints[l % ensemble.zk_endpoints.len()].clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let conn = Conn::open(Protocol::Zk, &endpoint, 30_000).await.map_err(anyhow::Error::msg)?;
            let paths: Vec<String> = (l..n).step_by(loaders).map(|i| format!("/corral-bench-memory/n{i:08}")).collect();
            runner::load_nodes(&conn, paths, &payload).await?;
            let _ = conn.close().await;
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let count = setup.children_count("/corral-bench-memory").await.map_err(anyhow::Error::msg)?;
    anyhow::ensure!(count as usize == n, "{}: loaded {count} nodes, expected {n}", ensemble.label());
    let _ = setup.close().await;
    Ok(started.elapsed().as_secs_f64())
}

pub async fn run(mut args: CompareArgs) -> anyhow::Result<()> {
    args.apply_smoke();
    ensemble::ensure_zookeeper_installed()?;
    let dir = std::fs::canonicalize(".")?.join(&args.dir);
    std::fs::create_dir_all(&dir)?;
    let result = compare(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn compare(args: &CompareArgs, dir: &Path) -> anyhow::Result<()> {
    let limits = machine::measure(dir, if args.smoke { 50 } else { 1000 })?;
    println!(
        "machine: {} CPUs, {:.1} GiB, kernel {}; fsync of a 4 KiB append p50 {:.3} ms p99 {:.3} ms; \
         loopback round trip p50 {:.0} µs p99 {:.0} µs",
        limits.cpus,
        limits.memory_gib,
        limits.kernel,
        limits.fsync_4k_p50_ms,
        limits.fsync_4k_p99_ms,
        limits.loopback_rtt_p50_us,
        limits.loopback_rtt_p99_us
    );
    let mut runs = Vec::new();
    let mut memory = Vec::new();

    // Three members each, both up for the whole sweep.
    {
        let zk = ensemble::start(System::ZooKeeper, 3, dir)?;
        let corral = ensemble::start(System::Corral, 3, dir)?;
        let pair = [&zk, &corral];
        println!("{}", Report::table_header());
        let mut flip = false;
        for &workload in &args.workloads {
            for &clients in &args.clients {
                let run = run_args(args, workload, &[], clients);
                both(pair, &run, flip, &mut runs, "").await?;
                flip = !flip;
            }
        }
        // Latency at half of ZooKeeper's saturating throughput, open loop at a fixed rate.
        for workload in [Workload::Set, Workload::Get] {
            let Some(sat) = saturation(&runs, "zookeeper-3", workload.name()) else { continue };
            let mut run = run_args(args, workload, &[], sat.clients);
            run.rate = sat.throughput / 2.0;
            both(pair, &run, flip, &mut runs, "@half").await?;
            flip = !flip;
        }
        // One client, one request at a time: the durable write path's latency floor.
        let run = run_args(args, Workload::Set, &[], 1);
        both(pair, &run, flip, &mut runs, "@1").await?;
    }

    // Memory with many znodes, on fresh ensembles.
    for system in [System::ZooKeeper, System::Corral] {
        let e = ensemble::start(system, 3, dir)?;
        let rss_empty = e.rss();
        let load_seconds = load(&e, args.memory_nodes, args.size).await?;
        // Let background work (snapshots, GC) settle before reading RSS.
        tokio::time::sleep(std::time::Duration::from_secs(if args.smoke { 1 } else { 10 })).await;
        let row = MemoryRow { label: e.label(), nodes: args.memory_nodes, rss: e.rss(), rss_empty, load_seconds };
        println!(
            "memory {}: {} znodes loaded in {:.1} s; RSS per member {:?} MiB (empty {:?} MiB)",
            row.label,
            row.nodes,
            row.load_seconds,
            row.rss.iter().map(|b| b / (1 << 20)).collect::<Vec<_>>(),
            row.rss_empty.iter().map(|b| b / (1 << 20)).collect::<Vec<_>>()
        );
        memory.push(row);
    }

    // Other ensemble sizes: set and get at the highest concurrency.
    let top = *args.clients.iter().max().unwrap_or(&16);
    for &n in &args.other_sizes {
        let zk = ensemble::start(System::ZooKeeper, n, dir)?;
        let corral = ensemble::start(System::Corral, n, dir)?;
        for workload in [Workload::Set, Workload::Get] {
            let run = run_args(args, workload, &[], top);
            both([&zk, &corral], &run, n % 2 == 0, &mut runs, "").await?;
        }
    }

    let results = Results { limits, runs, memory, smoke: args.smoke };
    write_results(args, &results)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

impl Report {
    /// For the watch workload the concurrency is the number of watchers.
    fn watchers_fixup(&mut self, run: &RunArgs) {
        if run.workload == Workload::Watch {
            self.clients = run.watchers;
        }
    }
}

/// The highest-throughput point of a system's plain sweep for a workload.
fn saturation<'a>(runs: &'a [Report], label: &str, workload: &str) -> Option<&'a Report> {
    runs.iter()
        .filter(|r| r.label == label && r.workload == workload)
        .max_by(|a, b| a.throughput.total_cmp(&b.throughput))
}

fn find<'a>(runs: &'a [Report], label: &str, workload: &str) -> Option<&'a Report> {
    runs.iter().find(|r| r.label == label && r.workload == workload)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

fn write_results(args: &CompareArgs, results: &Results) -> anyhow::Result<()> {
    let out_dir = args.out.parent().map(Path::to_path_buf).unwrap_or_default();
    let assets = out_dir.join("results");
    std::fs::create_dir_all(&assets)?;
    std::fs::write(assets.join("results.json"), serde_json::to_string_pretty(results)?)?;
    let runs = &results.runs;
    let l = &results.limits;
    let mut md = String::new();
    writeln!(md, "# Corral vs Apache ZooKeeper: side by side on one machine\n")?;
    writeln!(
        md,
        "Generated by `corral-bench compare{}` (see `bench/README.md`). Both systems ran at once on \
         loopback, 3 members each unless noted, every log append fsync'd, driven through the ZooKeeper \
         wire protocol by the same client ({} B values, {} request(s) in flight per session, {} s measured \
         after {} s of warm-up per point, alternating which system goes first).\n",
        if args.smoke { " --smoke" } else { "" },
        args.size,
        args.inflight,
        args.duration,
        args.warmup
    )?;
    if args.smoke {
        writeln!(md, "**This is a smoke run: its figures mean nothing.**\n")?;
    }
    writeln!(md, "## The machine, measured in the same run\n")?;
    writeln!(md, "| CPUs | memory | kernel | fsync 4 KiB append p50 / p99 | loopback RTT p50 / p99 |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    writeln!(
        md,
        "| {} | {:.1} GiB | {} | {:.3} / {:.3} ms | {:.0} / {:.0} µs |\n",
        l.cpus, l.memory_gib, l.kernel, l.fsync_4k_p50_ms, l.fsync_4k_p99_ms, l.loopback_rtt_p50_us, l.loopback_rtt_p99_us
    )?;

    // Targets.
    writeln!(md, "## Targets\n")?;
    writeln!(md, "| target | ZooKeeper | Corral | ratio | verdict |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    for w in ["set", "create", "get"] {
        if let (Some(z), Some(c)) = (saturation(runs, "zookeeper-3", w), saturation(runs, "corral-3", w)) {
            let r = ratio(c.throughput, z.throughput);
            writeln!(
                md,
                "| {w} throughput at saturation ≥ 2× | {:.0} ops/s ({} clients) | {:.0} ops/s ({} clients) | {r:.2}× | {} |",
                z.throughput,
                z.clients,
                c.throughput,
                c.clients,
                verdict(r >= 2.0)
            )?;
        }
    }
    for w in ["set", "get"] {
        if let (Some(z), Some(c)) = (find(runs, "zookeeper-3@half", w), find(runs, "corral-3@half", w)) {
            let r = ratio(c.p99_ms, z.p99_ms);
            writeln!(
                md,
                "| {w} p99 at half ZooKeeper's saturating rate ({:.0} ops/s) ≤ 0.5× | {:.2} ms | {:.2} ms | {r:.2}× | {} |",
                z.throughput,
                z.p99_ms,
                c.p99_ms,
                verdict(r <= 0.5)
            )?;
        }
    }
    let rss_of = |label: &str| results.memory.iter().find(|m| m.label == label);
    if let (Some(z), Some(c)) = (rss_of("zookeeper-3"), rss_of("corral-3")) {
        let (zm, cm) = (z.rss.iter().max().copied().unwrap_or(0), c.rss.iter().max().copied().unwrap_or(0));
        let r = ratio(cm as f64, zm as f64);
        writeln!(
            md,
            "| RSS with {} znodes (largest member) ≤ 0.5× | {} MiB | {} MiB | {r:.2}× | {} |",
            c.nodes,
            zm >> 20,
            cm >> 20,
            verdict(r <= 0.5)
        )?;
    }
    if let (Some(z), Some(c)) = (find(runs, "zookeeper-3@1", "set"), find(runs, "corral-3@1", "set")) {
        // One write at a time can commit no faster than one fsync plus one round trip.
        let bound = 1000.0 / (l.fsync_4k_p50_ms + l.loopback_rtt_p50_us / 1000.0);
        let r = ratio(c.throughput, bound);
        writeln!(
            md,
            "| durable sequential writes within 2× of 1 / (fsync + RTT) = {bound:.0} ops/s | {:.0} ops/s | {:.0} ops/s | {r:.2} of bound | {} |",
            z.throughput,
            c.throughput,
            verdict(r >= 0.5)
        )?;
    }
    writeln!(md)?;

    // Sweep tables.
    writeln!(md, "## Throughput and latency by workload\n")?;
    writeln!(
        md,
        "Clients are sessions spread over the members (for `watch`: watching sessions, and ops/s counts \
         notifications). Latency is per request, from send to reply.\n"
    )?;
    let mut workloads: Vec<&str> = Vec::new();
    for r in runs {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
    }
    for w in &workloads {
        writeln!(md, "### {w}\n")?;
        writeln!(md, "| clients | ZooKeeper ops/s | p50 ms | p99 ms | errors | Corral ops/s | p50 ms | p99 ms | errors | throughput ratio |")?;
        writeln!(md, "|---|---|---|---|---|---|---|---|---|---|")?;
        for z in runs.iter().filter(|r| r.workload == *w && r.label.starts_with("zookeeper-")) {
            let other = z.label.replacen("zookeeper", "corral", 1);
            let Some(c) = runs.iter().find(|r| r.workload == *w && r.label == other && r.clients == z.clients) else {
                continue;
            };
            let tag = match &z.label["zookeeper-".len()..] {
                "3" => String::new(),
                "3@half" => " (open loop at half of ZooKeeper's saturation)".to_string(),
                "3@1" => " (one request at a time)".to_string(),
                n => format!(" ({n} members)"),
            };
            writeln!(
                md,
                "| {}{tag} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.2} | {:.2} | {} | {:.2}× |",
                z.clients,
                z.throughput,
                z.p50_ms,
                z.p99_ms,
                z.error_count(),
                c.throughput,
                c.p50_ms,
                c.p99_ms,
                c.error_count(),
                ratio(c.throughput, z.throughput)
            )?;
        }
        writeln!(md)?;
        let series: Vec<Series> = ["zookeeper-3", "corral-3"]
            .iter()
            .map(|label| Series {
                name: label.to_string(),
                points: runs
                    .iter()
                    .filter(|r| r.workload == *w && r.label == *label)
                    .map(|r| (r.clients as f64, r.throughput))
                    .collect(),
            })
            .collect();
        if series.iter().all(|s| s.points.len() > 1) {
            let file = format!("throughput-{w}.svg");
            plot::throughput(&assets.join(&file), w, &series)?;
            writeln!(md, "![{w} throughput](results/{file})\n")?;
        }
        // Latency CDF at each system's saturation point.
        let cdf: Vec<Series> = ["zookeeper-3", "corral-3"]
            .iter()
            .filter_map(|label| {
                let r = saturation(runs, label, w)?;
                Some(Series {
                    name: format!("{label} ({} clients)", r.clients),
                    points: r.cdf.iter().map(|&(q, ms)| (ms.max(0.001), q)).collect(),
                })
            })
            .collect();
        if cdf.len() == 2 && cdf.iter().all(|s| !s.points.is_empty()) {
            let file = format!("latency-cdf-{w}.svg");
            plot::latency_cdf(&assets.join(&file), &format!("{w}: latency CDF at saturation"), &cdf)?;
            writeln!(md, "![{w} latency CDF](results/{file})\n")?;
        }
    }

    writeln!(md, "## Memory\n")?;
    writeln!(md, "| system | znodes | RSS per member with them (MiB) | RSS per member empty (MiB) | load time |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    for m in &results.memory {
        let mib = |v: &[u64]| v.iter().map(|b| (b >> 20).to_string()).collect::<Vec<_>>().join(" / ");
        writeln!(md, "| {} | {} | {} | {} | {:.1} s |", m.label, m.nodes, mib(&m.rss), mib(&m.rss_empty), m.load_seconds)?;
    }
    writeln!(
        md,
        "\nApache ZooKeeper runs with zkEnv.sh's default heap ({}); its RSS is the whole JVM's.\n",
        ensemble::ZOOKEEPER_HEAP
    )?;

    if let Ok(history) = std::fs::read_to_string(out_dir.join("CHANGES.md")) {
        writeln!(md, "{}", history.trim_end())?;
    }
    std::fs::write(&args.out, md)?;
    Ok(())
}
