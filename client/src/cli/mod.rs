//! The `corral` CLI: arguments (clap derive), the runtime, and how a failure
//! becomes a message and an exit status.
//!
//! - `mod.rs`: the argument types, `main`, errors and output.
//! - `commands.rs`: one function per command, on top of [`corral_client::Client`].
//! - `recipes.rs`: `lock`, `elect` and `queue`, on top of `corral_client::recipes`.
//! - `format.rs`: pure formatting and parsing (Stat, status table, durations,
//!   the `ls -R` walk order), unit-tested without a server.

mod commands;
mod format;
mod recipes;

use std::ffi::OsString;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use corral_client::ClientBuilder;

/// The dev ensemble's members (`corral-server dev`).
pub const DEFAULT_ENDPOINTS: &str = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";

#[derive(Debug, Parser)]
#[command(
    name = "corral",
    version,
    about = "Command-line client for a Corral ensemble (ZooKeeper's data model over Raft)",
    long_about = "Command-line client for a Corral ensemble (ZooKeeper's data model over Raft).\n\n\
        Failures print `Error: <ZooKeeper code name>: <message>` (e.g. `Error: NoNode: /app`) \
        to stderr and exit with status 1; usage errors exit with status 2.",
    after_help = "Examples:\n  \
        corral create /app '{\"v\":1}'\n  \
        corral create -s /app/job- task\n  \
        corral get -s /app\n  \
        corral set -v 0 /app '{\"v\":2}'\n  \
        corral ls -R /\n  \
        corral watch -R /app\n  \
        corral lock db-migration -- ./migrate.sh\n  \
        corral elect scheduler host-a\n  \
        corral queue put jobs 'resize img-1'\n  \
        corral status"
)]
pub struct Cli {
    /// Members' client addresses, comma-separated host:port. Any member will
    /// do; the client fails over between them.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "CORRAL_ENDPOINTS",
        value_name = "HOST:PORT,...",
        default_value = DEFAULT_ENDPOINTS
    )]
    pub endpoints: String,

    /// Budget of each request, failover included (e.g. 500ms, 5s, 1m; a bare
    /// number is seconds).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "CORRAL_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = format::parse_duration
    )]
    pub timeout: Duration,

    /// Consistency of reads (get, ls, stat). `linearizable` reflects every write
    /// acknowledged before the command started, whichever member answers;
    /// `sequential` is ZooKeeper's default and may lag behind the leader.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_enum,
        default_value_t = Consistency::Linearizable
    )]
    pub consistency: Consistency,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    Linearizable,
    Sequential,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node and print `Created <path>` (with the sequence suffix for -s).
    #[command(long_about = CREATE_LONG_ABOUT)]
    Create(CreateArgs),
    /// Print a node's data as raw bytes; with -s, a newline and then its Stat.
    Get(GetArgs),
    /// Replace a node's data, optionally only at a given data version.
    Set(SetArgs),
    /// Delete a node (it must have no children), optionally only at a given data version.
    Delete(DeleteArgs),
    /// List a node's children, sorted, one per line; -R lists every descendant's full path.
    Ls(LsArgs),
    /// Print a node's Stat as zkCli does.
    Stat(StatArgs),
    /// Print every change of a node (-R: of its whole subtree) as it happens,
    /// one line per event, until Ctrl-C.
    #[command(long_about = WATCH_LONG_ABOUT)]
    Watch(WatchArgs),
    /// Show the ensemble as the answering member sees it: members, roles,
    /// leader, term, commit/applied zxid, znode and session counts.
    Status,
    /// Add members to the ensemble or remove them (operators: needs the cluster secret).
    #[command(long_about = MEMBER_LONG_ABOUT)]
    Member(MemberArgs),
    /// Run a command while holding a distributed lock (like `etcdctl lock`).
    #[command(long_about = LOCK_LONG_ABOUT)]
    Lock(LockArgs),
    /// Campaign in a leader election and print every change of leader.
    #[command(long_about = ELECT_LONG_ABOUT)]
    Elect(ElectArgs),
    /// Put items into a distributed queue, or take them out.
    #[command(long_about = QUEUE_LONG_ABOUT)]
    Queue(QueueArgs),
}

