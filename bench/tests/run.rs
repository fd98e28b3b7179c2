//! `corral-bench run` against a real in-process Corral ensemble: every workload through both
//! protocols completes requests without errors, and the CLI prints its table and writes JSON.

use std::time::Duration;

use corral_bench::driver::Protocol;
use corral_bench::runner::{self, RunArgs, Workload};
use corral_server::testing::TestCluster;

fn args(workload: Workload, protocol: Protocol, endpoints: Vec<String>) -> RunArgs {
    RunArgs {
        workload,
        protocol,
        endpoints,
        clients: 3,
        inflight: 2,
        size: 100,
        keys: 50,
        read_pct: 50,
        multi_ops: 5,
        watchers: 4,
        warmup: 0.2,
        duration: 0.8,
        rate: 0.0,
        session_timeout_ms: 10_000,
        quiet: true,
    }
}

const WORKLOADS: [Workload; 7] = [
    Workload::Create,
    Workload::Set,
    Workload::Get,
    Workload::Mixed,
    Workload::Multi,
    Workload::Watch,
    Workload::Sessions,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_through_both_protocols() {
    let cluster = TestCluster::start_with(3, |c| c.max_client_cnxns = 0).await;
    cluster.wait_leader(Duration::from_secs(10)).await;
    for protocol in [Protocol::Zk, Protocol::Grpc] {
        let endpoints = match protocol {
            Protocol::Zk => cluster.zk_endpoints(),
            Protocol::Grpc => cluster.endpoints(),
        };
        for workload in WORKLOADS {
            let report = runner::run(&args(workload, protocol, endpoints.clone()), "corral-test").await.unwrap();
            assert!(report.ops > 0, "{protocol:?} {workload:?}: no requests completed: {report:?}");
            assert_eq!(report.error_count(), 0, "{protocol:?} {workload:?}: errors {:?}", report.errors);
            assert!(report.p50_ms > 0.0 && report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms);
            assert_eq!(report.cdf.first().map(|p| p.0), Some(0.0));
        }
    }
    // A fixed rate is kept, not exceeded.
    let mut paced = args(Workload::Set, Protocol::Zk, cluster.zk_endpoints());
    paced.rate = 100.0;
    paced.duration = 2.0;
    let report = runner::run(&paced, "paced").await.unwrap();
    assert!(report.throughput < 130.0 && report.throughput > 50.0, "paced at 100 ops/s: {report:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_a_table_and_writes_json() {
    let cluster = TestCluster::start_with(3, |c| c.max_client_cnxns = 0).await;
    cluster.wait_leader(Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let endpoints = cluster.zk_endpoints().join(",");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_corral-bench"))
        .args(["run", "--workload", "mixed", "--clients", "4", "--inflight", "2", "--warmup", "0.2"])
        .args(["--duration", "1", "--quiet", "--label", "cli", "--endpoints", &endpoints, "--json"])
        .arg(&json)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ops/s") && stdout.lines().any(|l| l.starts_with("cli ")), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["workload"], "mixed");
    assert!(report["ops"].as_u64().unwrap() > 0);
    assert_eq!(report["errors"].as_object().unwrap().len(), 0, "{report}");
    cluster.shutdown().await;
}
