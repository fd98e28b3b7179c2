//! The `corral` binary, run as a user would run it, against a real in-process
//! three-member ensemble. Output is checked byte for byte where the format is
//! the contract (zkCli's Stat, `Created <path>`, `Error: <Code>: ...`).

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use corral_client::{Client, Stat};
use corral_server::testing::TestCluster;

const BIN: &str = env!("CARGO_BIN_EXE_corral");
/// No command should come near this; hitting it means a hang, not slowness.
const DEADLINE: Duration = Duration::from_secs(30);

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("utf-8 stdout")
    }

    /// Exit status 0 and nothing on stderr; returns stdout.
    #[track_caller]
    fn ok(&self) -> String {
        assert_eq!(self.code, Some(0), "expected success: {self:?}");
        assert_eq!(self.stderr, "", "no diagnostics on success");
        self.stdout()
    }

    /// Exit status 1, nothing on stdout, and exactly one line on stderr:
    /// `Error: <code>: <message>`. Returns the message.
    #[track_caller]
    fn fails_with(&self, code: &str) -> String {
        assert_eq!(self.code, Some(1), "expected exit status 1: {self:?}");
        assert!(self.stdout.is_empty(), "nothing on stdout on failure: {self:?}");
        let prefix = format!("Error: {code}: ");
        assert!(self.stderr.starts_with(&prefix), "expected {prefix:?}...: {self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "one line: {self:?}");
        self.stderr[prefix.len()..].trim_end().to_string()
    }
}

/// The binary with a clean environment (the developer's CORRAL_* must not
/// leak into the test).
fn command(endpoints: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("CORRAL_ENDPOINTS")
        .env_remove("CORRAL_TIMEOUT")
        .env_remove("CORRAL_CLUSTER_SECRET")
        .env_remove("RUST_LOG");
    if let Some(endpoints) = endpoints {
        cmd.arg("--endpoints").arg(endpoints);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Kills the child if the test ends (or panics) while it still runs.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).expect("pid")
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with our own child's pid, which we have not reaped yet.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the exit, within DEADLINE, and collects the output. Outputs
    /// are small, so reading after the exit cannot fill a pipe and deadlock.
    fn finish(mut self) -> Run {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                break status;
            }
            assert!(start.elapsed() < DEADLINE, "corral did not exit within {DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = Vec::new();
        let mut stderr = String::new();
        if let Some(mut out) = self.0.stdout.take() {
            out.read_to_end(&mut stdout).expect("read stdout");
        }
        if let Some(mut err) = self.0.stderr.take() {
            err.read_to_string(&mut stderr).expect("read stderr");
        }
        Run { code: status.code(), stdout, stderr }
    }

    /// The first line on stdout, within DEADLINE. The stdout pipe moves to a
    /// reader thread, so anything printed later is not collected by `finish`.
    fn first_line(&mut self) -> String {
        let out = self.0.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        rx.recv_timeout(DEADLINE).expect("a first line on stdout")
    }
}

/// Runs the binary to completion off the async runtime (the ensemble lives on it).
async fn run_command(mut cmd: Command) -> Run {
    tokio::task::spawn_blocking(move || Running(cmd.spawn().expect("spawn corral")).finish())
        .await
        .expect("runner thread")
}

struct Ensemble {
    cluster: TestCluster,
    endpoints: String,
    leader: u64,
}

impl Ensemble {
    async fn start() -> Ensemble {
        let cluster = TestCluster::start(3).await;
        let leader = cluster.wait_leader(Duration::from_secs(10)).await;
        let endpoints = cluster.endpoints().join(",");
        Ensemble { cluster, endpoints, leader }
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_os(args.iter().map(OsString::from).collect()).await
    }

    async fn run_os(&self, args: Vec<OsString>) -> Run {
        let mut cmd = command(Some(&self.endpoints));
        cmd.args(args);
        run_command(cmd).await
    }

