//! A session's life on the client: its stream to one member, pings, reconnects
//! and the state the application sees.
//!
//! ZooKeeper's client keeps one TCP connection per session, and everything
//! about the session rides on it: pings, watch events, the ordering of events
//! before replies. Here requests are unary gRPC calls, so the session gets its
//! own bidirectional `Session.Stream` to one member, and three rules tie the
//! two together:
//!
//! 1. **Pinning.** While a session is attached, every request of the session
//!    goes to the member its stream is attached to (watches live there: a watch
//!    read elsewhere fails with SessionMoved). While it is disconnected, requests
//!    wait for the reconnect, or fail with ConnectionLoss when their timeout
//!    runs out. See `Pool::call_pinned`.
//! 2. **Event before reply.** The member numbers its stream messages and stamps
//!    each reply with how many it had queued (`event_seq`); the client holds
//!    the reply until it has received that many, so a watch event always
//!    arrives before a reply reflecting a later state ([`gate`]). A reply the
//!    stream can't vouch for (the stream broke or re-attached meanwhile, or
//!    the member has no stream of the session) is a read done again on the
//!    new stream, or a write held until a read on the new stream at or after
//!    its zxid is through the gate (`Client::submit`).
//! 3. **Reconnects carry the watches.** After the stream breaks, the task
//!    re-attaches to the next member (rotating, with backoff after each full
//!    round), sending its last seen zxid and every registered watch; the member
//!    catches up to that zxid first and fires what was missed.
//!
//! One task per session ([`run`]) owns the stream. It publishes two views of
//! the session: a [`Link`] on a `tokio::sync::watch` channel for requests (which
//! member, which stream generation, how many messages received), and the
//! public [`SessionState`] through a [`StateHub`], which queues every transition
//! for every subscriber so that a slow consumer never misses Disconnected or
//! Expired.
//!
//! Liveness is the server's call, as in ZooKeeper: the client pings every third
//! of the negotiated timeout, treats two thirds of it without any message as a
//! dead member (and moves on), but never declares the session expired on its
//! own; only a member's answer (the stream's `SESSION_STATE_EXPIRED`, or a
//! SessionExpired status on re-attach) does.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use corral_proto::v1 as pb;
use corral_proto::v1::session_client::SessionClient;
use corral_proto::ErrorCode;
use futures::Stream;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::connection::{Pool, MAX_MESSAGE_BYTES};
use crate::error::{Error, Failure};
use crate::types::{SessionInfo, SessionState};
use crate::watch::Registry;

/// Backoff before the second round of re-attach attempts; doubles each round.
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Why a session is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Expired,
    AuthFailed,
    Closed,
    /// Every `Client` handle was dropped: the task stops and the session is
    /// left to expire on the server.
    Dropped,
}

impl End {
    /// What requests and watches of an ended session fail with. A closed
    /// session reports SessionExpired, as ZooKeeper's client does.
    pub(crate) fn error(self, session_id: i64) -> Error {
        match self {
            End::Expired => Error::Zk {
                code: ErrorCode::SessionExpired,
                message: format!("session {session_id:#x} expired"),
            },
            End::AuthFailed => Error::Zk {
                code: ErrorCode::AuthFailed,
                message: format!("a member refused the password of session {session_id:#x}"),
            },
            End::Closed => Error::Zk {
                code: ErrorCode::SessionExpired,
                message: format!("session {session_id:#x} was closed"),
            },
            End::Dropped => Error::ConnectionLoss("the client was dropped".into()),
        }
    }

    fn state(self) -> Option<SessionState> {
        match self {
            End::Expired => Some(SessionState::Expired),
            End::AuthFailed => Some(SessionState::AuthFailed),
            End::Closed => Some(SessionState::Closed),
            End::Dropped => None,
        }
    }
}

/// Where the session's stream is, as requests need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The first attach is under way.
    Connecting,
    Connected,
    /// The stream broke; re-attaching.
    Disconnected,
    Ended(End),
}

/// The request-facing view of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) phase: Phase,
    /// Bumped on every successful attach: which stream a count belongs to.
    pub(crate) gen: u64,
    /// The pool index of the member the stream is (or was last) attached to.
    pub(crate) member_idx: usize,
    /// That member's id, as its `Attached` said.
    pub(crate) member_id: u64,
    /// Messages received on the current stream (Attached is 1).
    pub(crate) received: u64,
}

