//! Coordination recipes on top of [`Client`]: the things people run ZooKeeper
//! for, correct under session loss and member failure, with znode layouts that
//! kazoo (and, for the mutex, Curator) clients understand, so that a Rust
//! process and a Python one can contend for the same lock.
//!
//! | recipe | file | layout under `path` |
//! |---|---|---|
//! | [`Mutex`] | `mutex.rs` | `<guid>__lock__<seq>` ephemeral-sequential (kazoo `Lock`); `_c_<uuid>-lock-<seq>` with [`LockNaming::Curator`] |
//! | [`RwLock`] | `rwlock.rs` | `<guid>__rlock__<seq>` readers, `<guid>__lock__<seq>` writers (kazoo `ReadLock`/`WriteLock`) |
//! | [`Semaphore`] | `semaphore.rs` | `<guid>` ephemeral leases, `max_leases` as the node's data, a [`Mutex`] at `<path>-__lock__` (kazoo `Semaphore`) |
//! | [`Election`] | `election.rs` | a [`Mutex`] whose contenders' data is their value (kazoo `Election`) |
//! | [`Queue`] | `queue.rs` | `entries/entry-<priority>-<seq>`, claims `taken/<entry>` (kazoo `LockingQueue`), put markers `puts/<guid>` |
//! | [`Barrier`], [`DoubleBarrier`] | `barrier.rs` | the node itself; `<guid>` ephemerals and `ready` (kazoo) |
//!
//! Every recipe that holds something (a lock, a lease, leadership, a queue
//! claim) holds it as an ephemeral node of the client's session, and hands out
//! a guard with:
//!
//! - a **fencing token**: the node's `czxid`. Tokens grow with every grant, so
//!   a protected resource that remembers the highest token it has seen and
//!   refuses lower ones cannot be written by a holder that lost the lock
//!   without knowing it yet (a paused process, a partition);
//! - a [`Lost`] future that resolves when the hold is gone or can no longer be
//!   trusted ([`LostReason`]): the session expired or was closed, it has been
//!   disconnected for longer than the session timeout, or the node was deleted
//!   by someone else. `select!` on it around the protected work.
//!
//! Recipes need a session ([`Client::start_session`]) and use only the public
//! client API. Operations whose outcome a ConnectionLoss leaves unknown are
//! made safe to retry: sequential nodes embed a guid and are searched for
//! before a retry (Curator's protection mode), claims and lease nodes are
//! checked for our session as owner, and queue puts carry a marker node
//! created in the same transaction.
//!
//! See `docs/recipes.md` for each recipe's guarantees and failure behaviour.

mod barrier;
mod election;
mod mutex;
mod queue;
mod rwlock;
mod semaphore;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use parking_lot::Mutex as SyncMutex;
use tokio::sync::watch;
use tokio::time::Instant;

pub use barrier::{Barrier, DoubleBarrier};
pub use election::{Election, LeaderChanges, LeaderInfo, Leadership};
pub use mutex::{LockGuard, LockNaming, LockOptions, Mutex};
pub use queue::{Claim, Queue, DEFAULT_PRIORITY};
pub use rwlock::RwLock;
pub use semaphore::{Lease, Semaphore};

use crate::{Client, CreateMode, CreateOptions, Error, ErrorCode, EventType, Reply, SessionState, SessionStates};

/// Why a held lock, lease, leadership or claim is gone (or can no longer be
/// trusted). See [`Lost`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LostReason {
    /// The ensemble expired the session: its ephemeral nodes, this one
    /// included, are gone, and someone else may hold the lock already.
    SessionExpired,
    /// The session was closed ([`Client::close_session`]), replaced by another
    /// one, or a member refused its password.
    SessionClosed,
    /// The session has been disconnected for longer than its timeout: the
    /// ensemble has most likely expired it. If it turns out it had not, the
    /// node is deleted as soon as the session reconnects, so the hold is over
    /// either way (Curator's LOST after SUSPENDED).
    Suspended,
    /// The node was deleted by someone else (an operator, or a recipe
    /// of another client that does not follow the protocol).
    NodeDeleted,
    /// Every handle of the client was dropped.
    ClientDropped,
    /// This process released it (the guard was released or dropped): what a
    /// [`Lost`] future still pending then resolves to.
    Released,
}