const MEMBER_LONG_ABOUT: &str = "\
Add members to the ensemble or remove them, while it serves.

Every change goes through joint consensus on the leader and returns once it is
committed, printing the membership then in force. `add` takes the new member's
id and gRPC address; start that member first with `corral-server serve --join`
(it waits to be added). A new voter catches up as an observer before it is
promoted, so `add` returns when it holds the data. With --observer the member
replicates and serves clients but never votes (ZooKeeper's observer). `remove`
works on voters (the leader included: another takes over) and observers; once
it returns, the removed member can be stopped. `list` prints the members as the
answering member sees them.

Changes need the ensemble's cluster secret (--cluster-secret or
CORRAL_CLUSTER_SECRET; the dev ensemble's is the default); a wrong one fails
with NoAuth.";

#[derive(Debug, Args)]
pub struct MemberArgs {
    /// The ensemble's shared secret (`cluster_secret` in the members' config).
    #[arg(long, env = "CORRAL_CLUSTER_SECRET", hide_env_values = true, default_value = "corral-dev-secret")]
    pub cluster_secret: String,

    #[command(subcommand)]
    pub op: MemberOp,
}

#[derive(Debug, Subcommand)]
pub enum MemberOp {
    /// Add a member (a voter unless --observer), started with `corral-server serve --join`.
    Add {
        /// Add it as an observer: it replicates and serves clients, and never votes.
        #[arg(long)]
        observer: bool,
        /// The new member's id (≥ 1, not in the ensemble).
        id: u64,
        /// The new member's gRPC address, HOST:PORT, as the other members reach it.
        addr: String,
    },
    /// Remove a voter or an observer.
    Remove { id: u64 },
    /// List the members, their addresses and roles.
    List,
}

const LOCK_LONG_ABOUT: &str = "\
Run a command while holding a distributed lock (like `etcdctl lock`).

Waits for the lock NAME (a path such as /app/lock, or a bare name, which means
/corral/locks/NAME), then runs COMMAND with CORRAL_LOCK_NODE (the lock node) and
CORRAL_LOCK_TOKEN (its fencing token: higher for every later holder) in its
environment, and releases the lock when it exits. The exit status is the
command's. The lock is fair (first come, first served) and uses kazoo's node
names, so Python (kazoo) processes contending for the same path exclude and are
excluded by this one.

If the lock is lost while the command runs (the session expired, stayed
disconnected for longer than its timeout, or the lock node was deleted), the
command gets SIGTERM (SIGKILL 5 s later) and corral exits with status 1.
Ctrl-C, SIGTERM or SIGHUP are passed on to the command as SIGTERM.

Without a command, corral prints the lock node's path once it holds the lock and
keeps it until Ctrl-C.";

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Give up (exit 1) if the lock is not acquired within this long.
    #[arg(long, value_name = "DURATION", value_parser = format::parse_duration)]
    pub wait: Option<Duration>,

    /// The session timeout to ask for (the server clamps it to its bounds):
    /// how soon a holder killed with SIGKILL loses the lock. Default 10s.
    #[arg(long, value_name = "DURATION", value_parser = format::parse_duration)]
    pub session_timeout: Option<Duration>,

    /// Name the lock node as Curator's InterProcessMutex does
    /// (`_c_<uuid>-lock-<seq>`) instead of as kazoo does.
    #[arg(long)]
    pub curator: bool,

    /// The lock: a path, or a bare name for /corral/locks/NAME.
    pub name: String,

    /// The command to run while holding the lock, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

const ELECT_LONG_ABOUT: &str = "\
Campaign in a leader election and print every change of leader.

NAME is a path, or a bare name for /corral/elections/NAME. Prints `leader VALUE`
for the current leader and again for every new one (or `no leader`), one line
each, while campaigning with VALUE; candidates are elected in the order they
campaigned (kazoo's Election layout). Ctrl-C, SIGTERM or SIGHUP resign (the next
candidate takes over) and exit 0. Losing the leadership (session expired or
disconnected for longer than its timeout) exits 1. With -l, only observes.";

#[derive(Debug, Args)]
pub struct ElectArgs {
    /// Only observe: print the leader and each change, without campaigning.
    #[arg(short = 'l', long = "listen")]
    pub listen: bool,

    /// The session timeout to ask for. Default 10s.
    #[arg(long, value_name = "DURATION", value_parser = format::parse_duration)]
    pub session_timeout: Option<Duration>,

    /// The election: a path, or a bare name for /corral/elections/NAME.
    pub name: String,

    /// What to campaign with: what every observer sees while this process leads.
    #[arg(required_unless_present = "listen", conflicts_with = "listen")]
    pub value: Option<OsString>,
}

const QUEUE_LONG_ABOUT: &str = "\
Put items into a distributed queue, or take them out (kazoo's LockingQueue
layout: Python consumers and producers share queues with this one).

