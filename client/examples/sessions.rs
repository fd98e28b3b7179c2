//! Session figures against a running ensemble.
//!
//! ```sh
//! # how many idle sessions one member holds, pinging at the default rate (timeout/3):
//! cargo run --release -p corral-client --example sessions -- hold --sessions 5000 --endpoint 127.0.0.1:7001
//! # how long a session is unusable when its member dies: kill the member it reports, watch the gap
//! cargo run --release -p corral-client --example sessions -- failover
//! ```
//!
//! `hold` opens `--sessions` sessions (one client, so one HTTP/2 connection, each) on one member,
//! each with an ephemeral node, then keeps them for `--hold-seconds` while printing how many are
//! still connected, so the member's CPU and RSS can be read meanwhile (`ps`, `/proc`).
//! `failover` opens one session on the first endpoint, prints which member it is on, then reads
//! every 10 ms and reports each gap between successful reads and each state change: kill the
//! member it is on and the largest gap is the time to being usable elsewhere.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use corral_client::{Client, CreateMode, CreateOptions, SessionState};
use futures::StreamExt;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
    #[arg(long, global = true, env = "CORRAL_ENDPOINTS", default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")]
    endpoints: String,
    /// Requested session timeout (ZooKeeper clients commonly ask for 30 s).
    #[arg(long, global = true, default_value_t = 30_000)]
    timeout_ms: i32,
}

#[derive(Subcommand)]
enum Mode {
    Hold {
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Only this member (default: the first endpoint).
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long, default_value_t = 60)]
        hold_seconds: u64,
    },
    Failover {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Probe with a write (setData) instead of a read.
        #[arg(long)]
        writes: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let endpoints: Vec<String> = args.endpoints.split(',').map(|s| s.trim().to_string()).collect();
    match args.mode {
        Mode::Hold { sessions, endpoint, hold_seconds } => {
            let endpoint = endpoint.unwrap_or_else(|| endpoints[0].clone());
            hold(endpoint, sessions, args.timeout_ms, hold_seconds).await
        }
        Mode::Failover { seconds, writes } => failover(endpoints, args.timeout_ms, seconds, writes).await,
    }
}

async fn hold(endpoint: String, sessions: usize, timeout_ms: i32, hold_seconds: u64) -> anyhow::Result<()> {
    let setup = Client::connect(vec![endpoint.clone()]).await?;
    match setup.create("/hold", b"", CreateOptions::new(CreateMode::Persistent)).await {
        Ok(_) => {}
        Err(e) if e.code() == corral_client::ErrorCode::NodeExists => {}
        Err(e) => return Err(e.into()),
    }
    let started = Instant::now();
    let opened = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::with_capacity(sessions);
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..sessions {
        let endpoint = endpoint.clone();
        let opened = opened.clone();
        pending.push(async move {
            let c = Client::connect(vec![endpoint]).await?;
            c.start_session(timeout_ms).await?;
            c.create(&format!("/hold/s{i}"), b"", CreateOptions::new(CreateMode::Ephemeral)).await?;
            opened.fetch_add(1, Ordering::Relaxed);
            Ok::<_, corral_client::Error>(c)
        });
        // Open in waves of 200 so the member sees a steady stream, not a stampede.
        if pending.len() >= 200 {
            clients.push(pending.next().await.expect("pending")?);
        }
    }
    while let Some(c) = pending.next().await {
        clients.push(c?);
    }
    println!(
        "{} sessions with an ephemeral each on {endpoint} in {:.1} s; holding for {hold_seconds} s",
        clients.len(),
        started.elapsed().as_secs_f64()
    );
    let until = Instant::now() + Duration::from_secs(hold_seconds);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let connected = clients.iter().filter(|c| c.session_state() == SessionState::Connected).count();
        println!("{connected} of {} sessions connected", clients.len());
    }
    for c in &clients {
        let _ = c.close_session().await;
    }
    Ok(())
}

async fn failover(endpoints: Vec<String>, timeout_ms: i32, seconds: u64, writes: bool) -> anyhow::Result<()> {
    let client = Client::connect(endpoints).await?;
    client.start_session(timeout_ms).await?;
    client.create("/failover-probe", b"", CreateOptions::new(CreateMode::Ephemeral)).await.ok();
    println!("session on {}", client.current_endpoint().unwrap_or_default());
    let mut states = client.session_states();
    let t0 = Instant::now();
    tokio::spawn(async move {
        while let Some(s) = states.next().await {
            println!("{:8.3} s: {s:?}", t0.elapsed().as_secs_f64());
        }
    });
    let mut last_ok = Instant::now();
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        let ok = if writes {
            client.set_data("/failover-probe", b"x", None).await.is_ok()
        } else {
            client.exists("/failover-probe").await.is_ok()
        };
        if ok {
            let gap = last_ok.elapsed();
            if gap > Duration::from_millis(100) {
                println!(
                    "{:8.3} s: usable again after a {:.3} s gap, on {}",
                    t0.elapsed().as_secs_f64(),
                    gap.as_secs_f64(),
                    client.current_endpoint().unwrap_or_default()
                );
            }
            worst = worst.max(gap);
            last_ok = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let still = client.exists("/failover-probe").await?.is_some();
    println!("largest gap {:.3} s; the session's ephemeral survived: {still}", worst.as_secs_f64());
    Ok(())
}