impl LostReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LostReason::SessionExpired => "the session expired",
            LostReason::SessionClosed => "the session was closed",
            LostReason::Suspended => "the session was disconnected for longer than its timeout",
            LostReason::NodeDeleted => "the node was deleted by someone else",
            LostReason::ClientDropped => "the client was dropped",
            LostReason::Released => "it was released",
        }
    }
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resolves once a hold is lost, with the reason; `select!` on it around the
/// work the hold protects. Cheap: every guard's monitor runs anyway, and any
/// number of `Lost` futures may wait on it.
///
/// ```no_run
/// # async fn demo(mutex: corral_client::recipes::Mutex) -> Result<(), corral_client::Error> {
/// let guard = mutex.acquire().await?;
/// tokio::select! {
///     reason = guard.lost() => eprintln!("lost the lock ({reason}): stop writing"),
///     () = do_the_work(guard.fencing_token()) => {}
/// }
/// guard.release().await?;
/// # Ok(()) }
/// # async fn do_the_work(_token: i64) {}
/// ```
#[must_use = "a Lost future does nothing unless awaited"]
pub struct Lost {
    fut: BoxFuture<'static, LostReason>,
}

impl Future for Lost {
    type Output = LostReason;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LostReason> {
        self.fut.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lost")
    }
}

impl Lost {
    fn new(mut rx: watch::Receiver<Option<LostReason>>) -> Lost {
        let fut = async move {
            let seen = rx.wait_for(Option::is_some).await.map(|r| *r);
            match seen {
                Ok(Some(reason)) => reason,
                // The monitor stopped without a verdict: the hold was released.
                _ => LostReason::Released,
            }
        };
        Lost { fut: Box::pin(fut) }
    }
}

/// One ephemeral node this session holds (a lock node, a lease, a claim), and
/// the task that watches whether the hold is still good: the session's state
/// and the node itself. The task stops when this is dropped.
pub(crate) struct Held {
    pub(crate) client: Client,
    /// The node's full path.
    pub(crate) path: String,
    /// The node's czxid.
    pub(crate) token: i64,
    /// The session the node belongs to.
    session_id: i64,
    lost: Arc<watch::Sender<Option<LostReason>>>,
    /// The monitor, once started; `None` inside after it was stopped.
    monitor: SyncMutex<Monitor>,
}

enum Monitor {
    NotStarted,
    Running(tokio::task::JoinHandle<()>),
    Stopped,
}

impl Held {
    /// Starts watching `path` at once.
    pub(crate) fn start(client: &Client, path: String, token: i64) -> Held {
        let held = Held::lazy(client, path, token);
        held.ensure_monitor();
        held
    }

    /// Watches `path` from the first time someone asks whether it was lost
    /// (queue claims: many, short-lived, rarely asked).
    pub(crate) fn lazy(client: &Client, path: String, token: i64) -> Held {
        Held {
            client: client.clone(),
            path,
            token,
            session_id: client.session_id(),
            lost: Arc::new(watch::Sender::new(None)),
            monitor: SyncMutex::new(Monitor::NotStarted),
        }
    }

    fn ensure_monitor(&self) {
        let mut monitor = self.monitor.lock();
        if let Monitor::NotStarted = *monitor {
            let session = self.client.session().filter(|s| s.id == self.session_id);
            let timeout = Duration::from_millis(session.map_or(0, |s| u64::try_from(s.timeout_ms).unwrap_or(0)));
            let task = tokio::spawn(watch_hold(
                self.client.clone(),
                self.path.clone(),
                self.session_id,
                timeout,
                self.client.session_states(),
                self.lost.clone(),
            ));
            *monitor = Monitor::Running(task);
        }
    }

