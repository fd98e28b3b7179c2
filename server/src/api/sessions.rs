//! Session liveness: ZooKeeper's `SessionTracker`, run by the leader.
//!
//! Every member notes the sessions it hears from (pings on a session stream, any request that
//! carries a session id). The leader keeps a deadline per open session and restarts it on each
//! touch; followers send the leader what they heard, in batches, every half tick. A session past
//! its deadline is expired by proposing one `ExpireSession` entry, which deletes its ephemerals
//! atomically on every member. A newly elected leader knows no deadlines, so it grants every
//! session a fresh timeout instead of expiring them all.
//!
//! The same loop runs the leader's container and TTL sweeps as `Reap` entries.
//!
//! It also decides whether this member serves sessions at all. A member that is out of the
//! ensemble's configuration (removed, or not yet added), or that has known no leader for longer
//! than a tick (cut off from a majority), cannot keep its sessions alive: what it hears never
//! reaches the leader. As a ZooKeeper server that leaves the quorum closes its client
//! connections, it detaches every session here and refuses new ones until it serves again, so
//! clients move to a member that can, well within their timeout (at least two ticks).
//!
//! Deadlines use the runtime's monotonic clock, which only the leader reads, and nothing
//! about them enters the state machine except the decision to expire.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::member::Member;
use crate::rt;
use crate::tree::TxnOp;

/// What a member knows about session liveness.
#[derive(Default)]
pub struct SessionTracker {
    state: Mutex<TrackerState>,
    /// Whether this member is out of reach of the leader (see the module comment).
    not_serving: AtomicBool,
}

#[derive(Default)]
struct TrackerState {
    /// Sessions heard from since the last loop iteration.
    touched: BTreeSet<i64>,
    /// Leader only: when each open session expires unless touched.
    deadlines: BTreeMap<i64, Instant>,
    /// The term whose leadership `deadlines` belong to.
    leading_term: Option<u64>,
    /// Sessions whose expiry is being proposed.
    expiring: BTreeSet<i64>,
    /// Nodes whose reap is being proposed.
    reaping: BTreeSet<String>,
}

impl SessionTracker {
    /// Whether sessions may attach to this member (ZooKeeper connections and session streams).
    pub fn serving(&self) -> bool {
        !self.not_serving.load(Ordering::Relaxed)
    }

    /// Notes that a session was heard from on this member.
    pub fn touch(&self, session_id: i64) {
        if session_id != 0 {
            self.state.lock().touched.insert(session_id);
        }
    }

    /// Notes sessions a follower heard from.
    pub fn touch_all(&self, ids: impl IntoIterator<Item = i64>) {
        let mut st = self.state.lock();
        st.touched.extend(ids.into_iter().filter(|id| *id != 0));
    }
}

/// How often the loop runs: a fraction of the tick, so that a touch reaches the leader well
/// within the shortest timeout (two ticks).
fn period(tick_ms: u32) -> Duration {
    Duration::from_millis((tick_ms as u64 / 4).clamp(10, 500))
}

/// The session and sweep loop of one member; runs until the task is aborted.
pub async fn run(member: Arc<Member>, tick_ms: u32, sweep_every: Duration) {
    let mut next_sweep = Instant::now() + sweep_every;
    let mut leaderless_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(period(tick_ms)).await;
        let term = member.raft.metrics().borrow().current_term;
        let leader = member.leader();
        let in_configuration = member.in_configuration();
        leaderless_since = match leader {
            Some(_) => None,
            None => leaderless_since.or(Some(Instant::now())),
        };
        let cut_off = leaderless_since.is_some_and(|t| t.elapsed() > Duration::from_millis(tick_ms as u64));
        set_serving(&member, in_configuration && !cut_off);
        if leader == Some(member.id) {
            lead(&member, term);
            if Instant::now() >= next_sweep {
                next_sweep = Instant::now() + sweep_every;
                sweep(&member);
            }
        } else {
            follow(&member, leader).await;
        }
    }
}

