//! The members a client talks to, and the failover loop every request runs.
//!
//! One HTTP/2 connection per member, opened on first use. All requests go to
//! the *current* member; when it is unreachable the client moves on to the next
//! one in the endpoint list (or to the member a typed error names in
//! `leader_hint`), backing off after each full round.
//!
//! Retry rules, which decide what `Error::is_definite` can promise:
//! - A request whose connection could not be opened never left: it is retried
//!   on the next member, reads and writes alike.
//! - A read that failed any other way for a reason that isn't a definite
//!   ZooKeeper answer is retried on the next member: reads have no effect.
//! - A write that may have reached a member (the connection broke, the member
//!   lost its leader mid-request) is not retried: it ends in
//!   `Error::ConnectionLoss`, because its outcome is unknown.
//! - A definite refusal with a `leader_hint` proves nothing was applied, so
//!   writes are retried there too.
//!
//! Lock order: a member's `connecting` (async) before its `channel` (sync);
//! `channel` is never held across an await.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use corral_proto::v1 as pb;
use parking_lot::Mutex;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use corral_proto::ErrorCode;

use crate::error::{Error, Failure};
use crate::session::SessionCore;

/// Backoff before the second round over all members; doubles each round.
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// After this many full rounds without an answer the request fails, even with
/// time left: a CLI user with every member down should hear so in about a
/// second, not after the whole request timeout.
const MAX_ROUNDS: usize = 5;

/// Whether a request may be repeated after an ambiguous failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// No effect on the server: safe to send again anywhere.
    Read,
    /// Changes state: sent again only if it provably never arrived.
    Write,
}

/// Request types whose header carries `min_zxid`, filled in per attempt so a
/// retry asks for everything seen up to that moment.
pub(crate) trait Outgoing {
    fn set_min_zxid(&mut self, zxid: u64);
    /// The session the request carries, 0 for none.
    fn session_id(&self) -> i64 {
        0
    }
}

/// Response types that report the answering member's applied zxid.
pub(crate) trait Incoming {
    fn zxid(&self) -> Option<u64>;
    /// The reply header, whose `member_id` and `event_seq` order the reply
    /// after the session's watch events (see `session.rs`).
    fn header(&self) -> Option<&pb::ResponseHeader> {
        None
    }
}

macro_rules! with_header {
    ($($req:ident => $resp:ident),+ $(,)?) => {$(
        impl Outgoing for pb::$req {
            fn set_min_zxid(&mut self, zxid: u64) {
                if let Some(h) = self.header.as_mut() {
                    h.min_zxid = zxid;
                }
            }
            fn session_id(&self) -> i64 {
                self.header.as_ref().map_or(0, |h| h.session_id)
            }
        }
        impl Incoming for pb::$resp {
            fn zxid(&self) -> Option<u64> {
                self.header.as_ref().map(|h| h.zxid)
            }
            fn header(&self) -> Option<&pb::ResponseHeader> {
                self.header.as_ref()
            }
        }
    )+};
}

with_header! {
    CreateRequest => CreateResponse,
    DeleteRequest => DeleteResponse,
    SetDataRequest => SetDataResponse,
    GetDataRequest => GetDataResponse,
    ExistsRequest => ExistsResponse,
    GetChildrenRequest => GetChildrenResponse,
    GetAllChildrenNumberRequest => GetAllChildrenNumberResponse,
    GetEphemeralsRequest => GetEphemeralsResponse,
    GetAclRequest => GetAclResponse,
    SetAclRequest => SetAclResponse,
    CheckRequest => CheckResponse,
    MultiRequest => MultiResponse,
    SyncRequest => SyncResponse,
    CloseSessionRequest => CloseSessionResponse,
    AddWatchRequest => AddWatchResponse,
    RemoveWatchesRequest => RemoveWatchesResponse,
}

impl Outgoing for pb::CreateSessionRequest {
    fn set_min_zxid(&mut self, _: u64) {}
}

impl Incoming for pb::CreateSessionResponse {
    fn zxid(&self) -> Option<u64> {
        self.header.as_ref().map(|h| h.zxid)
    }
}

impl Outgoing for pb::StatusRequest {
    fn set_min_zxid(&mut self, _: u64) {}
}

impl Outgoing for pb::AddMemberRequest {
    fn set_min_zxid(&mut self, _: u64) {}
}

impl Outgoing for pb::RemoveMemberRequest {
    fn set_min_zxid(&mut self, _: u64) {}
}

