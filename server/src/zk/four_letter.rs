//! ZooKeeper's four-letter words, answered on the client port in ZooKeeper's own formats so
//! that existing monitoring (`echo mntr | nc`, exporters that parse `srvr`) keeps working.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use openraft::ServerState;

use super::{Counters, ZkSettings};
use crate::api::member::Member;

/// The version string operators see; the ZooKeeper version is the protocol we speak.
fn version() -> String {
    format!("3.8.0-corral-{}, built by Corral", env!("CARGO_PKG_VERSION"))
}

fn mode(member: &Member) -> &'static str {
    let m = member.raft.metrics();
    let m = m.borrow();
    let voters = m.membership_config.membership().voter_ids().count();
    match m.state {
        ServerState::Leader if voters <= 1 => "standalone",
        ServerState::Leader => "leader",
        ServerState::Learner => "observer",
        _ => "follower",
    }
}

pub fn answer(word: &str, member: &Member, settings: &ZkSettings, counters: &Counters) -> String {
    match word {
        "ruok" => "imok".to_string(),
        "isro" => "rw".to_string(),
        "srvr" => server_stats(member, counters, false),
        "stat" => server_stats(member, counters, true),
        "mntr" => monitor(member, counters),
        "conf" => conf(settings),
        "cons" => connections(member),
        "wchs" => {
            let w = member.state.watches.lock();
            let paths = w.by_path().len();
            format!(
                "{} connections watching {} paths\nTotal watches:{}\n",
                w.connection_count(),
                paths,
                w.watch_count()
            )
        }
        "wchp" => {
            let w = member.state.watches.lock();
            let mut out = String::new();
            for (path, sessions) in w.by_path() {
                let _ = writeln!(out, "{path}");
                for s in sessions {
                    let _ = writeln!(out, "\t0x{s:x}");
                }
            }
            out
        }
        "envi" => format!(
            "Environment:\nzookeeper.version={}\nhost.name={}\nos.name={}\nos.arch={}\nuser.dir={}\n",
            version(),
            std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        ),
        // dump, wchc, crst: not worth a format of their own.
        other => format!("{other} is not executed because it is not in the whitelist.\n"),
    }
}

fn latency(counters: &Counters) -> (f64, u64) {
    let n = counters.latency_count.load(Ordering::Relaxed);
    let total = counters.latency_total_us.load(Ordering::Relaxed);
    let avg_ms = if n == 0 { 0.0 } else { total as f64 / n as f64 / 1000.0 };
    (avg_ms, counters.latency_max_us.load(Ordering::Relaxed) / 1000)
}

fn server_stats(member: &Member, counters: &Counters, with_clients: bool) -> String {
    let (avg, max) = latency(counters);
    let nodes = member.state.read().tree.node_count();
    let mut out = format!("Zookeeper version: {}\n", version());
    if with_clients {
        out.push_str("Clients:\n");
        out.push_str(&connections(member));
        out.push('\n');
    }
    let _ = write!(
        out,
        "Latency min/avg/max: 0/{avg:.4}/{max}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: 0\nZxid: 0x{:x}\nMode: {}\nNode count: {nodes}\n",
        counters.received.load(Ordering::Relaxed),
        counters.sent.load(Ordering::Relaxed),
        counters.connections.load(Ordering::Relaxed),
        member.applied_zxid(),
        mode(member),
    );
    out
}

fn connections(member: &Member) -> String {
    let w = member.state.watches.lock();
    let mut out = String::new();
    for session in w.sessions() {
        let _ = writeln!(out, " [0](sid=0x{session:x})");
    }
    out
}

fn monitor(member: &Member, counters: &Counters) -> String {
    let (avg, max) = latency(counters);
    let (nodes, ephemerals, sessions, data) = {
        let st = member.state.read();
        let t = &st.tree;
        let ephemerals: usize = t.sessions().map(|(id, _)| t.get_ephemerals(id, "/").len()).sum();
        (t.node_count(), ephemerals, t.sessions().count(), t.approximate_data_size())
    };
    let (watches, conns) = {
        let w = member.state.watches.lock();
        (w.watch_count(), w.connection_count())
    };
    let m = member.raft.metrics().borrow().clone();
    let mut out = String::new();
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(out, "{k}\t{v}");
    };
    kv("zk_version", version());
    kv("zk_server_state", mode(member).into());
    kv("zk_avg_latency", format!("{avg:.4}"));
    kv("zk_max_latency", max.to_string());
    kv("zk_min_latency", "0".into());
    kv("zk_packets_received", counters.received.load(Ordering::Relaxed).to_string());
    kv("zk_packets_sent", counters.sent.load(Ordering::Relaxed).to_string());
    kv("zk_num_alive_connections", counters.connections.load(Ordering::Relaxed).to_string());
    kv("zk_outstanding_requests", "0".into());
    kv("zk_znode_count", nodes.to_string());
    kv("zk_watch_count", watches.to_string());
    kv("zk_ephemerals_count", ephemerals.to_string());
    kv("zk_approximate_data_size", data.to_string());
    kv("zk_global_sessions", sessions.to_string());
    kv("zk_local_sessions", conns.to_string());
    kv("zk_uptime", "0".into());
    // Corral's own: the Raft view behind the ZAB vocabulary.
    kv("zk_corral_term", m.current_term.to_string());
    kv("zk_corral_last_log_index", m.last_log_index.unwrap_or(0).to_string());
    kv("zk_corral_applied_zxid", member.applied_zxid().to_string());
    if m.state == ServerState::Leader {
        let followers = m.replication.as_ref().map_or(0, |r| r.len().saturating_sub(1));
        kv("zk_followers", followers.to_string());
        kv("zk_synced_followers", followers.to_string());
    }
    out
}

fn conf(settings: &ZkSettings) -> String {
    let c = &settings.config;
    format!(
        "clientPort={}\ndataDir={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nserverId={}\njute.maxbuffer={}\n",
        c.zk_addr.rsplit(':').next().unwrap_or(""),
        c.data_dir.display(),
        c.tick_ms,
        c.max_client_cnxns,
        2 * c.tick_ms,
        20 * c.tick_ms,
        c.id,
        c.max_data_len,
    )
}