/// Starts or stops serving sessions; on stopping, every session attached here is detached (its
/// ZooKeeper connection closed, its stream ended), so that its client moves to another member.
fn set_serving(member: &Member, serving: bool) {
    let was = !member.sessions.not_serving.swap(!serving, Ordering::Relaxed);
    if was && !serving {
        tracing::info!(member = member.id, "out of the configuration or cut off from the leader: detaching every session");
        member.state.watches.lock().drop_all();
    } else if !was && serving {
        tracing::info!(member = member.id, "serving sessions again");
    }
}

fn lead(member: &Arc<Member>, term: u64) {
    let now = Instant::now();
    let sessions: BTreeMap<i64, Duration> = {
        let st = member.state.read();
        st.tree.sessions().map(|(id, s)| (id, Duration::from_millis(s.timeout_ms.max(0) as u64))).collect()
    };
    let expired: Vec<i64> = {
        let mut t = member.sessions.state.lock();
        if t.leading_term != Some(term) {
            // New leadership: every session starts a fresh timeout.
            t.leading_term = Some(term);
            t.deadlines.clear();
            t.expiring.clear();
        }
        let touched = std::mem::take(&mut t.touched);
        for id in touched {
            if let Some(timeout) = sessions.get(&id) {
                t.deadlines.insert(id, now + *timeout);
            }
        }
        t.deadlines.retain(|id, _| sessions.contains_key(id));
        t.expiring.retain(|id| sessions.contains_key(id));
        for (id, timeout) in &sessions {
            t.deadlines.entry(*id).or_insert(now + *timeout);
        }
        let due: Vec<i64> = t
            .deadlines
            .iter()
            .filter(|(id, deadline)| **deadline <= now && !t.expiring.contains(id))
            .map(|(id, _)| *id)
            .collect();
        t.expiring.extend(due.iter().copied());
        due
    };
    for session_id in expired {
        let member = member.clone();
        tokio::spawn(async move {
            tracing::info!(session = format_args!("{session_id:#x}"), "session expired");
            let r = member.propose(0, Vec::new(), TxnOp::ExpireSession { session_id }).await;
            let mut t = member.sessions.state.lock();
            t.expiring.remove(&session_id);
            if r.is_err() {
                // Not committed (lost leadership?): the next leader decides afresh.
                t.deadlines.remove(&session_id);
            }
        });
    }
}

/// Proposes a reap of every container and TTL node that looks due; the entry re-checks.
fn sweep(member: &Arc<Member>) {
    let due: Vec<String> = {
        let st = member.state.read();
        let mut due = st.tree.empty_containers();
        due.extend(st.tree.expired_ttl_nodes(rt::now_ms()));
        due
    };
    let due: Vec<String> = {
        let mut t = member.sessions.state.lock();
        due.into_iter().filter(|p| t.reaping.insert(p.clone())).collect()
    };
    if due.is_empty() {
        return;
    }
    let member = member.clone();
    tokio::spawn(async move {
        for path in due {
            let r = member.propose(0, Vec::new(), TxnOp::Reap { path: path.clone() }).await;
            tracing::debug!(%path, ?r, "reap");
            member.sessions.state.lock().reaping.remove(&path);
        }
    });
}

async fn follow(member: &Arc<Member>, leader: Option<u64>) {
    let touched = {
        let mut t = member.sessions.state.lock();
        t.leading_term = None;
        t.deadlines.clear();
        t.expiring.clear();
        std::mem::take(&mut t.touched)
    };
    let Some(leader) = leader else {
        member.sessions.touch_all(touched);
        return;
    };
    if touched.is_empty() {
        return;
    }
    let ids: Vec<i64> = touched.iter().copied().collect();
    if let Err(e) = member.send_touches(leader, &ids).await {
        tracing::debug!("touches to leader {leader}: {e}");
        // Keep them for the next round (or the next leader, which renews everyone anyway).
        member.sessions.touch_all(ids);
    }
}