impl Incoming for pb::MembershipResponse {
    // The config zxid names the membership entry; it is not a state this client read.
    fn zxid(&self) -> Option<u64> {
        None
    }
}

impl Incoming for pb::StatusResponse {
    // Status reports commit/applied positions in the body, not a header; they
    // describe the member, not what this client has observed, so they don't
    // move `last_zxid`.
    fn zxid(&self) -> Option<u64> {
        None
    }
}

/// How the retry loop reacts to one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Hand the error to the caller.
    Fail,
    /// Try another member. `drop_channel` when the connection itself is
    /// suspect, `hint` when the member named where to go.
    Retry { drop_channel: bool, hint: Option<String> },
    /// Give up on this request (its outcome is unknown) but steer the next
    /// requests away from the member.
    FailAndMoveOn { drop_channel: bool, hint: Option<String> },
}

/// The retry rules (see the module doc), as a pure function of the request
/// kind and what came back.
pub(crate) fn verdict(kind: Kind, failure: &Failure) -> Verdict {
    match failure {
        Failure::Zk { code, leader_hint, .. } => {
            let hint = (!leader_hint.is_empty()).then(|| leader_hint.clone());
            if !code.is_definite() {
                match kind {
                    Kind::Read => Verdict::Retry { drop_channel: false, hint },
                    Kind::Write => Verdict::FailAndMoveOn { drop_channel: false, hint },
                }
            } else if hint.is_some() {
                // A definite refusal ("not the leader, ask X"): nothing was
                // applied, so even a write can go to X.
                Verdict::Retry { drop_channel: false, hint }
            } else {
                Verdict::Fail
            }
        }
        Failure::Transport(_) => match kind {
            Kind::Read => Verdict::Retry { drop_channel: true, hint: None },
            Kind::Write => Verdict::FailAndMoveOn { drop_channel: true, hint: None },
        },
        Failure::Unsupported(_) => Verdict::Fail,
    }
}

/// Timeouts, fixed when the client is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// The whole budget of one call, failover and backoff included.
    pub request: Duration,
    /// How long opening a connection to one member may take.
    pub connect: Duration,
}

struct Member {
    /// As the user gave it ("host:port"), for messages and leader hints.
    addr: String,
    endpoint: Endpoint,
    /// The open channel and its generation. The generation lets a failure on
    /// an old connection drop only that one, not a fresh replacement.
    channel: Mutex<Option<(u64, Channel)>>,
    /// Serialises connection attempts, so concurrent requests share one
    /// connection and, the lock being FIFO, leave in the order they came.
    connecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

pub(crate) struct Pool {
    members: Vec<Member>,
    /// Index of the member requests go to.
    current: AtomicUsize,
    /// The highest zxid any response carried: sent as `min_zxid` so that a
    /// member behind what this client saw catches up before answering.
    last_zxid: AtomicU64,
    timeouts: Timeouts,
}

/// Caps the size of replies (large child lists, multi_read) well above the
/// 1 MiB znode limit; tonic's default of 4 MiB is too small for a big multi.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

impl Pool {
    /// `members` are (user-given address, endpoint) pairs, already validated.
    pub(crate) fn new(members: Vec<(String, Endpoint)>, timeouts: Timeouts) -> Pool {
        let members = members
            .into_iter()
            .map(|(addr, endpoint)| Member {
                addr,
                endpoint,
                channel: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
            })
            .collect();
        Pool { members, current: AtomicUsize::new(0), last_zxid: AtomicU64::new(0), timeouts }
    }

    pub(crate) fn last_zxid(&self) -> u64 {
        self.last_zxid.load(Ordering::Acquire)
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.timeouts.request
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.timeouts.connect
    }

    /// The index of the member requests without a session go to.
    pub(crate) fn current_index(&self) -> usize {
        self.current.load(Ordering::Acquire) % self.members.len().max(1)
    }

    /// Points requests at the member a session's stream just attached to.
    pub(crate) fn set_current(&self, idx: usize) {
        self.current.store(idx, Ordering::Release);
    }

    pub(crate) fn addrs(&self) -> Vec<String> {
        self.members.iter().map(|m| m.addr.clone()).collect()
    }

    pub(crate) fn current_addr(&self) -> Option<String> {
        let n = self.members.len();
        (n > 0).then(|| self.members[self.current.load(Ordering::Relaxed) % n].addr.clone())
    }

    pub(crate) fn observe(&self, zxid: u64) {
        self.last_zxid.fetch_max(zxid, Ordering::AcqRel);
    }