/// Rule 2 of the module doc, as a pure decision: may a reply from
/// `member_id`, stamped `event_seq`, that was sent while stream `sent_gen` was
/// current, be delivered now?
///
/// A count of 0 means the member has no stream of the session (it counts the
/// `Attached` it sends first): the stream is gone there, whether or not this
/// side has noticed yet, and what it still owed is lost with it. Such a reply
/// waits for the re-attach like one that arrives while the stream is broken.
pub(crate) fn gate(link: &Link, member_id: u64, event_seq: u64, sent_gen: u64) -> bool {
    if member_id == 0 {
        return true;
    }
    match link.phase {
        // Watches have failed; there is nothing left to order against.
        Phase::Ended(_) => true,
        // Stream broken: wait for the re-attach, which fires what was missed.
        Phase::Connecting | Phase::Disconnected => false,
        // Sent before the re-attach: the caller reads again on the new stream,
        // or (a write) waits for a read there (`Client::submit`).
        Phase::Connected if link.gen != sent_gen => true,
        Phase::Connected if link.member_id != member_id => true,
        Phase::Connected => event_seq != 0 && link.received >= event_seq,
    }
}

/// What happens to a session, for [`transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Happening {
    /// `start_session` created a session and starts attaching it.
    Started,
    /// A stream delivered `Attached`.
    Attached,
    /// The stream broke (or could not be opened).
    StreamLost,
    Ended(End),
    /// `close_session` on a session that had already ended.
    Cleared,
}

/// The public state machine: where `from` goes on `what`.
pub(crate) fn transition(from: SessionState, what: Happening) -> SessionState {
    use SessionState as S;
    match what {
        Happening::Started => S::Connecting,
        Happening::Cleared => S::Closed,
        _ if from.is_terminal() || from == S::NoSession => from,
        Happening::Attached => S::Connected,
        Happening::StreamLost => match from {
            S::Connecting => S::Connecting,
            _ => S::Disconnected,
        },
        Happening::Ended(end) => end.state().unwrap_or(from),
    }
}

/// The client's current [`SessionState`] and its subscribers. One per client,
/// across sessions.
pub(crate) struct StateHub {
    inner: Mutex<HubInner>,
}

struct HubInner {
    current: SessionState,
    subscribers: Vec<mpsc::UnboundedSender<SessionState>>,
}

impl StateHub {
    pub(crate) fn new() -> StateHub {
        StateHub { inner: Mutex::new(HubInner { current: SessionState::NoSession, subscribers: Vec::new() }) }
    }

    pub(crate) fn current(&self) -> SessionState {
        self.inner.lock().current
    }

    /// A stream of the current state, then every later one.
    pub(crate) fn subscribe(&self) -> SessionStates {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.inner.lock();
        let _ = tx.send(inner.current);
        inner.subscribers.push(tx);
        SessionStates { rx }
    }

    /// Applies `what`; subscribers hear the new state if it differs.
    pub(crate) fn apply(&self, what: Happening) -> SessionState {
        let mut inner = self.inner.lock();
        let next = transition(inner.current, what);
        if next != inner.current {
            inner.current = next;
            tracing::debug!(state = %next, "session state");
            inner.subscribers.retain(|s| s.send(next).is_ok());
        }
        next
    }
}

/// Every [`SessionState`] the client goes through, starting with the current
/// one (`Client::session_states`). Transitions queue up while nobody polls, so
/// none is lost to a slow consumer; consecutive duplicates are never sent.
/// The stream ends when every `Client` handle is gone.
#[must_use = "a SessionStates stream does nothing unless polled"]
#[derive(Debug)]
pub struct SessionStates {
    rx: mpsc::UnboundedReceiver<SessionState>,
}

impl SessionStates {
    /// The next state, or `None` once the client is dropped.
    pub async fn next_state(&mut self) -> Option<SessionState> {
        self.rx.recv().await
    }
}

impl Stream for SessionStates {
    type Item = SessionState;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SessionState>> {
        self.rx.poll_recv(cx)
    }
}

/// One session: its credentials, its link, its watches.
pub(crate) struct SessionCore {
    pub(crate) info: SessionInfo,
    link: watch::Sender<Link>,
    pub(crate) watches: Arc<Mutex<Registry>>,
    hub: Arc<StateHub>,
    stop: watch::Sender<bool>,
    /// The highest stream generation requests found unreachable: the task
    /// gives that stream up even if it still looks alive.
    abandon: watch::Sender<u64>,
    pings_paused: AtomicBool,
    /// The client's credentials, shared with it: an attach presents them, so the member sends
    /// the session only events about nodes they may read (as ZooKeeper, per connection).
    auth: Arc<RwLock<Vec<pb::AuthInfo>>>,
}