NAME is a path, or a bare name for /corral/queues/NAME. `take` waits for an
item, prints its data and a newline, and only then consumes it: every item is
consumed exactly once, by one taker.";

#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub op: QueueOp,
}

#[derive(Debug, Subcommand)]
pub enum QueueOp {
    /// Add an item.
    Put {
        /// 0 to 999; lower priorities are taken first.
        #[arg(short, long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(0..=999))]
        priority: u16,
        name: String,
        /// The item's data, stored as the argument's bytes.
        data: OsString,
    },
    /// Take one item (waiting for one), print its data and consume it.
    Take {
        /// Give up (exit 1) if no item comes within this long.
        #[arg(long, value_name = "DURATION", value_parser = format::parse_duration)]
        wait: Option<Duration>,
        name: String,
    },
    /// Print how many items the queue holds (those being processed included).
    Len { name: String },
}

const CREATE_LONG_ABOUT: &str = "\
Create a node and print `Created <path>` (with the sequence suffix for -s).

Modes follow zkCli: persistent by default; -e ephemeral, -s sequential (alone or
with -e or --ttl), -c container, --ttl MS a persistent node with a time to live.

An ephemeral node lives only as long as the session that created it, so with -e
this command opens a session, creates the node, prints `Created <path>` and then
STAYS IN THE FOREGROUND holding the session. Stop it with Ctrl-C, SIGTERM or
SIGHUP: it then closes the session, which deletes the node, and exits 0. If the
node is deleted by someone else meanwhile, or the session is lost, it exits 1.
Run it in the background (`corral create -e /lock &`) to hold a node while a
script works.";

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Ephemeral: the node is deleted when this command's session ends (the
    /// command keeps running until Ctrl-C or SIGTERM; see `corral help create`).
    #[arg(short, long, conflicts_with_all = ["container", "ttl"])]
    pub ephemeral: bool,

    /// Sequential: append the parent's 10-digit counter to the name.
    #[arg(short, long)]
    pub sequential: bool,

    /// Container: the server deletes the node once its last child is gone.
    #[arg(short, long, conflicts_with_all = ["sequential", "ttl"])]
    pub container: bool,

    /// Time to live in ms: the server deletes the node once it has had no
    /// children and no change for this long.
    #[arg(short, long, value_name = "MS", value_parser = clap::value_parser!(i64).range(1..))]
    pub ttl: Option<i64>,

    /// With -e: the session timeout to ask for (the server clamps it to its
    /// bounds). Default 10s.
    #[arg(long, value_name = "DURATION", requires = "ephemeral", value_parser = format::parse_duration)]
    pub session_timeout: Option<Duration>,

    /// The node's path; for -s, the prefix the sequence number is appended to.
    pub path: String,

    /// The node's data (empty if omitted), stored as the argument's bytes.
    pub data: Option<OsString>,
}

