//! `corral-server dev`: a whole local ensemble, one `serve` process per member,
//! on loopback, with every member's data under one directory so that starting
//! it again resumes where it stopped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use corral_proto::v1::cluster_client::ClusterClient;
use corral_proto::v1::StatusRequest;
use tokio::process::{Child, Command};

#[derive(clap::Args)]
pub struct DevArgs {
    /// Number of members (3 or 5 for a fault-tolerant ensemble; 1 works too).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=7))]
    nodes: u64,
    /// Directory holding every member's data and log file.
    #[arg(long, default_value = "./corral-data")]
    dir: PathBuf,
    /// gRPC port of member 1; member N listens on this + N - 1.
    #[arg(long, default_value_t = 7001)]
    grpc_base_port: u16,
    /// ZooKeeper protocol port of member 1; member N listens on this + N - 1.
    #[arg(long, default_value_t = 2181)]
    zk_base_port: u16,
    /// ZooKeeper tickTime in ms, passed to every member.
    #[arg(long)]
    tick_ms: Option<u32>,
    /// Session connections one client address may hold per member (0 = unlimited); every
    /// dev client comes from 127.0.0.1, so raise it for load tests.
    #[arg(long)]
    max_client_cnxns: Option<u32>,
    /// How often the leader sweeps empty containers and expired TTL nodes, in ms, passed to
    /// every member.
    #[arg(long)]
    container_check_ms: Option<u64>,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let exe = std::env::current_exe()?;
    let addrs: Vec<String> = (0..args.nodes)
        .map(|i| format!("127.0.0.1:{}", args.grpc_base_port as u64 + i))
        .collect();
    let zk_addrs: Vec<String> =
        (0..args.nodes).map(|i| format!("127.0.0.1:{}", args.zk_base_port as u64 + i)).collect();
    let members: Vec<String> =
        addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
    let members = members.join(",");

    let mut children: Vec<Child> = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let id = i + 1;
        let data_dir = args.dir.join(format!("member-{id}"));
        let log_path = args.dir.join(format!("member-{id}.log"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let mut cmd = Command::new(&exe);
        cmd.arg("serve")
            .arg("--id")
            .arg(id.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--grpc-addr")
            .arg(addr)
            .arg("--zk-addr")
            .arg(&zk_addrs[i])
            .arg("--members")
            .arg(&members)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if let Some(t) = args.tick_ms {
            cmd.arg("--tick-ms").arg(t.to_string());
        }
        if let Some(n) = args.max_client_cnxns {
            cmd.arg("--max-client-cnxns").arg(n.to_string());
        }
        if let Some(ms) = args.container_check_ms {
            cmd.arg("--container-check-ms").arg(ms.to_string());
        }
        children.push(cmd.spawn()?);
        eprintln!(
            "member {id}: grpc {addr}, zookeeper {}, data {}, log {}",
            zk_addrs[i],
            data_dir.display(),
            log_path.display()
        );
    }

    let ready = tokio::select! {
        biased;
        _ = crate::shutdown_signal() => false,
        r = wait_for_leader(&addrs) => r,
    };
    if ready {
        println!("ensemble ready: grpc={} zk={}", addrs.join(","), zk_addrs.join(","));
        tokio::select! {
            biased;
            _ = crate::shutdown_signal() => eprintln!("stopping the ensemble"),
            (id, status) = first_exit(&mut children) => eprintln!("member {id} exited ({status}); stopping the ensemble"),
        }
    }
    stop_all(children).await;
    Ok(())
}

/// Polls every member until one reports a leader that all of them agree on.
async fn wait_for_leader(addrs: &[String]) -> bool {
    loop {
        let mut leaders = Vec::new();
        for addr in addrs {
            let leader = async {
                let mut c = ClusterClient::connect(format!("http://{addr}")).await.ok()?;
                let s = c.status(StatusRequest {}).await.ok()?.into_inner();
                (s.leader_id != 0).then_some(s.leader_id)
            }
            .await;
            leaders.push(leader);
        }
        if let Some(Some(first)) = leaders.first() {
            if leaders.iter().all(|l| *l == Some(*first)) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn first_exit(children: &mut [Child]) -> (usize, String) {
    loop {
        for (i, c) in children.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                return (i + 1, status.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM lets members stop cleanly; SIGKILL after a grace period (every
/// acknowledged write is already on disk, so even that loses nothing).
async fn stop_all(mut children: Vec<Child>) {
    for c in &children {
        if let Some(pid) = c.id() {
            // SAFETY: kill(2) on a child's pid has no memory-safety preconditions.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    for c in children.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(5), c.wait()).await.is_err() {
            let _ = c.kill().await;
        }
    }
}