impl std::fmt::Debug for SessionCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("info", &self.info)
            .field("link", &*self.link.borrow())
            .field("watchers", &self.watches.lock().counts())
            .finish()
    }
}

impl SessionCore {
    /// A session about to attach for the first time (the hub says Connecting).
    pub(crate) fn new(
        info: SessionInfo,
        hub: Arc<StateHub>,
        first: usize,
        auth: Arc<RwLock<Vec<pb::AuthInfo>>>,
    ) -> Arc<SessionCore> {
        hub.apply(Happening::Started);
        let link = Link { phase: Phase::Connecting, gen: 0, member_idx: first, member_id: 0, received: 0 };
        Arc::new(SessionCore {
            info,
            link: watch::Sender::new(link),
            watches: Arc::new(Mutex::new(Registry::default())),
            hub,
            stop: watch::Sender::new(false),
            abandon: watch::Sender::new(0),
            pings_paused: AtomicBool::new(false),
            auth,
        })
    }

    pub(crate) fn link(&self) -> Link {
        *self.link.borrow()
    }

    /// Whether the session's stream re-attached since generation `gen` (and
    /// the session is not over).
    pub(crate) fn moved_since(&self, gen: u64) -> bool {
        let link = self.link();
        link.gen != gen && !matches!(link.phase, Phase::Ended(_))
    }

    pub(crate) fn end_of(&self) -> Option<End> {
        match self.link().phase {
            Phase::Ended(end) => Some(end),
            _ => None,
        }
    }

    /// Waits until the stream is attached; fails at once if the session is
    /// over, and with ConnectionLoss if `deadline` passes first.
    pub(crate) async fn wait_connected(&self, deadline: Instant) -> Result<Link, Error> {
        let mut rx = self.link.subscribe();
        let waited = timeout_at(
            deadline,
            rx.wait_for(|l| matches!(l.phase, Phase::Connected | Phase::Ended(_))),
        )
        .await;
        match waited {
            Ok(Ok(link)) => match link.phase {
                Phase::Ended(end) => Err(end.error(self.info.id)),
                _ => Ok(*link),
            },
            Ok(Err(_)) => Err(End::Dropped.error(self.info.id)),
            Err(_) => Err(Error::ConnectionLoss(format!(
                "session {:#x} is disconnected: no member took its stream within the request timeout",
                self.info.id
            ))),
        }
    }

    /// Waits until the stream generation moves past `gen` (a re-attach), the
    /// session ends, or `until`.
    pub(crate) async fn wait_change(&self, gen: u64, until: Instant) {
        let mut rx = self.link.subscribe();
        let _ = timeout_at(
            until,
            rx.wait_for(|l| l.gen != gen || matches!(l.phase, Phase::Ended(_))),
        )
        .await;
    }