    pub(crate) fn lost(&self) -> Lost {
        self.ensure_monitor();
        Lost::new(self.lost.subscribe())
    }

    pub(crate) fn lost_reason(&self) -> Option<LostReason> {
        self.ensure_monitor();
        *self.lost.borrow()
    }

    /// Stops the monitor before the node is deleted on purpose, so that the
    /// deletion is not reported as a loss; from now on the hold counts as
    /// released.
    pub(crate) fn stop_monitor(&self) {
        if let Monitor::Running(task) = std::mem::replace(&mut *self.monitor.lock(), Monitor::Stopped) {
            task.abort();
        }
        self.lost.send_if_modified(|r| {
            let first = r.is_none();
            if first {
                *r = Some(LostReason::Released);
            }
            first
        });
    }

    /// Deletes the node (retrying while the outcome is unknown). A node that
    /// is already gone, with the session or otherwise, counts as deleted.
    pub(crate) async fn delete(&self) -> Result<(), Error> {
        self.stop_monitor();
        delete_if_exists(&self.client, &self.path, None).await
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Monitor::Running(task) = std::mem::replace(self.monitor.get_mut(), Monitor::Stopped) {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("path", &self.path)
            .field("token", &self.token)
            .field("lost", &*self.lost.borrow())
            .finish()
    }
}

async fn watch_hold(
    client: Client,
    path: String,
    session_id: i64,
    timeout: Duration,
    mut states: SessionStates,
    tx: Arc<watch::Sender<Option<LostReason>>>,
) {
    let reason = {
        let node = std::pin::pin!(watch_node(&client, &path));
        let session = std::pin::pin!(watch_session(&client, session_id, timeout, &mut states));
        match futures::future::select(node, session).await {
            futures::future::Either::Left((r, _)) | futures::future::Either::Right((r, _)) => r,
        }
    };
    tracing::debug!(%path, %reason, "hold lost");
    tx.send_if_modified(|r| {
        let first = r.is_none();
        if first {
            *r = Some(reason);
        }
        first
    });
    if reason == LostReason::Suspended {
        // We told the holder it lost the node; if the session comes back after
        // all, the node must not outlive that verdict.
        while let Some(state) = states.next().await {
            match state {
                SessionState::Connected if client.session_id() == session_id => {
                    let gone = delete_if_exists(&client, &path, None).await;
                    tracing::debug!(%path, ?gone, "deleted a node held through a suspension");
                    return;
                }
                s if s.is_terminal() => return,
                _ => {}
            }
        }
    }
}

/// Resolves when the node is deleted (or the session's watches fail).
async fn watch_node(client: &Client, path: &str) -> LostReason {
    let mut pause = Backoff::new();
    loop {
        match client.exists_watch(path).await {
            Ok((Some(_), watch)) => match watch.await {
                Ok(event) if event.kind == EventType::NodeDeleted => return LostReason::NodeDeleted,
                // Data changed (an election's proclaim): watch again.
                Ok(_) => {}
                Err(e) => return reason_of(&e),
            },
            Ok((None, _)) => return LostReason::NodeDeleted,
            Err(e) if !e.is_definite() => pause.wait().await,
            Err(e) => return reason_of(&e),
        }
    }
}

fn reason_of(e: &Error) -> LostReason {
    match e.code() {
        ErrorCode::SessionExpired => LostReason::SessionExpired,
        ErrorCode::ConnectionLoss => LostReason::ClientDropped,
        _ => LostReason::SessionClosed,
    }
}

/// Resolves when the session ends, is replaced, or stays disconnected for
/// longer than `timeout`.
async fn watch_session(client: &Client, session_id: i64, timeout: Duration, states: &mut SessionStates) -> LostReason {
    let mut disconnected_since: Option<Instant> = None;
    loop {
        let suspended = async {
            match disconnected_since {
                Some(t) => tokio::time::sleep_until(t + timeout).await,
                None => futures::future::pending().await,
            }
        };
        tokio::select! {
            state = states.next() => match state {
                None => return LostReason::ClientDropped,
                Some(SessionState::Connected) if client.session_id() == session_id => disconnected_since = None,
                Some(SessionState::Connected) => return LostReason::SessionClosed,
                Some(SessionState::Disconnected | SessionState::Connecting) => {
                    disconnected_since.get_or_insert_with(Instant::now);
                }
                Some(SessionState::Expired) => return LostReason::SessionExpired,
                Some(SessionState::Closed | SessionState::AuthFailed | SessionState::NoSession) => {
                    return LostReason::SessionClosed
                }
            },
            () = suspended => return LostReason::Suspended,
        }
    }
}

/// A request that may create the ephemeral node `node`, on its way. Dropped
/// before its reply was taken (the call was cancelled), it waits for the
/// reply in the background (dropping a reply does not withdraw its request)
/// and then deletes the node if our session owns it.
pub(crate) struct InFlight<T: Send + 'static> {
    client: Client,
    node: String,
    reply: Option<Reply<T>>,
    armed: bool,
}