const WATCH_LONG_ABOUT: &str = "\
Print every change of a node as it happens, one line per event, until Ctrl-C.

Leaves a persistent watch (ZooKeeper's addWatch PERSISTENT), or with -R a
persistent recursive one, and prints each event as

  NodeDataChanged /app (zxid 0x1f)

NodeCreated, NodeDeleted, NodeDataChanged and NodeChildrenChanged for the node;
with -R, NodeCreated, NodeDeleted and NodeDataChanged for the node and every
descendant (no NodeChildrenChanged: a child's own event says it). The node need
not exist yet. The command holds a session for the watch and stays in the
foreground; Ctrl-C, SIGTERM or SIGHUP close the session and exit 0. If the
session expires it exits 1. Events missed while reconnecting to another member
are reported on reconnect, with zxid 0x0.";

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Recursive: the node and every descendant, present or future.
    #[arg(short = 'R', long)]
    pub recursive: bool,

    /// The session timeout to ask for (the server clamps it to its bounds).
    /// Default 10s.
    #[arg(long, value_name = "DURATION", value_parser = format::parse_duration)]
    pub session_timeout: Option<Duration>,

    /// The node's path, e.g. /app.
    pub path: String,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Also print the Stat, after a newline.
    #[arg(short, long)]
    pub stat: bool,
    /// The node's path, e.g. /app.
    pub path: String,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Only if the node's data version (dataVersion) is this; -1 means any.
    #[arg(short = 'v', long = "data-version", value_name = "VERSION", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-1..))]
    pub version: Option<i32>,
    /// Print the node's new Stat.
    #[arg(short, long)]
    pub stat: bool,
    /// The node's path, e.g. /app.
    pub path: String,
    /// The new data, stored as the argument's bytes.
    pub data: OsString,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Only if the node's data version (dataVersion) is this; -1 means any.
    #[arg(short = 'v', long = "data-version", value_name = "VERSION", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-1..))]
    pub version: Option<i32>,
    /// The node's path, e.g. /app.
    pub path: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Recursive: the path itself, then every descendant's full path,
    /// depth-first with siblings sorted.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// The node's path, e.g. / or /app.
    pub path: String,
}

#[derive(Debug, Args)]
pub struct StatArgs {
    /// The node's path, e.g. /app.
    pub path: String,
}

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// The client or the server refused; its Display starts with the code name.
    Client(corral_client::Error),
    /// A local I/O failure (writing the output, installing signal handlers).
    Io { context: &'static str, source: io::Error },
    /// Exit with this status and say nothing (`lock` passing on its
    /// command's status).
    Exit(u8),
}

impl From<corral_client::Error> for CliError {
    fn from(e: corral_client::Error) -> CliError {
        CliError::Client(e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Client(e) => write!(f, "{e}"),
            // SystemError is ZooKeeper's code for local failures, which keeps
            // every message in the `<code name>: <message>` shape.
            CliError::Io { context, source } => write!(f, "SystemError: {context}: {source}"),
            CliError::Exit(code) => write!(f, "exit status {code}"),
        }
    }
}

impl CliError {
    /// A closed stdout (`corral ls -R / | head`) means the reader has what it
    /// wanted: not worth an error.
    fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// Writes to stdout and flushes at once: `create -e` prints its path and then
/// waits, and a script reading that line must get it now.
pub(crate) fn emit(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Io { context: "writing to stdout", source })
}

pub(crate) fn stdout_is_terminal() -> bool {
    io::stdout().is_terminal()
}

pub(crate) fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The client logs only at debug level; keep stderr for errors unless asked.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(io::stderr)
            .init();
    }
    // One command at a time needs no worker threads.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(source) => return fail(&CliError::Io { context: "starting the runtime", source }),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(CliError::Exit(code)) => ExitCode::from(code),
        Err(e) => fail(&e),
    }
}

