//! Local ensembles for the comparison: Apache ZooKeeper 3.8 from Debian's package and Corral's
//! `corral-server`, each member its own process on loopback, so each can be measured (RSS) and
//! both see the same machine.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Which system an ensemble runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    ZooKeeper,
    Corral,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::ZooKeeper => "zookeeper",
            System::Corral => "corral",
        }
    }
}

/// A running local ensemble; dropping it kills its members.
pub struct Ensemble {
    pub system: System,
    pub members: Vec<Child>,
    /// ZooKeeper-protocol addresses, one per member.
    pub zk_endpoints: Vec<String>,
    /// Corral's gRPC addresses (empty for Apache ZooKeeper).
    pub grpc_endpoints: Vec<String>,
    pub dir: PathBuf,
}

impl Ensemble {
    pub fn label(&self) -> String {
        format!("{}-{}", self.system.name(), self.members.len())
    }

    /// Resident set size of each member, in bytes.
    pub fn rss(&self) -> Vec<u64> {
        self.members.iter().map(|c| rss_of(c.id()).unwrap_or(0)).collect()
    }

    /// Kills every member and waits for them.
    pub fn stop(&mut self) {
        for c in &mut self.members {
            let _ = c.kill();
        }
        for c in &mut self.members {
            let _ = c.wait();
        }
        self.members.clear();
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// VmRSS of a process, from /proc.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `n` distinct free loopback ports.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>().context("finding free ports")?;
    Ok(listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?)
}

/// A four-letter word's answer, or None if the member does not answer.
pub fn four_letter(addr: &str, word: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn mode_of(addr: &str) -> Option<String> {
    let srvr = four_letter(addr, "srvr")?;
    srvr.lines().find_map(|l| l.strip_prefix("Mode: ")).map(|m| m.trim().to_string())
}

/// Waits until every member answers `srvr` and one of them leads (or runs standalone).
fn wait_ready(ensemble: &mut Ensemble, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        for (i, c) in ensemble.members.iter_mut().enumerate() {
            if let Some(status) = c.try_wait()? {
                bail!(
                    "{} member {} exited ({status}); see its log in {}",
                    ensemble.system.name(),
                    i + 1,
                    ensemble.dir.display()
                );
            }
        }
        let modes: Vec<Option<String>> = ensemble.zk_endpoints.iter().map(|a| mode_of(a)).collect();
        if modes.iter().all(Option::is_some)
            && modes.iter().flatten().any(|m| m == "leader" || m == "standalone")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} ensemble not ready within {timeout:?}: modes {modes:?}", ensemble.system.name());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The jars Debian's `zookeeper` package installs, as a classpath.
fn zookeeper_classpath() -> anyhow::Result<String> {
    const PREFIXES: &[&str] = &[
        "zookeeper", "slf4j-api", "netty-", "jline", "commons-cli", "metrics-core", "snappy-java", "jackson-",
        "audience-annotations", "commons-io", "log4j",
    ];
    let mut jars = Vec::new();
    for entry in std::fs::read_dir("/usr/share/java").context("reading /usr/share/java")? {
        let name = entry?.file_name().to_string_lossy().to_string();
        if !name.ends_with(".jar") {
            continue;
        }
        // Duplicates (versioned names of the same jar) are harmless on a classpath.
        let wanted = PREFIXES.iter().any(|p| name.starts_with(p));
        if wanted {
            jars.push(format!("/usr/share/java/{name}"));
        }
    }
    jars.sort();
    if !jars.iter().any(|j| j.ends_with("/zookeeper.jar")) {
        bail!("Apache ZooKeeper is not installed (/usr/share/java/zookeeper.jar is missing)");
    }
    Ok(jars.join(":"))
}

/// Installs Debian's `zookeeper` package if its jars are missing.
pub fn ensure_zookeeper_installed() -> anyhow::Result<()> {
    if Path::new("/usr/share/java/zookeeper.jar").exists() {
        return Ok(());
    }
    eprintln!("installing Apache ZooKeeper (Debian package zookeeper)");
    let sudo = if std::env::var("USER").as_deref() == Ok("root") || is_root() { None } else { Some("sudo") };
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let mut cmd = match sudo {
            Some(s) => {
                let mut c = Command::new(s);
                c.args(args);
                c
            }
            None => {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]);
                c
            }
        };
        let status = cmd.env("DEBIAN_FRONTEND", "noninteractive").status()?;
        anyhow::ensure!(status.success(), "{args:?} failed: {status}");
        Ok(())
    };
    run(&["apt-get", "update", "-qq"])?;
    run(&["apt-get", "install", "-y", "-qq", "zookeeper"])?;
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// JVM heap for Apache ZooKeeper members: zkEnv.sh's default (ZK_SERVER_HEAP=1000).
pub const ZOOKEEPER_HEAP: &str = "-Xmx1000m";