    /// The member's channel, connecting first if needed. An error means the
    /// connection could not be opened, so nothing was sent on it.
    pub(crate) async fn channel(&self, idx: usize, deadline: Instant) -> Result<(u64, Channel), String> {
        let member = &self.members[idx];
        if let Some(open) = member.channel.lock().clone() {
            return Ok(open);
        }
        let _connecting = member.connecting.lock().await;
        if let Some(open) = member.channel.lock().clone() {
            return Ok(open);
        }
        // Connect eagerly rather than with tonic's lazy channel: a failed
        // connect then shows up here, distinguishable from a request lost in
        // flight, which is what makes retrying a write safe.
        let limit = self.timeouts.connect.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(limit, member.endpoint.connect()).await {
            Ok(Ok(channel)) => {
                let generation = member.generation.fetch_add(1, Ordering::Relaxed) + 1;
                *member.channel.lock() = Some((generation, channel.clone()));
                tracing::debug!(member = %member.addr, "connected");
                Ok((generation, channel))
            }
            Ok(Err(e)) => Err(format!("cannot connect to {}: {}", member.addr, chain(&e))),
            Err(_) => Err(format!(
                "cannot connect to {}: no answer within {limit:?}",
                member.addr
            )),
        }
    }

    /// Forgets the member's connection if it is still the one that failed.
    pub(crate) fn drop_channel(&self, idx: usize, generation: u64) {
        let mut slot = self.members[idx].channel.lock();
        if matches!(&*slot, Some((g, _)) if *g == generation) {
            *slot = None;
        }
    }

    /// Moves `current` away from `from`: to the hinted member when the hint
    /// names one of ours, else to the next. Only if `current` is still `from`,
    /// so concurrent failures on one member advance it once, not once each.
    fn move_on(&self, from: usize, hint: Option<&str>) {
        let n = self.members.len();
        let hinted = hint.and_then(|h| {
            let h = h.strip_prefix("http://").unwrap_or(h);
            self.members.iter().position(|m| m.addr == h)
        });
        let to = match hinted {
            Some(i) if i != from => i,
            _ => (from + 1) % n,
        };
        if self.current.compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            && to != from
        {
            tracing::debug!(from = %self.members[from].addr, to = %self.members[to].addr, "failover");
        }
    }

