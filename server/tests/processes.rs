//! The `corral-server` binary as users run it: `dev` ensembles and `serve`
//! members as real processes, stopped with signals, killed with SIGKILL.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_client::{Client, CreateMode, CreateOptions};
use parking_lot::Mutex;

const BIN: &str = env!("CARGO_BIN_EXE_corral-server");

/// `n` consecutive loopback ports that were free a moment ago.
fn free_ports(n: usize) -> u16 {
    'search: for _ in 0..50 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base as usize + n >= 65535 {
            continue;
        }
        for p in base..base + n as u16 {
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                continue 'search;
            }
        }
        return base;
    }
    panic!("no {n} consecutive free ports");
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `corral-server dev` and returns it with its `ensemble ready:` line.
fn start_dev(dir: &Path, base: u16, zk_base: u16) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["dev", "--nodes", "3", "--grpc-base-port", &base.to_string(), "--zk-base-port", &zk_base.to_string()])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).expect("dev printed nothing within 60 s");
    (child, line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_ensemble_reports_ready_stops_on_sigterm_and_resumes_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_ports(3);
    let zk_base = free_ports(3);
    let expected: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
    let zk: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", zk_base + i)).collect();

    let (mut dev, line) = tokio::task::block_in_place(|| start_dev(dir.path(), base, zk_base));
    assert_eq!(line, format!("ensemble ready: grpc={} zk={}", expected.join(","), zk.join(",")));
    // Every member answers ZooKeeper's health check on its client port.
    for addr in &zk {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"ruok").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "imok");
    }
    let client = Client::connect(expected.clone()).await.unwrap();
    client.create("/kept", b"across restarts", CreateOptions::new(CreateMode::Persistent)).await.unwrap();
    let status = client.status().await.unwrap();
    assert_eq!(status.members.len(), 3);
    drop(client);

    signal(&dev, libc::SIGTERM);
    let exit = tokio::task::block_in_place(|| wait_exit(&mut dev, Duration::from_secs(20)));
    assert!(exit.success(), "dev exited with {exit}");
    // Every member stopped with it: their ports are free again.
    for addr in &expected {
        assert!(std::net::TcpListener::bind(addr).is_ok(), "{addr} still in use after the dev ensemble stopped");
    }
    for id in 1..=3 {
        assert!(dir.path().join(format!("member-{id}")).is_dir());
        assert!(dir.path().join(format!("member-{id}.log")).is_file());
    }

    let (mut dev, line) = tokio::task::block_in_place(|| start_dev(dir.path(), base, zk_base));
    assert!(line.starts_with("ensemble ready: grpc="), "{line}");
    let client = Client::connect(expected).await.unwrap();
    let (data, stat) = client.get_data("/kept").await.unwrap();
    assert_eq!(data, b"across restarts");
    assert_eq!(stat.version, 0);
    signal(&dev, libc::SIGTERM);
    tokio::task::block_in_place(|| wait_exit(&mut dev, Duration::from_secs(20)));
}

/// Three `serve` processes on loopback.
struct Ensemble {
    dir: tempfile::TempDir,
    addrs: Vec<String>,
    children: Vec<Option<Child>>,
}

impl Ensemble {
    fn start() -> Ensemble {
        let dir = tempfile::tempdir().unwrap();
        let base = free_ports(3);
        let addrs: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
        let mut e = Ensemble { dir, addrs, children: vec![None, None, None] };
        for id in 1..=3 {
            e.start_member(id);
        }
        e
    }

    fn start_member(&mut self, id: usize) {
        let members: Vec<String> =
            self.addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
        let log = std::fs::File::create(self.dir.path().join(format!("member-{id}.log"))).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--id", &id.to_string(), "--grpc-addr", &self.addrs[id - 1]])
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("member-{id}")))
            .args(["--members", &members.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[id - 1] = Some(child);
    }

    fn kill9(&mut self, id: usize) {
        let mut child = self.children[id - 1].take().unwrap();
        signal(&child, libc::SIGKILL);
        child.wait().unwrap();
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The leader the members at `addrs` report, once it is one of `candidates`.
async fn leader_of(addrs: &[String], candidates: &[usize]) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        for addr in addrs {
            if let Ok(c) = Client::builder([addr.clone()]).request_timeout(Duration::from_secs(1)).connect().await {
                if let Ok(s) = c.status().await {
                    if let Some(leader) = s.leader_id {
                        if candidates.contains(&(leader as usize)) {
                            return leader as usize;
                        }
                    }
                }
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no leader within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_loses_no_acknowledged_write() {
    let mut ensemble = tokio::task::block_in_place(Ensemble::start);
    let leader = leader_of(&ensemble.addrs, &[1, 2, 3]).await;
    let client = Client::connect(ensemble.addrs.clone()).await.unwrap();
    // The first request may race the election; retry until the ensemble serves.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while client.create("/crash", b"", CreateOptions::default()).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "ensemble never served a write");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let path = format!("/crash/{w}-{i}");
                if client.create(&path, b"v", CreateOptions::default()).await.is_ok() {
                    acked.lock().push(path);
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!acked.lock().is_empty());
    tokio::task::block_in_place(|| ensemble.kill9(leader));
    let ids: Vec<usize> = (1..=3).filter(|id| *id != leader).collect();
    let survivors: Vec<String> = ids.iter().map(|id| ensemble.addrs[id - 1].clone()).collect();
    let new_leader = leader_of(&survivors, &ids).await;
    assert_ne!(new_leader, leader);
    let resumed = acked.lock().len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acked.lock().len() < resumed + 30 {
        assert!(tokio::time::Instant::now() < deadline, "writes did not resume after the leader's SIGKILL");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    // The killed member restarts from its own disk and catches up.
    tokio::task::block_in_place(|| ensemble.start_member(leader));
    let acked = acked.lock().clone();
    for addr in &ensemble.addrs {
        let c = Client::builder([addr.clone()]).request_timeout(Duration::from_secs(20)).connect().await.unwrap();
        let c = c.linearizable();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let children = loop {
            match c.get_children("/crash").await {
                Ok((children, _)) => break children,
                Err(e) => {
                    assert!(tokio::time::Instant::now() < deadline, "{addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let present: BTreeSet<String> = children.into_iter().map(|n| format!("/crash/{n}")).collect();
        for path in &acked {
            assert!(present.contains(path), "{addr} lost acknowledged write {path}");
        }
    }
}
