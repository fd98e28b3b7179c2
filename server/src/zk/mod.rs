//! The ZooKeeper wire protocol front end: kazoo, zkCli.sh, the Java client and Curator talk to
//! a member here exactly as they talk to Apache ZooKeeper.
//!
//! One task per TCP connection ([`conn`]): the handshake creates or resumes a session, then
//! requests are decoded with `corral_proto::jute`, served through [`crate::api::ops`] (the same
//! path the gRPC API takes, so sessions, watches and errors are one implementation), and
//! answered in order. Watch notifications travel on the connection's [`crate::watch::Conn`] and
//! are written before any reply that reflects a later state. Four-letter words (`ruok`, `srvr`,
//! `mntr`, ...) are answered on the same port ([`four_letter`]).
//!
//! A malformed or oversized frame closes that one connection with a log line; nothing else
//! notices.

mod conn;
mod four_letter;
mod handle;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::member::Member;
use crate::config::Config;

/// What the ZooKeeper front end needs from the member's configuration.
#[derive(Debug, Clone)]
pub struct ZkSettings {
    pub tick_ms: u32,
    /// Largest frame accepted: the data limit plus room for headers, path and ACLs.
    pub max_frame: usize,
    pub max_data_len: usize,
    /// `conf` prints these.
    pub config: Config,
}

impl ZkSettings {
    pub fn from_config(config: &Config) -> ZkSettings {
        ZkSettings {
            tick_ms: config.tick_ms,
            max_frame: config.max_data_len + 64 * 1024,
            max_data_len: config.max_data_len,
            config: config.clone(),
        }
    }

    /// ZooKeeper's negotiation: clamp the request into [2 ticks, 20 ticks].
    pub fn negotiate(&self, requested_ms: i32) -> i32 {
        let tick = self.tick_ms as i32;
        requested_ms.clamp(2 * tick, 20 * tick)
    }
}

/// Counters that `srvr`, `stat` and `mntr` report.
#[derive(Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub connections: AtomicU64,
    pub latency_total_us: AtomicU64,
    pub latency_max_us: AtomicU64,
    pub latency_count: AtomicU64,
}

impl Counters {
    fn record_latency(&self, us: u64) {
        self.latency_total_us.fetch_add(us, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
    }
}

/// Serves the ZooKeeper protocol on `listener` until the task is aborted.
pub async fn serve(member: Arc<Member>, listener: TcpListener, settings: ZkSettings) {
    let settings = Arc::new(settings);
    let counters = Arc::new(Counters::default());
    // Dropped when this task is aborted (the member stops): every connection then closes, so
    // clients fail over instead of talking to a stopped member.
    let (_alive, alive_rx) = tokio::sync::watch::channel(());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("zookeeper port accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (member, settings, counters) = (member.clone(), settings.clone(), counters.clone());
        let mut alive = alive_rx.clone();
        tokio::spawn(async move {
            counters.connections.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                biased;
                _ = alive.changed() => {}
                r = conn::run(member, stream, peer, settings, counters.clone()) => {
                    if let Err(e) = r {
                        tracing::info!(%peer, "zookeeper connection closed: {e}");
                    }
                }
            }
            counters.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}