impl<T: Send + 'static> InFlight<T> {
    pub(crate) fn new(client: &Client, node: String) -> InFlight<T> {
        InFlight { client: client.clone(), node, reply: None, armed: true }
    }

    pub(crate) async fn send(&mut self, reply: Reply<T>) -> Result<T, Error> {
        let result = self.reply.insert(reply).await;
        self.reply = None;
        result
    }

    /// The node is accounted for (or was never made).
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl<T: Send + 'static> Drop for InFlight<T> {
    fn drop(&mut self) {
        let pending = self.reply.take();
        if !self.armed || pending.is_none() {
            return;
        }
        let (client, node) = (self.client.clone(), self.node.clone());
        let session_id = client.session_id();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            drop(rt.spawn(async move {
                if let Some(reply) = pending {
                    let _ = reply.await;
                }
                if let Ok(Some(stat)) = retry(None, || client.exists(&node)).await {
                    if stat.ephemeral_owner == session_id {
                        let _ = delete_if_exists(&client, &node, Some(stat.version)).await;
                    }
                }
            }));
        }
    }
}

/// How long to wait between attempts whose outcome was unknown: 25 ms,
/// doubling to 1 s.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { next: Duration::from_millis(25) }
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(1));
    }

    /// Waits unless that would pass `deadline`; false if it would.
    pub(crate) async fn wait_until(&mut self, deadline: Option<Instant>) -> bool {
        if deadline.is_some_and(|d| Instant::now() + self.next >= d) {
            return false;
        }
        self.wait().await;
        true
    }
}

/// Runs an idempotent request until it gives a definite answer, waiting a
/// little after each ambiguous failure (ConnectionLoss, timeouts), until
/// `deadline`. A definite error (NoNode, SessionExpired, ...) is returned at
/// once.
pub(crate) async fn retry<T, F, Fut>(deadline: Option<Instant>, mut op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut pause = Backoff::new();
    loop {
        match op().await {
            Err(e) if !e.is_definite() => {
                if !pause.wait_until(deadline).await {
                    return Err(e);
                }
            }
            other => return other,
        }
    }
}

/// Deletes `path` if it exists (`version`: only at that version). NoNode, and
/// SessionExpired (an ephemeral node goes with its session), count as done.
pub(crate) async fn delete_if_exists(client: &Client, path: &str, version: Option<i32>) -> Result<(), Error> {
    match retry(None, || client.delete(path, version)).await {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.code(), ErrorCode::NoNode | ErrorCode::SessionExpired) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `path` and its missing ancestors as empty persistent nodes
/// (kazoo's `ensure_path`). Returns true if `path` already existed.
pub(crate) async fn ensure_path(client: &Client, path: &str) -> Result<bool, Error> {
    if retry(None, || client.exists(path)).await?.is_some() {
        return Ok(true);
    }
    let mut at = String::new();
    let mut created_last = false;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        // A retried create that finds the node made by its own first attempt
        // is as good as success.
        match retry(None, || client.create(&at, b"", CreateOptions::new(CreateMode::Persistent))).await {
            Ok(_) => created_last = true,
            Err(e) if e.code() == ErrorCode::NodeExists => created_last = false,
            Err(e) => return Err(e),
        }
    }
    Ok(!created_last)
}