    /// Holds a reply until [`gate`] lets it through (rule 2 of the module doc).
    pub(crate) async fn gate(
        &self,
        member_id: u64,
        event_seq: u64,
        sent_gen: u64,
        deadline: Instant,
    ) -> Result<(), Error> {
        let mut rx = self.link.subscribe();
        let waited =
            timeout_at(deadline, rx.wait_for(|l| gate(l, member_id, event_seq, sent_gen))).await;
        match waited {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::ConnectionLoss(format!(
                "the watch events member {member_id} sent before this reply did not arrive within the request timeout"
            ))),
        }
    }

    pub(crate) fn attached(&self, member_idx: usize, member_id: u64) {
        // The public state first: whoever a Connected link releases (say,
        // `start_session`) must find the state Connected already.
        self.hub.apply(Happening::Attached);
        self.link.send_modify(|l| {
            if !matches!(l.phase, Phase::Ended(_)) {
                l.phase = Phase::Connected;
                l.gen += 1;
                l.member_idx = member_idx;
                l.member_id = member_id;
                l.received = 1;
            }
        });
    }

    fn received_one(&self) {
        self.link.send_modify(|l| l.received += 1);
    }

    fn lost(&self) {
        self.link.send_modify(|l| {
            if l.phase == Phase::Connected {
                l.phase = Phase::Disconnected;
            }
        });
        self.hub.apply(Happening::StreamLost);
    }

    /// The session is over: requests and watches fail from now on, the task
    /// stops, and the application hears the final state. Only the first call
    /// counts.
    pub(crate) fn end(&self, end: End) {
        let mut first = false;
        self.link.send_if_modified(|l| {
            if matches!(l.phase, Phase::Ended(_)) {
                return false;
            }
            l.phase = Phase::Ended(end);
            first = true;
            true
        });
        if !first {
            return;
        }
        self.watches.lock().end(end.error(self.info.id));
        self.stop.send_replace(true);
        self.hub.apply(Happening::Ended(end));
    }

    /// Requests cannot reach the member of stream `gen` (no connection can be
    /// opened, or it answers Unavailable), so the session must move even if
    /// its stream still gets answers: a member on its way down may keep an
    /// open stream going for a while after it stopped serving anything else.
    pub(crate) fn abandon(&self, gen: u64) {
        self.abandon.send_if_modified(|g| {
            let newer = gen > *g;
            if newer {
                *g = gen;
            }
            newer
        });
    }

    /// The highest stream generation given up by requests (tests).
    #[cfg(test)]
    pub(crate) fn abandoned(&self) -> u64 {
        *self.abandon.borrow()
    }

    /// Test-only: stop (or resume) pinging, so the server expires the session.
    pub(crate) fn pause_pings(&self, paused: bool) {
        self.pings_paused.store(paused, Ordering::Relaxed);
    }

    fn pings_paused(&self) -> bool {
        self.pings_paused.load(Ordering::Relaxed)
    }
}

/// Why an attach attempt failed.
#[derive(Debug)]
enum AttachError {
    /// The member says the session is over.
    Ended(End),
    /// Try another member.
    Retry(String),
}

/// Why a live stream stopped.
#[derive(Debug)]
enum Lost {
    Ended(End),
    Broken(String),
}

fn classify(status: &tonic::Status) -> AttachError {
    match Failure::from_status(status) {
        Failure::Zk { code: ErrorCode::SessionExpired, .. } => AttachError::Ended(End::Expired),
        Failure::Zk { code: ErrorCode::AuthFailed, .. } => AttachError::Ended(End::AuthFailed),
        Failure::Zk { code, message, .. } => AttachError::Retry(format!("{code}: {message}")),
        Failure::Transport(m) | Failure::Unsupported(m) => AttachError::Retry(m),
    }
}

/// An attached stream.
struct Live {
    tx: futures::channel::mpsc::UnboundedSender<pb::SessionClientMessage>,
    inbound: tonic::Streaming<pb::SessionServerMessage>,
    attached: pb::Attached,
    channel_gen: u64,
}

fn client_msg(msg: pb::session_client_message::Msg) -> pb::SessionClientMessage {
    pb::SessionClientMessage { msg: Some(msg) }
}

