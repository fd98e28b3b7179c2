//! `corral-server`: run one member (`serve`) or a whole local ensemble (`dev`).
//! Only flags → config → bind → start lives here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use corral_server::config::Config;

mod dev;

// glibc's malloc showed up at ~8% of a loaded member's CPU (many small, short-lived request and
// reply buffers across threads); mimalloc's thread-local free lists cost a fraction of that.
#[cfg(not(madsim))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "corral-server", version, about = "Corral: a replicated coordination service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one member of an ensemble.
    Serve(ServeArgs),
    /// Run a whole local ensemble on loopback, one process per member.
    Dev(dev::DevArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file; flags given on the command line override it.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// This member's id (≥ 1).
    #[arg(long)]
    id: Option<u64>,
    /// Directory for the log, vote and snapshots.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address (client API and peer service), e.g. 127.0.0.1:7001.
    #[arg(long)]
    grpc_addr: Option<String>,
    /// ZooKeeper protocol listen address, e.g. 127.0.0.1:2181 (none if not given).
    #[arg(long)]
    zk_addr: Option<String>,
    /// Initial ensemble as ID=HOST:PORT,... (the same on every member).
    #[arg(long)]
    members: Option<String>,
    /// Join a running ensemble instead of forming one: wait until its leader adds this member
    /// (`corral member add ID HOST:PORT`).
    #[arg(long)]
    join: bool,
    /// Shared secret for member-to-member calls.
    #[arg(long, env = "CORRAL_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
    /// ZooKeeper tickTime in ms.
    #[arg(long)]
    tick_ms: Option<u32>,
    /// Snapshot after this many log entries.
    #[arg(long)]
    snapshot_every: Option<u64>,
    /// Largest znode payload in bytes (jute.maxbuffer); the same on every member.
    #[arg(long)]
    max_data_len: Option<usize>,
    /// Session connections one client address may hold on this member (0 = unlimited).
    #[arg(long)]
    max_client_cnxns: Option<u32>,
    /// How often the leader sweeps empty containers and expired TTL nodes, in ms.
    #[arg(long)]
    container_check_ms: Option<u64>,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_toml_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.id {
            c.id = v;
        }
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.grpc_addr {
            c.grpc_addr = v;
        }
        if let Some(v) = self.zk_addr {
            c.zk_addr = v;
        }
        if let Some(v) = self.members {
            c.members = Config::parse_members(&v)?;
        }
        if self.join {
            c.join = true;
        }
        if let Some(v) = self.cluster_secret {
            c.cluster_secret = v;
        }
        if let Some(v) = self.tick_ms {
            c.tick_ms = v;
        }
        if let Some(v) = self.snapshot_every {
            c.snapshot_every = v;
        }
        if let Some(v) = self.max_data_len {
            c.max_data_len = v;
        }
        if let Some(v) = self.max_client_cnxns {
            c.max_client_cnxns = v;
        }
        if let Some(v) = self.container_check_ms {
            c.container_check_ms = v;
        }
        if c.members.is_empty() && !c.join {
            // A lone member with no list forms a one-member ensemble.
            c.members = vec![corral_server::config::MemberAddr { id: c.id, addr: c.grpc_addr.clone() }];
        }
        c.validate()?;
        Ok(c)
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn,sled=warn,h2=warn,tower=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args.into_config()?).await,
            Command::Dev(args) => dev::run(args).await,
        }
    })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.grpc_addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.grpc_addr))?;
    let server = corral_server::server::Server::start(config, listener).await?;
    let failed = tokio::select! {
        biased;
        _ = shutdown_signal() => None,
        fatal = server.failed() => Some(fatal),
    };
    tracing::info!("stopping");
    server.shutdown().await;
    match failed {
        // Storage failed under Raft: exit nonzero so a supervisor restarts the member from disk.
        Some(fatal) => Err(anyhow::anyhow!("raft stopped on a fatal error: {fatal}")),
        None => Ok(()),
    }
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
