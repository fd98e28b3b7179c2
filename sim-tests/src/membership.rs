//! Membership change as a fault: an operator removes a voter from the running ensemble and later
//! adds it back (same id, address and disk, so it catches up from where its log stopped), through
//! the public API, while the workload and the other faults go on.
//!
//! The [`Operator`] runs on a client node of its own and makes the changes one at a time, in the
//! order asked, retrying each until the ensemble gives a definite answer: a change can stall
//! while other faults hold a quorum of the old or the new configuration, and its outcome can be
//! unknown when the answering member is cut off. [`Operator::settle`] waits until every change
//! asked for is done and every member votes again, before the scenario checks convergence.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_client::{Client, ErrorCode};
use madsim::runtime::{Handle, NodeHandle};
use parking_lot::Mutex;

use crate::sim::member_addr;

/// The simulated members' cluster secret (`Config::default()`'s).
const SECRET: &str = "corral-dev-secret";
/// Where the operator's client node is.
const OPERATOR_IP: &str = "10.0.3.1";

/// One change an operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Remove(u64),
    /// Add back as a voter.
    Add(u64),
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Change>,
    /// What the ensemble answered, for the failure message of a seed.
    log: Vec<String>,
}

/// Makes membership changes from a client node, one at a time.
pub struct Operator {
    queue: Arc<Mutex<Queue>>,
    /// The members the operator wants to vote once its queue is done.
    voters: BTreeSet<u64>,
    /// Whether the operator's task is working on the queue (or about to).
    busy: Arc<AtomicBool>,
    node: NodeHandle,
    endpoints: Vec<String>,
}

impl Operator {
    /// An operator for an ensemble whose members `ids` all vote.
    pub fn new(ids: &[u64]) -> Operator {
        let node = Handle::current()
            .create_node()
            .name("operator")
            .ip(OPERATOR_IP.parse().expect("an IP address"))
            .build();
        Operator {
            queue: Arc::default(),
            voters: ids.iter().copied().collect(),
            busy: Arc::default(),
            node,
            endpoints: ids.iter().map(|id| member_addr(*id)).collect(),
        }
    }

    /// The members that vote once every change asked for is done.
    pub fn voters(&self) -> &BTreeSet<u64> {
        &self.voters
    }

    /// Asks for `change`; the operator's task makes it after those asked for before.
    pub fn ask(&mut self, change: Change) {
        match change {
            Change::Remove(id) => self.voters.remove(&id),
            Change::Add(id) => self.voters.insert(id),
        };
        self.queue.lock().pending.push_back(change);
        if !self.busy.swap(true, Ordering::SeqCst) {
            let (queue, busy, endpoints) = (self.queue.clone(), self.busy.clone(), self.endpoints.clone());
            self.node.spawn(work(queue, busy, endpoints));
        }
    }

    /// What the operator did, and what the ensemble answered.
    pub fn log(&self) -> Vec<String> {
        self.queue.lock().log.clone()
    }

    /// Waits until every change asked for is done.
    pub async fn settle(&self, within: Duration) -> Result<(), String> {
        let deadline = madsim::time::Instant::now() + within;
        while self.busy.load(Ordering::SeqCst) {
            if madsim::time::Instant::now() >= deadline {
                let q = self.queue.lock();
                return Err(format!("membership changes still pending: {:?}; log: {:#?}", q.pending, q.log));
            }
            madsim::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

/// The operator's task: the queue's changes in order, each retried until it is done.
async fn work(queue: Arc<Mutex<Queue>>, busy: Arc<AtomicBool>, endpoints: Vec<String>) {
    let client = match Client::builder(endpoints).request_timeout(Duration::from_secs(10)).connect().await {
        Ok(c) => c,
        Err(e) => panic!("the operator's client: {e}"),
    };
    loop {
        let next = queue.lock().pending.front().copied();
        let Some(change) = next else {
            busy.store(false, Ordering::SeqCst);
            // A change asked for between the check and the store finds `busy` false and starts
            // another task; one asked for before the check is handled here.
            if queue.lock().pending.is_empty() || busy.swap(true, Ordering::SeqCst) {
                return;
            }
            continue;
        };
        let answer = match change {
            Change::Remove(id) => client.remove_member(SECRET, id).await,
            Change::Add(id) => client.add_member(SECRET, id, &member_addr(id), true).await,
        };
        let at = madsim::time::Instant::now();
        let done = match &answer {
            Ok(m) => {
                queue.lock().log.push(format!("{at:?} {change:?}: voters {:?}", m.voters));
                true
            }
            // Removed already (an earlier attempt whose answer was lost went through).
            Err(e) if matches!(change, Change::Remove(_)) && e.code() == ErrorCode::NoNode => {
                queue.lock().log.push(format!("{at:?} {change:?}: already done"));
                true
            }
            Err(e) => {
                queue.lock().log.push(format!("{at:?} {change:?}: {e}; retrying"));
                false
            }
        };
        if done {
            queue.lock().pending.pop_front();
        } else {
            madsim::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