/// The session's task: attach, pump, re-attach, until the session ends or the
/// client stops it.
pub(crate) async fn run(core: Arc<SessionCore>, pool: Arc<Pool>, first: usize) {
    let n = pool.len().max(1);
    let mut idx = first % n;
    let mut misses = 0usize;
    let mut backoff = BACKOFF_START;
    let mut stop = core.stop.subscribe();
    loop {
        let attempt = tokio::select! {
            biased;
            r = attach(&core, &pool, idx) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match attempt {
            Ok(live) => {
                misses = 0;
                backoff = BACKOFF_START;
                let channel_gen = live.channel_gen;
                let lost = tokio::select! {
                    biased;
                    lost = pump(&core, &pool, idx, live) => lost,
                    _ = stop.wait_for(|s| *s) => return,
                };
                match lost {
                    Lost::Ended(end) => {
                        core.end(end);
                        return;
                    }
                    Lost::Broken(why) => {
                        tracing::debug!(session = format_args!("{:#x}", core.info.id), %why, "session stream lost");
                        core.lost();
                        pool.drop_channel(idx, channel_gen);
                        idx = (idx + 1) % n;
                    }
                }
            }
            Err(AttachError::Ended(end)) => {
                core.end(end);
                return;
            }
            Err(AttachError::Retry(why)) => {
                tracing::debug!(session = format_args!("{:#x}", core.info.id), member = idx, %why, "attach failed");
                core.lost();
                misses += 1;
                idx = (idx + 1) % n;
                if misses % n == 0 {
                    tokio::select! {
                        biased;
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// How long one attach attempt may take: enough for a member to catch up with
/// the client's zxid, not so long that a cut-off member holds the session.
fn attach_timeout(pool: &Pool, timeout_ms: i32) -> Duration {
    let session = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0) * 2 / 3);
    pool.connect_timeout().max(session)
}

async fn attach(core: &SessionCore, pool: &Pool, idx: usize) -> Result<Live, AttachError> {
    let deadline = Instant::now() + attach_timeout(pool, core.info.timeout_ms);
    let (channel_gen, channel) = pool.channel(idx, deadline).await.map_err(AttachError::Retry)?;
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let attach = {
        // The lists and the zxid are taken together, under the registry lock:
        // the member fires every listed watch whose node changed after
        // `last_zxid`, which covers the events the broken stream still owed.
        let mut watches = core.watches.lock();
        let lists = watches.lists();
        pb::Attach {
            session_id: core.info.id,
            password: core.info.password.clone().into(),
            last_zxid: pool.last_zxid(),
            data_watches: lists.data,
            exist_watches: lists.exist,
            child_watches: lists.child,
            persistent_watches: lists.persistent,
            persistent_recursive_watches: lists.persistent_recursive,
            auth: core.auth.read().clone(),
        }
    };
    let _ = tx.unbounded_send(client_msg(pb::session_client_message::Msg::Attach(attach)));
    let mut client = SessionClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let broken = |why: String| {
        pool.drop_channel(idx, channel_gen);
        AttachError::Retry(why)
    };
    let response = match timeout_at(deadline, client.stream(rx)).await {
        Err(_) => return Err(broken("no answer to Attach".into())),
        Ok(Err(status)) => {
            if matches!(Failure::from_status(&status), Failure::Transport(_)) {
                pool.drop_channel(idx, channel_gen);
            }
            return Err(classify(&status));
        }
        Ok(Ok(r)) => r,
    };
    let mut inbound = response.into_inner();
    use pb::session_server_message::Msg;
    match timeout_at(deadline, inbound.message()).await {
        Err(_) => Err(broken("no Attached in time".into())),
        Ok(Err(status)) => Err(classify(&status)),
        Ok(Ok(None)) => Err(AttachError::Retry("the stream ended before Attached".into())),
        Ok(Ok(Some(pb::SessionServerMessage { msg: Some(Msg::Attached(attached)) }))) => {
            Ok(Live { tx, inbound, attached, channel_gen })
        }
        Ok(Ok(Some(pb::SessionServerMessage { msg: Some(Msg::State(s)) }))) => match end_of_state(s) {
            Some(end) => Err(AttachError::Ended(end)),
            None => Err(AttachError::Retry(format!("unexpected state {s} before Attached"))),
        },
        Ok(Ok(Some(other))) => Err(AttachError::Retry(format!("expected Attached first, got {other:?}"))),
    }
}

fn end_of_state(state: i32) -> Option<End> {
    match pb::SessionState::try_from(state) {
        Ok(pb::SessionState::Expired) => Some(End::Expired),
        Ok(pb::SessionState::Closed) => Some(End::Closed),
        Ok(pb::SessionState::AuthFailed) => Some(End::AuthFailed),
        Ok(pb::SessionState::SyncConnected) | Err(_) => None,
    }
}

/// Runs an attached stream: pings out, messages in, until it breaks or the
/// session ends.
async fn pump(core: &SessionCore, pool: &Pool, idx: usize, live: Live) -> Lost {
    let Live { tx, mut inbound, attached, .. } = live;
    let timeout_ms = if attached.timeout_ms > 0 { attached.timeout_ms } else { core.info.timeout_ms };
    let timeout =
        Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0)).max(Duration::from_millis(30));
    let ping_every = timeout / 3;
    let read_timeout = timeout * 2 / 3;
    pool.observe(attached.zxid);
    pool.set_current(idx);
    // Before any event of this stream is routed: what it fires on reconnect is
    // no newer than this.
    core.watches.lock().attached(attached.zxid);
    core.attached(idx, attached.member_id);
    let gen = core.link().gen;
    let mut abandon = core.abandon.subscribe();
    tracing::debug!(
        session = format_args!("{:#x}", core.info.id),
        member = attached.member_id,
        zxid = attached.zxid,
        "session attached"
    );
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        let silent_until = last_heard + read_timeout;
        let paused = core.pings_paused();
        tokio::select! {
            biased;
            _ = ping.tick() => {
                if !core.pings_paused()
                    && tx.unbounded_send(client_msg(pb::session_client_message::Msg::Ping(pb::Ping {}))).is_err()
                {
                    return Lost::Broken("the outgoing stream closed".into());
                }
            }
            msg = inbound.message() => match msg {
                Ok(Some(msg)) => {
                    last_heard = Instant::now();
                    if let Some(end) = handle(core, pool, msg) {
                        return Lost::Ended(end);
                    }
                }
                Ok(None) => return Lost::Broken("the member ended the stream".into()),
                Err(status) => {
                    return match classify(&status) {
                        AttachError::Ended(end) => Lost::Ended(end),
                        AttachError::Retry(why) => Lost::Broken(why),
                    }
                }
            },
            _ = abandon.wait_for(|g| *g >= gen) => {
                return Lost::Broken("requests cannot reach the member".into());
            }
            // While pings are paused (tests) silence is expected, and moving
            // to another member would keep the session alive.
            () = tokio::time::sleep_until(silent_until), if !paused => {
                return Lost::Broken(format!("nothing heard for {read_timeout:?}"));
            }
        }
    }
}

/// One stream message. The event is routed *before* the count moves, so a
/// reply released by the count finds its event already delivered.
fn handle(core: &SessionCore, pool: &Pool, msg: pb::SessionServerMessage) -> Option<End> {
    use pb::session_server_message::Msg;
    let mut end = None;
    match msg.msg {
        Some(Msg::Attached(a)) => pool.observe(a.zxid),
        Some(Msg::Event(e)) => {
            if e.zxid > 0 {
                pool.observe(e.zxid);
            }
            match crate::convert::watch_event(e) {
                Some((event, watcher, watch_path)) => core.watches.lock().route(&event, watcher, &watch_path),
                None => tracing::debug!("ignoring a watch event of unknown type"),
            }
        }
        Some(Msg::State(s)) => end = end_of_state(s),
        Some(Msg::Pong(_)) | None => {}
    }
    core.received_one();
    end
}

/// `tokio::time::timeout_at`, which madsim's time module lacks: the same over `timeout`.
async fn timeout_at<F: std::future::Future>(
    deadline: tokio::time::Instant,
    future: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), future).await
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn link(phase: Phase, gen: u64, member_id: u64, received: u64) -> Link {
        Link { phase, gen, member_idx: 0, member_id, received }
    }

    #[test]
    fn replies_wait_for_the_messages_queued_before_them() {
        let l = link(Phase::Connected, 3, 2, 5);
        assert!(gate(&l, 2, 5, 3), "everything it names has arrived");
        assert!(!gate(&l, 2, 6, 3), "one message still owed");
        assert!(!gate(&l, 2, 0, 3), "the member has no stream of the session: it broke there");
        assert!(gate(&l, 1, 9, 3), "another member's count says nothing about this stream");
        assert!(gate(&l, 0, 9, 3), "a reply without a member id");
        assert!(gate(&l, 2, 9, 2), "sent on an earlier stream: the re-attach fired what was missed");
        assert!(!gate(&link(Phase::Disconnected, 3, 2, 5), 2, 6, 3), "wait for the re-attach");
        assert!(!gate(&link(Phase::Connecting, 0, 0, 0), 2, 1, 0));
        assert!(gate(&link(Phase::Ended(End::Expired), 3, 2, 1), 2, 6, 3));
    }

    #[test]
    fn the_state_machine() {
        use Happening as H;
        use SessionState as S;
        let walk = |steps: &[H]| {
            steps.iter().fold(vec![S::NoSession], |mut v, h| {
                v.push(transition(*v.last().unwrap(), *h));
                v
            })
        };
        assert_eq!(
            walk(&[
                H::Started,
                H::StreamLost,
                H::Attached,
                H::StreamLost,
                H::StreamLost,
                H::Attached,
                H::Ended(End::Closed)
            ]),
            vec![
                S::NoSession,
                S::Connecting,
                S::Connecting,
                S::Connected,
                S::Disconnected,
                S::Disconnected,
                S::Connected,
                S::Closed
            ]
        );
        // Terminal states stay until cleared; a new session starts over.
        assert_eq!(
            walk(&[
                H::Started,
                H::Attached,
                H::Ended(End::Expired),
                H::Attached,
                H::StreamLost,
                H::Ended(End::Closed),
                H::Cleared,
                H::Started
            ]),
            vec![
                S::NoSession,
                S::Connecting,
                S::Connected,
                S::Expired,
                S::Expired,
                S::Expired,
                S::Expired,
                S::Closed,
                S::Connecting
            ]
        );
        assert_eq!(transition(S::Disconnected, H::Ended(End::AuthFailed)), S::AuthFailed);
        assert_eq!(transition(S::Connected, H::Ended(End::Dropped)), S::Connected);
        // Nothing but a start moves a client without a session.
        assert_eq!(transition(S::NoSession, H::Attached), S::NoSession);
    }

    #[tokio::test]
    async fn subscribers_get_every_transition_however_slow() {
        let hub = StateHub::new();
        let mut early = hub.subscribe();
        hub.apply(Happening::Started);
        hub.apply(Happening::Attached);
        hub.apply(Happening::Attached);
        let mut late = hub.subscribe();
        hub.apply(Happening::StreamLost);
        hub.apply(Happening::Attached);
        hub.apply(Happening::Ended(End::Expired));
        assert_eq!(hub.current(), SessionState::Expired);
        drop(hub);
        let early: Vec<_> = (&mut early).collect().await;
        assert_eq!(
            early,
            vec![
                SessionState::NoSession,
                SessionState::Connecting,
                SessionState::Connected,
                SessionState::Disconnected,
                SessionState::Connected,
                SessionState::Expired
            ]
        );
        let late: Vec<_> = (&mut late).collect().await;
        assert_eq!(
            late,
            vec![
                SessionState::Connected,
                SessionState::Disconnected,
                SessionState::Connected,
                SessionState::Expired
            ]
        );
    }

    fn core() -> Arc<SessionCore> {
        let info = SessionInfo { id: 0x42, password: vec![1], timeout_ms: 3000 };
        SessionCore::new(info, Arc::new(StateHub::new()), 0, Default::default())
    }

    #[tokio::test]
    async fn the_end_fails_waiting_requests_and_watches_once() {
        let c = core();
        let (_t, w) = c.watches.lock().watch("/a", crate::watch::OneShot::Data).unwrap();
        let waiting = {
            let c = c.clone();
            tokio::spawn(async move { c.wait_connected(Instant::now() + Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        c.end(End::Expired);
        c.end(End::Closed);
        let err = waiting.await.unwrap().unwrap_err();
        assert_eq!(err.code(), ErrorCode::SessionExpired);
        assert_eq!(w.await.unwrap_err().code(), ErrorCode::SessionExpired);
        assert_eq!(c.end_of(), Some(End::Expired), "the first end wins");
        assert_eq!(c.hub.current(), SessionState::Expired);
        assert!(*c.stop.borrow());
    }

    #[tokio::test]
    async fn requests_wait_for_the_attach_or_their_deadline() {
        let c = core();
        let err = c.wait_connected(Instant::now() + Duration::from_millis(20)).await.unwrap_err();
        assert!(matches!(err, Error::ConnectionLoss(_)), "{err:?}");
        c.attached(1, 7);
        let l = c.wait_connected(Instant::now()).await.unwrap();
        assert_eq!((l.phase, l.gen, l.member_idx, l.member_id, l.received), (Phase::Connected, 1, 1, 7, 1));
        assert_eq!(c.hub.current(), SessionState::Connected);

        // A reply naming message 3 is released by the third message.
        let gated = {
            let c = c.clone();
            tokio::spawn(async move { c.gate(7, 3, 1, Instant::now() + Duration::from_secs(30)).await })
        };
        c.received_one();
        tokio::task::yield_now().await;
        assert!(!gated.is_finished());
        c.received_one();
        gated.await.unwrap().unwrap();
        // And a reply whose messages never come fails when its time is up.
        let err = c.gate(7, 10, 1, Instant::now() + Duration::from_millis(20)).await.unwrap_err();
        assert!(matches!(err, Error::ConnectionLoss(_)));

        c.lost();
        assert_eq!(c.hub.current(), SessionState::Disconnected);
        let wait = {
            let c = c.clone();
            tokio::spawn(async move { c.wait_change(1, Instant::now() + Duration::from_secs(30)).await })
        };
        c.attached(2, 8);
        wait.await.unwrap();
        assert_eq!(c.link().gen, 2);
    }
}
