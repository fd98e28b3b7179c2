//! The member: where the gRPC services meet Raft and the replicated tree.
//!
//! Write path: a service turns a request into a [`TxnOp`]; [`Member::write`]
//! stamps the leader's clock into a [`Txn`] and proposes it. A follower forwards
//! the op to the leader over the peer service, then waits until its own replica
//! has applied the entry, so a client reading from the same member next sees its
//! own write. Read path: [`Member::read_barrier`] waits until the local replica
//! is at least as new as the client has seen (and, for linearizable reads, at the
//! leader's confirmed commit point); the service then reads the tree under its
//! read lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use corral_proto::raft::raft_peer_client::RaftPeerClient;
use corral_proto::ErrorCode;
use openraft::error::{ClientWriteError, RaftError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use super::membership::{MembershipChange, MembershipResponse, MEMBERSHIP_WAIT};
use super::ops::ConnectionLimits;
use super::sessions::SessionTracker;
use crate::raft::link::{AppendReply, CallError, ForwardLink, LinkHandler};
use crate::raft::network::{authed, decode, encode, peer_channel};
use crate::raft::state_machine::SharedState;
use crate::raft::types::{zxid, Batch};
use crate::raft::{NodeId, Raft};
use crate::rt;
use crate::tree::{Id, Txn, TxnOp, TxnResult};

/// How long a request waits for a leader to be elected or reachable before it
/// gives up with ConnectionLoss (the client then tries another member).
const LEADER_WAIT: Duration = Duration::from_secs(5);
/// How long a read waits for this replica to catch up with what the client saw.
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);

/// A failure on the way to or from the state machine.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum MemberError {
    /// A ZooKeeper-level failure (e.g. the request itself is invalid).
    #[error("{code}: {message}")]
    Zk { code: ErrorCode, message: String },
    /// No leader could be reached: the outcome of a write is unknown.
    #[error("no leader reachable: {0}")]
    Unavailable(String),
    /// The member asked is not the leader and proposed nothing: safe to retry elsewhere.
    #[error("not the leader: {0}")]
    NotLeader(String),
}

impl MemberError {
    pub fn zk(code: ErrorCode, message: impl Into<String>) -> MemberError {
        MemberError::Zk { code, message: message.into() }
    }
}

/// A write forwarded from a follower to the leader (in a batch: see [`forward_batches`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardRequest {
    pub session_id: i64,
    pub auth: Vec<Id>,
    pub op: TxnOp,
}

/// The leader's answer to a [`ForwardRequest`]: the result and the entry's zxid.
pub type ForwardResponse = Result<(TxnResult, u64), MemberError>;
/// The leader's answer to a read-index request: its confirmed commit index.
pub type ReadIndexResponse = Result<u64, MemberError>;

pub struct Member {
    pub id: NodeId,
    pub raft: Raft,
    pub state: Arc<SharedState>,
    secret: String,
    /// Session liveness as this member hears it (see `api::sessions`).
    pub sessions: SessionTracker,
    /// Client connections per address, across both front ends.
    pub connections: Arc<ConnectionLimits>,
    /// Clients to the other members.
    peers: Arc<Peers>,
    /// Writes waiting to be proposed together (see [`propose_batches`]).
    proposals: mpsc::UnboundedSender<Proposal>,
    /// Writes waiting to be forwarded to the leader together (see [`forward_batches`]).
    forwards: mpsc::UnboundedSender<Forwarding>,
}

/// Clients to the other members, made on first use; shared by the member and its forwarder.
struct Peers {
    raft: Raft,
    secret: String,
    /// By member id, with the address it was made for: a member removed and added again may
    /// come back at another address.
    clients: Mutex<BTreeMap<NodeId, (String, RaftPeerClient<Channel>)>>,
    /// Links for forwarded writes (`raft::link::ForwardLink`), likewise.
    forward_links: Mutex<BTreeMap<NodeId, (String, Arc<ForwardLink>)>>,
    /// This member.
    id: NodeId,
}