/// Starts an Apache ZooKeeper ensemble of `n` members (standalone for 1) under `dir`, with its
/// default durability (forceSync=yes: every transaction log append is fsync'd).
pub fn start_zookeeper(n: usize, dir: &Path) -> anyhow::Result<Ensemble> {
    let classpath = zookeeper_classpath()?;
    let ports = free_ports(3 * n)?;
    let client_ports: Vec<u16> = ports[..n].to_vec();
    let mut servers = String::new();
    if n > 1 {
        for i in 0..n {
            servers.push_str(&format!("server.{}=127.0.0.1:{}:{}\n", i + 1, ports[n + i], ports[2 * n + i]));
        }
    }
    let mut ensemble = Ensemble {
        system: System::ZooKeeper,
        members: Vec::new(),
        zk_endpoints: client_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
        grpc_endpoints: Vec::new(),
        dir: dir.to_path_buf(),
    };
    for (i, client_port) in client_ports.iter().enumerate() {
        let member_dir = dir.join(format!("zookeeper-{}", i + 1));
        let data = member_dir.join("data");
        std::fs::create_dir_all(&data)?;
        std::fs::write(data.join("myid"), format!("{}\n", i + 1))?;
        let cfg = member_dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
                 maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=*\n{servers}",
                data.display(),
                client_port
            ),
        )?;
        let log = std::fs::File::create(member_dir.join("zookeeper.log"))?;
        let child = Command::new("java")
            .args([ZOOKEEPER_HEAP, "-cp", &classpath, "org.apache.zookeeper.server.quorum.QuorumPeerMain"])
            .arg(&cfg)
            .current_dir(&member_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting java (Apache ZooKeeper)")?;
        ensemble.members.push(child);
    }
    wait_ready(&mut ensemble, Duration::from_secs(90))?;
    Ok(ensemble)
}

/// The `corral-server` binary: `CORRAL_SERVER_BIN`, else beside this executable.
pub fn corral_server_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("CORRAL_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let beside = exe.parent().map(|d| d.join("corral-server"));
    match beside {
        Some(p) if p.exists() => Ok(p),
        _ => bail!(
            "corral-server not found beside {} (build it with `cargo build --release -p corral-server`, \
             or set CORRAL_SERVER_BIN)",
            exe.display()
        ),
    }
}

/// Starts a Corral ensemble of `n` members under `dir`, each a `corral-server serve` process.
pub fn start_corral(n: usize, dir: &Path) -> anyhow::Result<Ensemble> {
    let bin = corral_server_bin()?;
    let ports = free_ports(2 * n)?;
    let grpc: Vec<String> = ports[..n].iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let zk: Vec<String> = ports[n..].iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let members: Vec<String> = grpc.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
    let mut ensemble = Ensemble {
        system: System::Corral,
        members: Vec::new(),
        zk_endpoints: zk.clone(),
        grpc_endpoints: grpc.clone(),
        dir: dir.to_path_buf(),
    };
    for i in 0..n {
        let member_dir = dir.join(format!("corral-{}", i + 1));
        std::fs::create_dir_all(&member_dir)?;
        let log = std::fs::File::create(dir.join(format!("corral-{}.log", i + 1)))?;
        let child = Command::new(&bin)
            .arg("serve")
            .args(["--id", &(i + 1).to_string()])
            .arg("--data-dir")
            .arg(&member_dir)
            .args(["--grpc-addr", &grpc[i], "--zk-addr", &zk[i], "--members", &members.join(",")])
            .args(["--max-client-cnxns", "0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        ensemble.members.push(child);
    }
    wait_ready(&mut ensemble, Duration::from_secs(60))?;
    Ok(ensemble)
}

/// Starts an ensemble of either system.
pub fn start(system: System, n: usize, dir: &Path) -> anyhow::Result<Ensemble> {
    let dir = dir.join(format!("{}-{n}", system.name()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    match system {
        System::ZooKeeper => start_zookeeper(n, &dir),
        System::Corral => start_corral(n, &dir),
    }
}