    /// Sends `req` with the failover rules of the module doc. `rpc` performs
    /// one attempt on a channel.
    pub(crate) async fn call<Req, Resp, F, Fut>(
        &self,
        kind: Kind,
        mut req: Req,
        rpc: F,
    ) -> Result<Resp, Error>
    where
        Req: Outgoing + Clone,
        Resp: Incoming,
        F: Fn(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let n = self.members.len();
        if n == 0 {
            return Err(Error::NoEndpoints);
        }
        let deadline = Instant::now() + self.timeouts.request;
        let mut attempts = 0usize;
        loop {
            attempts += 1;
            let idx = self.current.load(Ordering::Acquire) % n;
            let failure = match self.channel(idx, deadline).await {
                Err(why) => {
                    tracing::debug!(%why, "member unreachable");
                    self.move_on(idx, None);
                    Failure::Transport(why)
                }
                Ok((generation, channel)) => {
                    req.set_min_zxid(self.last_zxid());
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let mut request = tonic::Request::new(req.clone());
                    // Lets the member stop working on a request nobody waits for.
                    request.set_timeout(remaining);
                    match tokio::time::timeout(remaining, rpc(channel, request)).await {
                        Ok(Ok(reply)) => {
                            let reply = reply.into_inner();
                            if let Some(zxid) = reply.zxid() {
                                self.observe(zxid);
                            }
                            return Ok(reply);
                        }
                        Ok(Err(status)) => {
                            let failure = Failure::from_status(&status);
                            match verdict(kind, &failure) {
                                Verdict::Fail => return Err(failure.into_error()),
                                Verdict::FailAndMoveOn { drop_channel, hint } => {
                                    if drop_channel {
                                        self.drop_channel(idx, generation);
                                    }
                                    self.move_on(idx, hint.as_deref());
                                    return Err(failure.into_error());
                                }
                                Verdict::Retry { drop_channel, hint } => {
                                    if drop_channel {
                                        self.drop_channel(idx, generation);
                                    }
                                    self.move_on(idx, hint.as_deref());
                                    failure
                                }
                            }
                        }
                        Err(_elapsed) => {
                            // A member that doesn't answer within the whole
                            // budget is likely cut off; the next request
                            // should start elsewhere, on a fresh connection.
                            self.drop_channel(idx, generation);
                            self.move_on(idx, None);
                            return Err(Error::Timeout);
                        }
                    }
                }
            };
            tracing::debug!(attempt = attempts, ?failure, "retrying elsewhere");
            if attempts % n == 0 {
                let round = attempts / n;
                if round >= MAX_ROUNDS {
                    return Err(failure.into_error());
                }
                let backoff = BACKOFF_START
                    .saturating_mul(1u32 << (round - 1).min(16))
                    .min(BACKOFF_MAX);
                tokio::time::sleep(backoff).await;
            }
            if Instant::now() >= deadline {
                // Out of time after failures that were all retryable: for a
                // write, every one of them proved it never arrived, so report
                // the last failure rather than an ambiguous timeout.
                return Err(failure.into_error());
            }
        }
    }
}

impl Pool {
    /// Sends a request of a session to the member its stream is attached to
    /// (rule 1 in `session.rs`), and returns the reply with the stream
    /// generation it was sent under. Unlike [`Pool::call`] this does not move
    /// between members itself, nor note the reply's zxid: the session task
    /// moves the stream, and the caller notes the zxid once the reply passed
    /// the event gate.
    ///
    /// Retries follow [`verdict`], except that "try another member" becomes
    /// "wait for the session to re-attach (or a backoff) and try again": the
    /// stream's member is the only one that can serve the session. SessionMoved
    /// (the member no longer has our stream) is retried that way too; it
    /// proves the request was not served.
    pub(crate) async fn call_pinned<Req, Resp, F, Fut>(
        &self,
        kind: Kind,
        mut req: Req,
        rpc: F,
        session: &SessionCore,
        deadline: Instant,
    ) -> Result<(Resp, u64), Error>
    where
        Req: Outgoing + Clone,
        F: Fn(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        // What the caller hears when time runs out after retryable failures:
        // the last of them (a SessionMoved was a reconnect in progress).
        let give_up = |failure: Option<Failure>| match failure {
            None => Error::Timeout,
            Some(Failure::Zk { code: ErrorCode::SessionMoved, message, .. }) => Error::ConnectionLoss(message),
            Some(other) => other.into_error(),
        };
        let mut backoff = BACKOFF_START;
        let mut last = None;
        loop {
            let link = session.wait_connected(deadline).await?;
            if Instant::now() >= deadline {
                // Out of time: a connect attempt now would fail for that
                // reason alone and wrongly blame the member.
                return Err(give_up(last));
            }
            let idx = link.member_idx % self.members.len().max(1);
            let failure = match self.channel(idx, deadline).await {
                // Never sent: safe to try again, writes included. The member
                // can't be reached, so the session must move elsewhere.
                Err(why) => {
                    session.abandon(link.gen);
                    Failure::Transport(why)
                }
                Ok((generation, channel)) => {
                    req.set_min_zxid(self.last_zxid());
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let mut request = tonic::Request::new(req.clone());
                    request.set_timeout(remaining);
                    match tokio::time::timeout(remaining, rpc(channel, request)).await {
                        Ok(Ok(reply)) => return Ok((reply.into_inner(), link.gen)),
                        Ok(Err(status)) => {
                            let failure = Failure::from_status(&status);
                            if matches!(failure, Failure::Transport(_)) && status.code() == tonic::Code::Unavailable {
                                session.abandon(link.gen);
                            }
                            if matches!(failure, Failure::Zk { code: ErrorCode::SessionMoved, .. }) {
                                failure
                            } else {
                                match verdict(kind, &failure) {
                                    Verdict::Fail => return Err(failure.into_error()),
                                    Verdict::FailAndMoveOn { drop_channel, .. } => {
                                        if drop_channel {
                                            self.drop_channel(idx, generation);
                                        }
                                        return Err(failure.into_error());
                                    }
                                    Verdict::Retry { drop_channel, .. } => {
                                        if drop_channel {
                                            self.drop_channel(idx, generation);
                                        }
                                        failure
                                    }
                                }
                            }
                        }
                        Err(_elapsed) => {
                            self.drop_channel(idx, generation);
                            return Err(Error::Timeout);
                        }
                    }
                }
            };
            tracing::debug!(?failure, member = %self.members[idx].addr, "session request: retrying after a re-attach");
            let now = Instant::now();
            if now >= deadline {
                return Err(give_up(Some(failure)));
            }
            last = Some(failure);
            session.wait_change(link.gen, (now + backoff).min(deadline)).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

/// An error with its sources, since tonic's transport error alone only says
/// "transport error".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::ErrorCode;

    fn zk(code: ErrorCode, hint: &str) -> Failure {
        Failure::Zk { code, message: String::new(), leader_hint: hint.into() }
    }

    #[test]
    fn definite_answers_are_final() {
        for kind in [Kind::Read, Kind::Write] {
            assert_eq!(verdict(kind, &zk(ErrorCode::NoNode, "")), Verdict::Fail);
            assert_eq!(verdict(kind, &zk(ErrorCode::BadVersion, "")), Verdict::Fail);
            assert_eq!(verdict(kind, &Failure::Unsupported("x".into())), Verdict::Fail);
        }
    }

    #[test]
    fn a_definite_refusal_with_a_hint_is_retried_there() {
        for kind in [Kind::Read, Kind::Write] {
            assert_eq!(
                verdict(kind, &zk(ErrorCode::NotReadOnly, "h2:7002")),
                Verdict::Retry { drop_channel: false, hint: Some("h2:7002".into()) }
            );
        }
    }

    #[test]
    fn ambiguous_failures_retry_reads_but_not_writes() {
        let transport = Failure::Transport("reset".into());
        assert_eq!(
            verdict(Kind::Read, &transport),
            Verdict::Retry { drop_channel: true, hint: None }
        );
        assert_eq!(
            verdict(Kind::Write, &transport),
            Verdict::FailAndMoveOn { drop_channel: true, hint: None }
        );
        let lost = zk(ErrorCode::ConnectionLoss, "h3:7003");
        assert_eq!(
            verdict(Kind::Read, &lost),
            Verdict::Retry { drop_channel: false, hint: Some("h3:7003".into()) }
        );
        assert_eq!(
            verdict(Kind::Write, &lost),
            Verdict::FailAndMoveOn { drop_channel: false, hint: Some("h3:7003".into()) }
        );
        assert!(matches!(
            verdict(Kind::Write, &zk(ErrorCode::RequestTimeout, "")),
            Verdict::FailAndMoveOn { .. }
        ));
    }

    fn pool(addrs: &[&str]) -> Pool {
        let members = addrs
            .iter()
            .map(|a| (a.to_string(), Endpoint::from_static("http://127.0.0.1:1")))
            .collect();
        Pool::new(
            members,
            Timeouts { request: Duration::from_secs(1), connect: Duration::from_millis(100) },
        )
    }

    #[test]
    fn failover_follows_hints_and_wraps_around() {
        let p = pool(&["a:1", "b:2", "c:3"]);
        p.move_on(0, None);
        assert_eq!(p.current_addr().as_deref(), Some("b:2"));
        // A second failure reported against the old member doesn't skip "b".
        p.move_on(0, None);
        assert_eq!(p.current_addr().as_deref(), Some("b:2"));
        p.move_on(1, Some("http://a:1"));
        assert_eq!(p.current_addr().as_deref(), Some("a:1"));
        p.move_on(0, Some("elsewhere:9"));
        assert_eq!(p.current_addr().as_deref(), Some("b:2"));
        p.move_on(1, Some("b:2"));
        assert_eq!(p.current_addr().as_deref(), Some("c:3"));
        p.move_on(2, None);
        assert_eq!(p.current_addr().as_deref(), Some("a:1"));
    }

    #[test]
    fn last_zxid_only_moves_forward() {
        let p = pool(&["a:1"]);
        p.observe(7);
        p.observe(3);
        assert_eq!(p.last_zxid(), 7);
    }

    #[test]
    fn min_zxid_is_set_in_the_header() {
        let mut req = pb::GetDataRequest {
            header: Some(pb::RequestHeader { session_id: 5, ..Default::default() }),
            path: "/a".into(),
            watch: false,
        };
        assert_eq!(req.session_id(), 5);
        req.set_min_zxid(42);
        assert_eq!(req.header.map(|h| h.min_zxid), Some(42));
        let resp = pb::GetDataResponse {
            header: Some(pb::ResponseHeader { zxid: 9, member_id: 1, event_seq: 4 }),
            ..Default::default()
        };
        assert_eq!(resp.zxid(), Some(9));
        assert_eq!(resp.header().map(|h| h.event_seq), Some(4));
        assert_eq!(pb::GetDataResponse::default().zxid(), None);
    }
}