    /// Starts a long-running command (`create -e`) and returns it once it
    /// printed its first line, with that line.
    async fn spawn(&self, args: &[&str]) -> (Running, String) {
        let mut cmd = command(Some(&self.endpoints));
        cmd.args(args);
        tokio::task::spawn_blocking(move || {
            let mut running = Running(cmd.spawn().expect("spawn corral"));
            let line = running.first_line();
            (running, line)
        })
        .await
        .expect("runner thread")
    }

    /// The library client, to check what the CLI did independently of it.
    async fn client(&self) -> Client {
        Client::connect(self.cluster.endpoints()).await.expect("client").linearizable()
    }

    async fn stat_of(&self, path: &str) -> Stat {
        self.client().await.exists(path).await.expect("exists").expect("node exists")
    }

    /// Waits (boundedly) until `status` reports no open session: closing one
    /// is committed, but the member answering `status` may apply it a moment
    /// later.
    async fn wait_no_sessions(&self) {
        let start = Instant::now();
        loop {
            let out = self.run(&["status"]).await.ok();
            let sessions = out.lines().find_map(|l| l.strip_prefix("Sessions")).map(str::trim);
            if sessions == Some("0") {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "sessions left open:\n{out}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        self.cluster.shutdown().await;
    }
}

/// zkCli's Stat block, built independently of the CLI's formatter.
fn zkcli_stat(s: &Stat) -> String {
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms).expect("valid time").format("%a %b %d %H:%M:%S UTC %Y").to_string()
    };
    [
        format!("cZxid = 0x{:x}", s.czxid),
        format!("ctime = {}", time(s.ctime)),
        format!("mZxid = 0x{:x}", s.mzxid),
        format!("mtime = {}", time(s.mtime)),
        format!("pZxid = 0x{:x}", s.pzxid),
        format!("cversion = {}", s.cversion),
        format!("dataVersion = {}", s.version),
        format!("aclVersion = {}", s.aversion),
        format!("ephemeralOwner = 0x{:x}", s.ephemeral_owner),
        format!("dataLength = {}", s.data_length),
        format!("numChildren = {}", s.num_children),
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_set_ls_stat_delete() {
    let e = Ensemble::start().await;

    assert_eq!(e.run(&["create", "/app", "v1"]).await.ok(), "Created /app\n");
    assert_eq!(e.run(&["create", "/app/b", "bee"]).await.ok(), "Created /app/b\n");
    assert_eq!(e.run(&["create", "/app/a"]).await.ok(), "Created /app/a\n");
    assert_eq!(e.run(&["create", "/app/a/deep", "z"]).await.ok(), "Created /app/a/deep\n");

    // Data exactly as stored: no newline added when stdout is not a terminal.
    assert_eq!(e.run(&["get", "/app"]).await.ok(), "v1");
    assert_eq!(e.run(&["get", "/app/a"]).await.ok(), "");

    let stat = e.stat_of("/app").await;
    assert_eq!((stat.version, stat.data_length, stat.num_children, stat.ephemeral_owner), (0, 2, 2, 0));
    assert_eq!(e.run(&["get", "-s", "/app"]).await.ok(), format!("v1\n{}", zkcli_stat(&stat)));
    assert_eq!(e.run(&["stat", "/app"]).await.ok(), zkcli_stat(&stat));

    // set prints nothing; the data and version change.
    assert_eq!(e.run(&["set", "/app", "v2"]).await.ok(), "");
    assert_eq!(e.run(&["get", "/app"]).await.ok(), "v2");
    let after = e.stat_of("/app").await;
    assert_eq!(after.version, 1);
    assert!(after.mzxid > stat.mzxid && after.czxid == stat.czxid, "{stat:?} -> {after:?}");
    assert!(e.run(&["stat", "/app"]).await.ok().contains("\ndataVersion = 1\n"));

    // Conditional set at the right version; -s prints the new Stat; -1 is any version.
    assert_eq!(e.run(&["set", "-v", "1", "/app", "v3"]).await.ok(), "");
    let printed = e.run(&["set", "-s", "--data-version", "2", "/app", "v4"]).await.ok();
    assert_eq!(printed, zkcli_stat(&e.stat_of("/app").await));
    assert!(printed.contains("\ndataVersion = 3\n"), "{printed}");
    assert_eq!(e.run(&["set", "-v", "-1", "/app", "v5"]).await.ok(), "");
    assert_eq!(e.run(&["get", "/app"]).await.ok(), "v5");

    // ls: sorted names, one per line; -R: full paths, depth-first, the path first.
    assert_eq!(e.run(&["ls", "/app"]).await.ok(), "a\nb\n");
    assert_eq!(e.run(&["ls", "/app/a/deep"]).await.ok(), "");
    assert_eq!(e.run(&["ls", "-R", "/app"]).await.ok(), "/app\n/app/a\n/app/a/deep\n/app/b\n");
    let root = e.run(&["ls", "-R", "/"]).await.ok();
    let lines: Vec<&str> = root.lines().collect();
    assert_eq!(lines[0], "/");
    let app = lines.iter().position(|l| *l == "/app").expect("/app listed");
    assert_eq!(&lines[app..app + 4], ["/app", "/app/a", "/app/a/deep", "/app/b"], "{root}");
    assert!(e.run(&["ls", "/"]).await.ok().lines().any(|l| l == "app"));

    assert!(e.run(&["stat", "/app/a"]).await.ok().contains("\nnumChildren = 1\n"));

    // delete prints nothing; -v must match the data version.
    assert_eq!(e.run(&["delete", "/app/a/deep"]).await.ok(), "");
    assert_eq!(e.run(&["delete", "-v", "0", "/app/b"]).await.ok(), "");
    assert_eq!(e.run(&["ls", "-R", "/app"]).await.ok(), "/app\n/app/a\n");
    e.run(&["delete", "/app/a"]).await.ok();
    e.run(&["delete", "/app"]).await.ok();
    assert_eq!(e.run(&["get", "/app"]).await.fails_with("NoNode"), "/app");
    assert_eq!(e.client().await.exists("/app").await, Ok(None));

    e.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_is_stored_and_printed_byte_for_byte() {
    use std::os::unix::ffi::OsStrExt;
    let e = Ensemble::start().await;
    // Not UTF-8, a trailing newline and control bytes: all must survive.
    let data: &[u8] = b"\xff\xfe caf\xc3\xa9\n\x01";
    let arg = |s: &str| OsString::from(s);
    let out = e.run_os(vec![arg("create"), arg("/bin"), OsStr::from_bytes(data).to_owned()]).await;
    assert_eq!(out.ok(), "Created /bin\n");
    assert_eq!(e.client().await.get_data("/bin").await.expect("get").0, data);
    assert_eq!(e.run(&["get", "/bin"]).await.stdout, data);

    let out = e.run_os(vec![arg("set"), arg("/bin"), OsStr::from_bytes(b"x\x80").to_owned()]).await;
    assert_eq!(out.ok(), "");
    let got = e.run(&["get", "-s", "/bin"]).await;
    assert!(got.stdout.starts_with(b"x\x80\ncZxid = 0x"), "{got:?}");
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_container_and_ttl_modes() {
    let e = Ensemble::start().await;
    e.run(&["create", "/q"]).await.ok();
    assert_eq!(e.run(&["create", "-s", "/q/job-", "a"]).await.ok(), "Created /q/job-0000000000\n");
    assert_eq!(e.run(&["create", "--sequential", "/q/job-", "b"]).await.ok(), "Created /q/job-0000000001\n");
    assert_eq!(e.run(&["ls", "/q"]).await.ok(), "job-0000000000\njob-0000000001\n");
    assert_eq!(e.run(&["get", "/q/job-0000000001"]).await.ok(), "b");

    // The counter is the parent's, shared by every sequential child.
    assert_eq!(e.run(&["create", "-s", "--ttl", "60000", "/q/t-"]).await.ok(), "Created /q/t-0000000002\n");
    assert_eq!(e.run(&["create", "-t", "60000", "/ttl"]).await.ok(), "Created /ttl\n");
    assert_eq!(e.run(&["create", "-c", "/box"]).await.ok(), "Created /box\n");
    assert_eq!(e.run(&["ls", "-R", "/q"]).await.ok(), "/q\n/q/job-0000000000\n/q/job-0000000001\n/q/t-0000000002\n");
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_print_the_code_name_and_exit_1() {
    let e = Ensemble::start().await;
    assert_eq!(e.run(&["get", "/missing"]).await.fails_with("NoNode"), "/missing");
    e.run(&["stat", "/missing"]).await.fails_with("NoNode");
    e.run(&["ls", "-R", "/missing"]).await.fails_with("NoNode");
    e.run(&["set", "/missing", "x"]).await.fails_with("NoNode");
    e.run(&["delete", "/missing"]).await.fails_with("NoNode");
    e.run(&["create", "/no/parent"]).await.fails_with("NoNode");

    e.run(&["create", "/dup", "x"]).await.ok();
    e.run(&["create", "/dup", "y"]).await.fails_with("NodeExists");
    assert_eq!(e.run(&["get", "/dup"]).await.ok(), "x", "the failed create changed nothing");

    e.run(&["set", "-v", "5", "/dup", "z"]).await.fails_with("BadVersion");
    e.run(&["delete", "-v", "1", "/dup"]).await.fails_with("BadVersion");
    assert_eq!(e.stat_of("/dup").await.version, 0);

    e.run(&["create", "/dup/child"]).await.ok();
    e.run(&["delete", "/dup"]).await.fails_with("NotEmpty");
    assert!(e.client().await.exists("/dup").await.expect("exists").is_some());

    // Rejected by the client before anything is sent.
    e.run(&["get", "relative"]).await.fails_with("BadArguments");
    e.run(&["create", "/trailing/"]).await.fails_with("BadArguments");
    e.stop().await;

    // Nobody listening: the transport failure keeps ZooKeeper's name for it.
    let mut cmd = command(Some("127.0.0.1:1"));
    cmd.args(["--timeout", "2s", "get", "/"]);
    let out = run_command(cmd).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("Error: ConnectionLoss: ") || out.stderr.starts_with("Error: OperationTimeout: "),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    for (args, expect) in [
        (&["create", "-e", "-c", "/a"][..], "cannot be used with"),
        (&["create", "-c", "--ttl", "100", "/a"], "cannot be used with"),
        (&["create", "-e", "--ttl", "100", "/a"], "cannot be used with"),
        (&["create", "-c", "-s", "/a"], "cannot be used with"),
        (&["create", "--ttl", "0", "/a"], "--ttl"),
        (&["set", "/a"], "required"),
        (&["delete", "-v", "x", "/a"], "invalid value"),
        (&["frobnicate"], "unrecognized subcommand"),
        (&["--timeout", "0s", "status"], "positive duration"),
    ] {
        // Unroutable endpoints: parsing must fail before any connection.
        let mut cmd = command(Some("127.0.0.1:1"));
        cmd.args(args);
        let out = run_command(cmd).await;
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty() && out.stderr.contains(expect), "{args:?}: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_nodes_live_while_the_command_runs() {
    let e = Ensemble::start().await;
    e.run(&["create", "/locks"]).await.ok();

    let (holder, line) = e.spawn(&["create", "-e", "/lock", "holder"]).await;
    assert_eq!(line, "Created /lock\n");
    // The node is there, owned by a session, for as long as the command runs.
    let stat = e.stat_of("/lock").await;
    assert_ne!(stat.ephemeral_owner, 0);
    assert_eq!(e.run(&["get", "/lock"]).await.ok(), "holder");
    let shown = e.run(&["stat", "/lock"]).await.ok();
    assert!(shown.contains(&format!("\nephemeralOwner = 0x{:x}\n", stat.ephemeral_owner)), "{shown}");
    // Ephemeral nodes cannot have children (ZooKeeper's rule).
    e.run(&["create", "/lock/child"]).await.fails_with("NoChildrenForEphemerals");

    // A second holder fails and exits (closing its own session) instead of waiting.
    e.run(&["create", "-e", "/lock", "other"]).await.fails_with("NodeExists");

    // Sequential ephemerals get the suffix like any sequential node.
    let (second, line) = e.spawn(&["create", "-e", "-s", "/locks/l-"]).await;
    assert_eq!(line, "Created /locks/l-0000000000\n");
    assert_eq!(e.run(&["ls", "/locks"]).await.ok(), "l-0000000000\n");

    // Still there after a while: the session is held, not just opened.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(e.stat_of("/lock").await.ephemeral_owner, stat.ephemeral_owner);

    // SIGTERM: the command closes its session, which deletes the node, and exits 0.
    holder.signal(libc::SIGTERM);
    let out = tokio::task::spawn_blocking(move || holder.finish()).await.expect("runner");
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{out:?}");
    assert_eq!(e.client().await.exists("/lock").await, Ok(None));
    e.run(&["get", "/lock"]).await.fails_with("NoNode");
    assert_eq!(e.run(&["ls", "/locks"]).await.ok(), "l-0000000000\n", "the other holder's node stays");

    // Ctrl-C does the same.
    second.signal(libc::SIGINT);
    let out = tokio::task::spawn_blocking(move || second.finish()).await.expect("runner");
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{out:?}");
    assert_eq!(e.run(&["ls", "/locks"]).await.ok(), "");

    // No session outlived its command, including the failed second holder's.
    e.wait_no_sessions().await;
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_node_is_deleted_exits_1() {
    let e = Ensemble::start().await;
    // The shortest session the server grants, so the holder checks its node often.
    let (holder, line) = e.spawn(&["create", "-e", "--session-timeout", "1s", "/held"]).await;
    assert_eq!(line, "Created /held\n");
    e.run(&["delete", "/held"]).await.ok();
    let out = tokio::task::spawn_blocking(move || holder.finish()).await.expect("runner");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr, "Error: NoNode: /held was deleted while this command held it\n");
    e.wait_no_sessions().await;
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_one_line_per_event_until_a_signal() {
    let e = Ensemble::start().await;
    let client = e.client().await;
    let persistent = || corral_client::CreateOptions::new(corral_client::CreateMode::Persistent);
    client.create("/cw", b"", persistent()).await.expect("create");

    let mut cmd = command(Some(&e.endpoints));
    cmd.args(["watch", "-R", "/cw"]);
    let mut running = Running(cmd.spawn().expect("spawn corral"));
    let out = running.0.stdout.take().expect("stdout is piped");
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });

    // Nothing says when the watch is in place: change the node until the
    // command reports a change, then let the pokes in flight drain.
    let start = Instant::now();
    let first = loop {
        client.set_data("/cw", b"poke", None).await.expect("set");
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => break line,
            Err(_) => assert!(start.elapsed() < DEADLINE, "no event line from `corral watch`"),
        }
    };
    assert!(first.starts_with("NodeDataChanged /cw (zxid 0x") && first.ends_with(')'), "{first}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    while lines.try_recv().is_ok() {}

    let (_, created) = client.create("/cw/a", b"", persistent()).await.expect("create child");
    let set = client.set_data("/cw/a", b"x", None).await.expect("set child");
    client.delete("/cw/a", None).await.expect("delete child");
    let next = || lines.recv_timeout(DEADLINE).expect("an event line");
    assert_eq!(next(), format!("NodeCreated /cw/a (zxid {:#x})", created.czxid));
    assert_eq!(next(), format!("NodeDataChanged /cw/a (zxid {:#x})", set.mzxid));
    let deleted = next();
    assert!(deleted.starts_with("NodeDeleted /cw/a (zxid 0x"), "{deleted}");

    // Ctrl-C closes the session and exits 0, quietly.
    running.signal(libc::SIGINT);
    let out = tokio::task::spawn_blocking(move || running.finish()).await.expect("runner");
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{out:?}");
    e.wait_no_sessions().await;
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_members_and_the_leader() {
    let e = Ensemble::start().await;
    e.run(&["create", "/counted"]).await.ok();
    // Endpoints from the environment this time, as a shell profile would set them.
    let mut cmd = command(None);
    cmd.env("CORRAL_ENDPOINTS", &e.endpoints).arg("status");
    let out = run_command(cmd).await.ok();

    let field = |name: &str| -> String {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}:\n{out}"));
        line[name.len()..].trim().to_string()
    };
    let leader_addr = e.cluster.endpoint(e.leader);
    assert_eq!(field("Leader"), format!("{} ({leader_addr})", e.leader), "{out}");
    assert!(field("Term").parse::<u64>().expect("term") >= 1, "{out}");
    assert!(field("Commit zxid").starts_with("0x"), "{out}");
    assert!(field("Applied zxid").starts_with("0x"), "{out}");
    // At least the root and /zookeeper with its two children (ours too, once
    // the answering member has applied it).
    assert!(field("Znodes").parse::<u64>().expect("znodes") >= 4, "{out}");

    let table: Vec<Vec<&str>> =
        out.lines().skip_while(|l| !l.starts_with("ID ")).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(table[0], ["ID", "ADDRESS", "ROLE", "VOTER"], "{out}");
    let rows = &table[1..];
    assert_eq!(rows.len(), 3, "{out}");
    for (i, row) in rows.iter().enumerate() {
        let id = i as u64 + 1;
        let role = if id == e.leader { "leader" } else { "follower" };
        assert_eq!(row, &[id.to_string().as_str(), e.cluster.endpoint(id).as_str(), role, "yes"], "{out}");
    }
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_add_list_and_remove() {
    let mut e = Ensemble::start().await;
    e.run(&["create", "/before", "x"]).await.ok();
    let four = e.cluster.start_joining_member().await;
    let four_addr = e.cluster.endpoint(four);
    // The dev ensemble's secret is the default.
    let out = e.run(&["member", "add", "--observer", "4", &four_addr]).await.ok();
    let rows: Vec<Vec<&str>> = out.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
    assert!(out.starts_with("Config zxid  0x"), "{out}");
    assert_eq!(rows[0], ["ID", "ADDRESS", "ROLE"], "{out}");
    assert_eq!(rows.last().unwrap(), &["4", four_addr.as_str(), "observer"], "{out}");
    assert_eq!(rows.len(), 5, "{out}");

    // The observer serves what was written before it joined.
    let mut cmd = command(Some(&four_addr));
    cmd.args(["get", "/before"]);
    assert_eq!(run_command(cmd).await.ok(), "x");

    let out = e.run(&["member", "list"]).await.ok();
    assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["4", &four_addr, "learner", "no"]), "{out}");

    // A wrong secret changes nothing.
    let mut cmd = command(Some(&e.endpoints));
    cmd.env("CORRAL_CLUSTER_SECRET", "wrong").args(["member", "remove", "4"]);
    run_command(cmd).await.fails_with("NoAuth");
    e.run(&["member", "remove", "9"]).await.fails_with("NoNode");

    let out = e.run(&["member", "remove", "4"]).await.ok();
    assert!(!out.contains(&four_addr), "{out}");
    assert_eq!(out.lines().count(), 6, "{out}");
    e.stop().await;
}