impl Peers {
    fn addr_of(&self, id: NodeId) -> Result<String, MemberError> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let addr = m.membership_config.membership().get_node(&id).map(|n| n.addr.clone());
        addr.ok_or_else(|| MemberError::Unavailable(format!("member {id} unknown")))
    }

    /// The link forwarded writes take to `leader`, opened on first use and after it failed.
    async fn forward_link(&self, leader: NodeId) -> Result<Arc<ForwardLink>, MemberError> {
        let addr = self.addr_of(leader)?;
        if let Some((made_for, link)) = self.forward_links.lock().get(&leader) {
            if *made_for == addr && !link.is_dead() {
                return Ok(link.clone());
            }
        }
        let link = ForwardLink::connect(&addr, &self.secret, self.id)
            .await
            .map(Arc::new)
            .map_err(|e| MemberError::Unavailable(format!("member {leader} at {addr}: {e}")))?;
        self.forward_links.lock().insert(leader, (addr, link.clone()));
        Ok(link)
    }

    async fn client(&self, id: NodeId) -> Result<RaftPeerClient<Channel>, MemberError> {
        let addr = self.addr_of(id)?;
        if let Some((made_for, c)) = self.clients.lock().get(&id) {
            if *made_for == addr {
                return Ok(c.clone());
            }
        }
        let channel = peer_channel(&addr)
            .map_err(|e| MemberError::Unavailable(format!("member {id} at {addr}: {e}")))?;
        let client = RaftPeerClient::new(channel);
        self.clients.lock().insert(id, (addr, client.clone()));
        Ok(client)
    }

    /// Forwards writes to the leader in one call; its answers come back in the same order.
    async fn forward(&self, leader: NodeId, reqs: &[ForwardRequest]) -> Result<Vec<ForwardResponse>, ForwardFailure> {
        let link = self.forward_link(leader).await.map_err(|e| ForwardFailure::NotSent(e.to_string()))?;
        let body = bincode::serialize(&reqs).map_err(|e| ForwardFailure::NotSent(format!("encode: {e}")))?;
        let reply = match tokio::time::timeout(LEADER_WAIT, link.call(body)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(CallError::NotSent)) => return Err(ForwardFailure::NotSent(format!("forward to {leader}: the link closed"))),
            Ok(Err(CallError::Lost)) => return Err(ForwardFailure::Lost(format!("forward to {leader}: the link failed"))),
            Err(_) => return Err(ForwardFailure::Lost(format!("forward to {leader}: no answer within {LEADER_WAIT:?}"))),
        };
        let answers: Result<Vec<ForwardResponse>, String> =
            bincode::deserialize(&reply).map_err(|e| ForwardFailure::Lost(format!("decode: {e}")))?;
        let answers = answers.map_err(ForwardFailure::Lost)?;
        if answers.len() != reqs.len() {
            return Err(ForwardFailure::Lost(format!("{} answers to {} forwarded writes", answers.len(), reqs.len())));
        }
        Ok(answers)
    }
}

/// One write waiting to be forwarded.
struct Forwarding {
    leader: NodeId,
    req: ForwardRequest,
    reply: oneshot::Sender<Result<ForwardResponse, ForwardFailure>>,
}

/// `first` and whatever else is queued right now, up to [`zxid::MAX_BATCH`] items and
/// [`BATCH_BYTES`] of payload (`len` measures one), in queue order.
fn gather<T>(first: T, queue: &mut mpsc::UnboundedReceiver<T>, len: impl Fn(&T) -> usize) -> Vec<T> {
    let mut bytes = len(&first);
    let mut batch = vec![first];
    while batch.len() < zxid::MAX_BATCH && bytes < BATCH_BYTES {
        match queue.try_recv() {
            Ok(item) => {
                bytes += len(&item);
                batch.push(item);
            }
            Err(_) => break,
        }
    }
    batch
}

/// Forward calls in flight at once from one member.
const FORWARDS_IN_FLIGHT: usize = 8;