fn fail(e: &CliError) -> ExitCode {
    eprintln!("Error: {e}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let client = ClientBuilder::new(cli.endpoints.split(',')).request_timeout(cli.timeout).connect().await?;
    // A fresh process has seen no zxid, so without a linearizable read it could
    // be served by a member that has not applied the write the previous
    // command just made.
    let reader = match cli.consistency {
        Consistency::Linearizable => client.linearizable(),
        Consistency::Sequential => client.clone(),
    };
    match cli.command {
        Command::Create(args) => commands::create(&client, args).await,
        Command::Get(args) => commands::get(&reader, args).await,
        Command::Set(args) => commands::set(&client, args).await,
        Command::Delete(args) => commands::delete(&client, args).await,
        Command::Ls(args) => commands::ls(&reader, args).await,
        Command::Stat(args) => commands::stat(&reader, args).await,
        Command::Watch(args) => commands::watch(&client, args).await,
        Command::Status => commands::status(&client).await,
        Command::Member(args) => commands::member(&client, args).await,
        Command::Lock(args) => recipes::lock(&client, args).await,
        Command::Elect(args) => recipes::elect(&client, args).await,
        Command::Queue(args) => recipes::queue(&reader, args).await,
    }
}

/// The bytes of a command-line argument, unchanged: on Unix any byte string
/// (not just UTF-8) can be stored and read back with `get`.
pub(crate) fn arg_bytes(arg: OsString) -> Vec<u8> {
    arg.into_encoded_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_argument_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("corral").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_the_dev_ensemble_and_linearizable_reads() {
        // CORRAL_ENDPOINTS may be set in the developer's shell; --endpoints wins.
        let cli = parse(&["--endpoints", "a:1,b:2", "ls", "/"]).unwrap();
        assert_eq!(cli.endpoints, "a:1,b:2");
        assert_eq!(cli.consistency, Consistency::Linearizable);
        let Command::Ls(ls) = cli.command else { panic!("ls") };
        assert!(!ls.recursive);
        assert_eq!(DEFAULT_ENDPOINTS.split(',').count(), 3);
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let cli = parse(&["get", "/a", "--timeout", "250ms", "--endpoints", "x:9"]).unwrap();
        assert_eq!(cli.timeout, Duration::from_millis(250));
        assert_eq!(cli.endpoints, "x:9");
    }

    #[test]
    fn create_flag_combinations_without_a_mode_are_usage_errors() {
        for bad in [
            &["create", "-e", "-c", "/a"][..],
            &["create", "-e", "--ttl", "5", "/a"],
            &["create", "-c", "-s", "/a"],
            &["create", "-c", "-t", "5", "/a"],
            &["create", "--ttl", "0", "/a"],
            &["create", "--session-timeout", "5s", "/a"],
        ] {
            let err = parse(bad).expect_err(&format!("{bad:?}"));
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
        for good in [
            &["create", "-e", "-s", "/a"][..],
            &["create", "-s", "--ttl", "5", "/a", "x"],
            &["create", "-c", "/a"],
            &["create", "-e", "--session-timeout", "5s", "/a"],
        ] {
            assert!(parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn watch_takes_a_path_and_an_optional_recursive_flag() {
        let cli = parse(&["watch", "-R", "/app", "--session-timeout", "4s"]).unwrap();
        let Command::Watch(w) = cli.command else { panic!("watch") };
        assert!(w.recursive);
        assert_eq!((w.path.as_str(), w.session_timeout), ("/app", Some(Duration::from_secs(4))));
        let cli = parse(&["watch", "/app"]).unwrap();
        let Command::Watch(w) = cli.command else { panic!("watch") };
        assert!(!w.recursive && w.session_timeout.is_none());
        assert!(parse(&["watch"]).is_err());
    }

    #[test]
    fn versions_accept_minus_one_for_any() {
        let cli = parse(&["set", "-v", "-1", "/a", "x"]).unwrap();
        let Command::Set(set) = cli.command else { panic!("set") };
        assert_eq!(set.version, Some(-1));
        assert!(parse(&["delete", "-v", "-2", "/a"]).is_err());
        let cli = parse(&["delete", "--data-version", "3", "/a"]).unwrap();
        let Command::Delete(del) = cli.command else { panic!("delete") };
        assert_eq!(del.version, Some(3));
    }

    #[test]
    fn lock_takes_a_command_after_the_double_dash() {
        let cli = parse(&["lock", "--wait", "2s", "db", "--", "sh", "-c", "exit 3"]).unwrap();
        let Command::Lock(l) = cli.command else { panic!("lock") };
        assert_eq!((l.name.as_str(), l.wait), ("db", Some(Duration::from_secs(2))));
        assert_eq!(l.command, vec![OsString::from("sh"), "-c".into(), "exit 3".into()]);
        let cli = parse(&["lock", "/app/lock"]).unwrap();
        let Command::Lock(l) = cli.command else { panic!("lock") };
        assert!(l.command.is_empty() && !l.curator);
    }

    #[test]
    fn elect_needs_a_value_unless_listening() {
        assert!(parse(&["elect", "sched"]).is_err());
        assert!(parse(&["elect", "-l", "sched"]).is_ok());
        assert!(parse(&["elect", "-l", "sched", "v"]).is_err());
        let cli = parse(&["elect", "sched", "host-a"]).unwrap();
        let Command::Elect(e) = cli.command else { panic!("elect") };
        assert_eq!(e.value, Some(OsString::from("host-a")));
    }

    #[test]
    fn member_commands_parse() {
        let cli = parse(&["member", "add", "--observer", "5", "10.0.0.5:7001"]).unwrap();
        let Command::Member(MemberArgs { op: MemberOp::Add { observer, id, addr }, cluster_secret }) = cli.command
        else {
            panic!("add")
        };
        assert!(observer);
        assert_eq!((id, addr.as_str()), (5, "10.0.0.5:7001"));
        assert_eq!(cluster_secret, "corral-dev-secret");
        let cli = parse(&["member", "--cluster-secret", "s3", "remove", "2"]).unwrap();
        let Command::Member(MemberArgs { op: MemberOp::Remove { id: 2 }, cluster_secret }) = cli.command else {
            panic!("remove")
        };
        assert_eq!(cluster_secret, "s3");
        assert!(parse(&["member", "list"]).is_ok());
        assert!(parse(&["member", "add", "x", "h:1"]).is_err());
        assert!(parse(&["member", "add", "4"]).is_err());
    }

    #[test]
    fn queue_commands_parse() {
        let cli = parse(&["queue", "put", "-p", "5", "jobs", "x"]).unwrap();
        let Command::Queue(QueueArgs { op: QueueOp::Put { priority, .. } }) = cli.command else { panic!("put") };
        assert_eq!(priority, 5);
        assert!(parse(&["queue", "put", "-p", "1000", "jobs", "x"]).is_err());
        assert!(parse(&["queue", "take", "--wait", "1s", "jobs"]).is_ok());
        assert!(parse(&["queue", "len", "jobs"]).is_ok());
    }

    #[test]
    fn io_errors_keep_the_code_name_shape() {
        let e = CliError::Io { context: "writing to stdout", source: io::Error::other("disk full") };
        assert_eq!(e.to_string(), "SystemError: writing to stdout: disk full");
        let pipe = CliError::Io { context: "x", source: io::ErrorKind::BrokenPipe.into() };
        assert!(pipe.is_broken_pipe());
    }
}