/// The session a recipe's ephemeral nodes belong to, or a clear error.
pub(crate) fn require_session(client: &Client) -> Result<i64, Error> {
    match client.session_id() {
        0 => Err(Error::InvalidArgument("recipes hold ephemeral nodes: call start_session first".into())),
        id => Ok(id),
    }
}

/// Checks a recipe's path the way the client would, before anything is sent.
pub(crate) fn check_path(path: &str) -> Result<(), Error> {
    crate::path::validate(path, false)
}

/// 128 random bits as 32 lowercase hex digits (kazoo's `uuid4().hex`).
pub(crate) fn guid() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// 128 random bits in the 8-4-4-4-12 form (Java's `UUID.toString()`, which
/// Curator puts in its protected node names).
pub(crate) fn dashed_guid() -> String {
    let hex = guid();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The name's last path component.
pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Splits a sequential node's name into the part before the counter and the
/// counter ZooKeeper appended (`%010d`: ten digits, or a minus sign and nine
/// once the parent's counter has wrapped).
pub(crate) fn split_sequence(name: &str) -> Option<(&str, i64)> {
    let cut = name.len().checked_sub(10)?;
    if !name.is_char_boundary(cut) {
        return None;
    }
    let (stem, digits) = name.split_at(cut);
    let valid = match digits.as_bytes() {
        [b'-', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        all => all.iter().all(u8::is_ascii_digit),
    };
    if !valid {
        return None;
    }
    Some((stem, digits.parse().ok()?))
}

/// Waits for `fut` until `deadline` (forever without one); `None` on timeout.
pub(crate) async fn until<T>(deadline: Option<Instant>, fut: impl Future<Output = T>) -> Option<T> {
    match deadline {
        // (`timeout_at` is missing from madsim's time module.)
        Some(d) => tokio::time::timeout(d.saturating_duration_since(Instant::now()), fut).await.ok(),
        None => Some(fut.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_the_last_ten_characters() {
        assert_eq!(split_sequence("abc__lock__0000000042"), Some(("abc__lock__", 42)));
        assert_eq!(split_sequence("entry-100-0000000007"), Some(("entry-100-", 7)));
        assert_eq!(split_sequence("x-000000005"), Some(("x", -5)));
        assert_eq!(split_sequence("0000000001"), Some(("", 1)));
        assert_eq!(split_sequence("ready"), None);
        assert_eq!(split_sequence("abc__lock__00000000x1"), None);
        assert_eq!(split_sequence("é00000000"), None);
    }

    #[test]
    fn guids_look_like_kazoos_and_curators() {
        let g = guid();
        assert_eq!(g.len(), 32);
        assert!(g.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(g, guid());
        let d = dashed_guid();
        assert_eq!(d.split('-').map(str::len).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
    }

    #[test]
    fn paths_join_and_split() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a/b", "c"), "/a/b/c");
        assert_eq!(base_name("/a/b/c"), "c");
        assert_eq!(base_name("/a"), "a");
    }

    #[tokio::test]
    async fn a_lost_future_resolves_with_the_verdict_or_released() {
        let (tx, rx) = watch::channel(None);
        let lost = Lost::new(rx.clone());
        tx.send_replace(Some(LostReason::NodeDeleted));
        assert_eq!(lost.await, LostReason::NodeDeleted);
        let (tx, rx) = watch::channel(None);
        let lost = Lost::new(rx);
        drop(tx);
        assert_eq!(lost.await, LostReason::Released);
    }
}