/// A follower's side of the group commit: writes queued while earlier forwards are in flight go
/// to the leader in one call (in order), instead of one HTTP/2 request each. Under no load a call
/// carries one write and leaves at once.
async fn forward_batches(peers: Arc<Peers>, mut queue: mpsc::UnboundedReceiver<Forwarding>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(FORWARDS_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let batch = gather(first, &mut queue, |f| f.req.op.payload_len());
        // Usually one leader; after a change of leader, each gets its own call, in order.
        let mut by_leader: BTreeMap<NodeId, Vec<Forwarding>> = BTreeMap::new();
        for f in batch {
            by_leader.entry(f.leader).or_default().push(f);
        }
        let peers = peers.clone();
        tokio::spawn(async move {
            for (leader, group) in by_leader {
                let (reqs, replies): (Vec<ForwardRequest>, Vec<_>) = group.into_iter().map(|f| (f.req, f.reply)).unzip();
                match peers.forward(leader, &reqs).await {
                    Ok(answers) => {
                        for (reply, answer) in replies.into_iter().zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    Err(failure) => {
                        for reply in replies {
                            let _ = reply.send(Err(failure.clone()));
                        }
                    }
                }
            }
            drop(slot);
        });
    }
}

/// One write waiting for its batch.
struct Proposal {
    txn: Txn,
    reply: oneshot::Sender<Result<(TxnResult, u64), ProposeError>>,
}

/// Log entries proposed at once by one member: a few in flight keep the disks and the
/// followers busy (the leader replicates an entry while it syncs it, see vendor/README.md) while
/// writes that arrive meanwhile gather into the next entry.
const ENTRIES_IN_FLIGHT: usize = 4;
/// How long an entry may hold its proposal slot. openraft 0.9 answers a write once its entry
/// is applied or cut from this member's log; an entry that leaves the log another way is never
/// answered, and four such entries stalled every later write on a healthy leader (found by the
/// simulator: watches scenario, seed 5027 of the soak). Past this, the entry's writes are
/// reported with an unknown outcome (ConnectionLoss, as ZooKeeper does) and the slot is freed.
const PROPOSAL_WAIT: Duration = Duration::from_secs(10);
/// Payload bytes one entry gathers at most (it still takes at least one txn).
const BATCH_BYTES: usize = 1024 * 1024;

/// The leader's group commit: takes every write queued since the last entry left (up to
/// [`zxid::MAX_BATCH`] and [`BATCH_BYTES`]) into one entry, so one fsync and one round of
/// replication carry them all. In order: a session's writes keep their order in the log. Under
/// no load an entry carries one write and leaves at once, so batching adds no latency.
async fn propose_batches(raft: Raft, mut queue: mpsc::UnboundedReceiver<Proposal>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(ENTRIES_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        // Wait for a free slot before gathering: whatever queues meanwhile joins this entry.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let batch = gather(first, &mut queue, |p| p.txn.op.payload_len());
        let raft = raft.clone();
        tokio::spawn(async move {
            let (txns, replies): (Vec<Txn>, Vec<_>) = batch.into_iter().map(|p| (p.txn, p.reply)).unzip();
            let n = txns.len();
            let outcome = tokio::time::timeout(PROPOSAL_WAIT, raft.client_write(Batch { txns })).await;
            drop(slot);
            let failure = match outcome {
                Ok(Ok(resp)) if resp.data.results.len() == n => {
                    let index = resp.log_id.index;
                    for (position, (reply, result)) in replies.into_iter().zip(resp.data.results).enumerate() {
                        let _ = reply.send(Ok((result, zxid::of(index, position))));
                    }
                    return;
                }
                Ok(Ok(resp)) => ProposeError::Fatal(format!(
                    "entry {} answered {} results for {n} txns",
                    resp.log_id,
                    resp.data.results.len()
                )),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => ProposeError::NotLeader,
                Ok(Err(e)) => ProposeError::Fatal(e.to_string()),
                Err(_) => ProposeError::Fatal(format!("the entry was not answered within {PROPOSAL_WAIT:?}: outcome unknown")),
            };
            for reply in replies {
                let _ = reply.send(Err(failure.clone()));
            }
        });
    }
}

impl Member {
    /// Must be called inside the runtime: it starts the member's proposer task.
    pub fn new(id: NodeId, raft: Raft, state: Arc<SharedState>, secret: String, max_client_cnxns: u32) -> Member {
        let (proposals, queue) = mpsc::unbounded_channel();
        tokio::spawn(propose_batches(raft.clone(), queue));
        let peers = Arc::new(Peers {
            raft: raft.clone(),
            secret: secret.clone(),
            clients: Mutex::new(BTreeMap::new()),
            forward_links: Mutex::new(BTreeMap::new()),
            id,
        });
        let (forwards, queue) = mpsc::unbounded_channel();
        tokio::spawn(forward_batches(peers.clone(), queue));
        Member {
            id,
            proposals,
            forwards,
            peers,
            raft,
            state,
            secret,
            sessions: SessionTracker::default(),
            connections: ConnectionLimits::new(max_client_cnxns),
        }
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Whether a session may attach here now: the session loop's verdict (`api::sessions`), or,
    /// between this member learning of a leader and the loop's next turn (a quarter tick), that
    /// a leader is known and this member is in the configuration. Without the second, a member
    /// that had just found its leader (after the election at startup, say) turned sessions away
    /// for that moment.
    pub fn accepts_sessions(&self) -> bool {
        if self.sessions.serving() {
            return true;
        }
        self.in_configuration() && self.leader().is_some()
    }

    /// Whether this member is in the ensemble's current configuration.
    pub fn in_configuration(&self) -> bool {
        self.raft.metrics().borrow().membership_config.membership().get_node(&self.id).is_some()
    }

    /// The leader as this member sees it. Never itself unless it leads a configuration it is a
    /// voter of: openraft 0.9 keeps a leader that was removed from the ensemble "leading" with
    /// no one left to replicate to, and what it proposed then would never commit.
    pub fn leader(&self) -> Option<NodeId> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let in_membership = m.membership_config.membership().get_node(&self.id).is_some();
        match m.current_leader {
            Some(l) if l == self.id && (m.state != openraft::ServerState::Leader || !in_membership) => None,
            other => other,
        }
    }

    /// Proposes `op` through the leader and returns its result and zxid once this
    /// member's replica has applied it.
    pub async fn write(&self, session_id: i64, auth: Vec<Id>, op: TxnOp) -> ForwardResponse {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        let mut op = Some(op);
        loop {
            let Some(current) = op.take() else {
                return Err(MemberError::Unavailable("internal: op consumed".into()));
            };
            let leader = self.leader();
            match leader {
                Some(leader) if leader == self.id => {
                    match self.propose(session_id, auth.clone(), current.clone()).await {
                        Ok(r) => return Ok(r),
                        // Lost leadership between the check and the proposal: retry.
                        Err(ProposeError::NotLeader) => op = Some(current),
                        Err(ProposeError::Fatal(e)) => return Err(MemberError::Unavailable(e)),
                    }
                }
                Some(leader) => {
                    let req = ForwardRequest { session_id, auth: auth.clone(), op: current };
                    match self.forward(leader, req.clone()).await {
                        Ok(Ok((result, zxid))) => {
                            self.wait_applied(zxid, CATCH_UP_WAIT).await?;
                            return Ok((result, zxid));
                        }
                        // Nothing was proposed: try again once a leader is known.
                        Ok(Err(MemberError::NotLeader(_))) | Err(ForwardFailure::NotSent(_)) => {
                            op = Some(req.op)
                        }
                        // The leader may have proposed it: retrying could apply it twice
                        // (a create would then fail with NodeExists), so the outcome is
                        // reported as unknown, as ZooKeeper's ConnectionLoss.
                        Err(ForwardFailure::Lost(e)) => return Err(MemberError::Unavailable(e)),
                        Ok(Err(e)) => return Err(e),
                    }
                }
                None => op = Some(current),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(MemberError::Unavailable(format!(
                    "member {} found no leader within {:?}",
                    self.id, LEADER_WAIT
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Proposes on this member, which believes it is the leader, in the next batch. The
    /// leader's clock reading goes into the txn here, and only here.
    pub async fn propose(
        &self,
        session_id: i64,
        auth: Vec<Id>,
        op: TxnOp,
    ) -> Result<(TxnResult, u64), ProposeError> {
        self.enqueue_proposal(session_id, auth, op)?.await
    }

    /// Queues a proposal at once (so proposals queued one after another keep their order in the
    /// log) and returns the future of its outcome.
    pub fn enqueue_proposal(
        &self,
        session_id: i64,
        auth: Vec<Id>,
        op: TxnOp,
    ) -> Result<impl std::future::Future<Output = Result<(TxnResult, u64), ProposeError>>, ProposeError> {
        let stopped = || ProposeError::Fatal("the member's proposer has stopped".into());
        let txn = Txn { time_ms: rt::now_ms(), session_id, auth, op };
        let (reply, answer) = oneshot::channel();
        self.proposals.send(Proposal { txn, reply }).map_err(|_| stopped())?;
        Ok(async move { answer.await.map_err(|_| stopped())? })
    }

    async fn peer(&self, id: NodeId) -> Result<RaftPeerClient<Channel>, MemberError> {
        self.peers.client(id).await
    }

    /// Forwards a write to the leader, in the next forward batch.
    async fn forward(&self, leader: NodeId, req: ForwardRequest) -> Result<ForwardResponse, ForwardFailure> {
        let (reply, answer) = oneshot::channel();
        let lost = || ForwardFailure::NotSent("the member's forwarder has stopped".into());
        self.forwards.send(Forwarding { leader, req, reply }).map_err(|_| lost())?;
        answer.await.map_err(|_| lost())?
    }

    /// Sends a membership change to the leader, which makes it (see [`super::membership`]).
    pub(super) async fn forward_membership_change(
        &self,
        leader: NodeId,
        change: &MembershipChange,
    ) -> Result<MembershipResponse, ForwardFailure> {
        let mut client = self.peer(leader).await.map_err(|e| ForwardFailure::NotSent(e.to_string()))?;
        let body = encode(change).map_err(|s| ForwardFailure::NotSent(s.to_string()))?;
        let mut request = authed(&self.secret, body);
        request.set_timeout(MEMBERSHIP_WAIT + LEADER_WAIT);
        let reply = client
            .change_membership(request)
            .await
            .map_err(|s| ForwardFailure::of(&s, format!("membership change through {leader}")))?;
        decode(&reply.into_inner()).map_err(|s| ForwardFailure::Lost(s.to_string()))
    }

    /// Tells the leader which sessions this member heard from.
    pub async fn send_touches(&self, leader: NodeId, ids: &[i64]) -> Result<(), MemberError> {
        let mut client = self.peer(leader).await?;
        let body = encode(&ids.to_vec()).map_err(|s| MemberError::Unavailable(s.to_string()))?;
        let mut request = authed(&self.secret, body);
        request.set_timeout(LEADER_WAIT);
        client.touch_sessions(request).await.map_err(|s| MemberError::Unavailable(s.to_string()))?;
        Ok(())
    }

    /// The leader's confirmed commit point, as the first zxid of the committed entry: reading
    /// after this replica has applied it (applied zxid at least this) is linearizable.
    pub async fn read_index(&self) -> ReadIndexResponse {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            let leader = self.leader();
            match leader {
                Some(l) if l == self.id => match self.raft.get_read_log_id().await {
                    Ok((read, _applied)) => return Ok(read.map_or(0, |l| zxid::of(l.index, 0))),
                    Err(e) => tracing::debug!("read index on leader failed: {e}"),
                },
                Some(l) => {
                    let reply: Result<ReadIndexResponse, MemberError> = async {
                        let mut client = self.peer(l).await?;
                        let body =
                            encode(&()).map_err(|s| MemberError::Unavailable(s.to_string()))?;
                        let mut request = authed(&self.secret, body);
                        request.set_timeout(LEADER_WAIT);
                        let r = client
                            .read_index(request)
                            .await
                            .map_err(|s| MemberError::Unavailable(s.to_string()))?;
                        decode(&r.into_inner()).map_err(|s| MemberError::Unavailable(s.to_string()))
                    }
                    .await;
                    if let Ok(Ok(index)) = reply {
                        return Ok(index);
                    }
                }
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(MemberError::Unavailable("no leader confirmed a read index".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the local replica has applied `zxid`.
    pub async fn wait_applied(&self, zxid: u64, timeout: Duration) -> Result<(), MemberError> {
        let mut rx = self.state.subscribe_applied();
        let wait = async move { rx.wait_for(|applied| *applied >= zxid).await.map(|_| ()) };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(MemberError::Unavailable("member shutting down".into())),
            Err(_) => Err(MemberError::zk(
                ErrorCode::OperationTimeout,
                format!("member {} did not reach zxid {zxid} within {timeout:?}", self.id),
            )),
        }
    }

    /// Makes the local replica at least as new as `min_zxid` (what the client has
    /// seen) and, for linearizable reads, as new as the leader's commit point.
    pub async fn read_barrier(&self, min_zxid: u64, linearizable: bool) -> Result<(), MemberError> {
        let mut target = min_zxid;
        if linearizable {
            target = target.max(self.read_index().await?);
        }
        if self.state.applied_zxid() >= target {
            return Ok(());
        }
        self.wait_applied(target, CATCH_UP_WAIT).await
    }

    /// This replica's applied zxid: what every response reports.
    pub fn applied_zxid(&self) -> u64 {
        self.state.applied_zxid()
    }
}

/// Why a forwarded write got no answer from the leader.
#[derive(Debug, Clone)]
pub enum ForwardFailure {
    /// The request never left this member (no connection could be opened).
    NotSent(String),
    /// The request may have reached the leader.
    Lost(String),
}

impl ForwardFailure {
    /// A failed call to the leader, `what` it was.
    fn of(status: &tonic::Status, what: String) -> ForwardFailure {
        let what = format!("{what}: {status}");
        if never_sent(status) {
            ForwardFailure::NotSent(what)
        } else {
            ForwardFailure::Lost(what)
        }
    }
}

/// Whether a failed call provably never reached the peer: the connection itself
/// could not be made. tonic reports that only as text in the error chain.
fn never_sent(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        text.push_str(&format!(" | {e}"));
        source = e.source();
    }
    let text = text.to_ascii_lowercase();
    text.contains("error trying to connect")
        || text.contains("tcp connect error")
        || text.contains("connection refused")
}

/// What the member's replication and forward links carry (`raft::link`). A forward call is a
/// batch of [`ForwardRequest`]s, queued in order at once; the answer is their results, in the
/// same order, once all are applied.
impl LinkHandler for Member {
    fn append_entries(
        &self,
        rpc: openraft::raft::AppendEntriesRequest<crate::raft::TypeConfig>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = AppendReply> + Send>> {
        let raft = self.raft.clone();
        Box::pin(async move { raft.append_entries(rpc).await })
    }

    fn forwarded(&self, call: Vec<u8>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>> {
        let id = self.id;
        let queued: Result<Vec<_>, String> = bincode::deserialize::<Vec<ForwardRequest>>(&call)
            .map(|batch| batch.into_iter().map(|fwd| self.enqueue_proposal(fwd.session_id, fwd.auth, fwd.op)).collect())
            .map_err(|e| format!("undecodable forwarded writes: {e}"));
        Box::pin(async move {
            let answers: Result<Vec<ForwardResponse>, String> = match queued {
                Ok(queued) => {
                    let mut answers = Vec::with_capacity(queued.len());
                    for q in queued {
                        let r = match q {
                            Ok(outcome) => outcome.await,
                            Err(e) => Err(e),
                        };
                        answers.push(match r {
                            Ok(r) => Ok(r),
                            Err(ProposeError::NotLeader) => Err(MemberError::NotLeader(format!("member {id} is not the leader"))),
                            Err(ProposeError::Fatal(e)) => Err(MemberError::Unavailable(e)),
                        });
                    }
                    Ok(answers)
                }
                Err(e) => Err(e),
            };
            // A vector of plain enums and strings: encoding cannot fail.
            bincode::serialize(&answers).unwrap_or_default()
        })
    }
}

/// Why a proposal on this member did not go through.
#[derive(Debug, Clone)]
pub enum ProposeError {
    NotLeader,
    Fatal(String),
}
