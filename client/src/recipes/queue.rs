//! [`Queue`]: a distributed FIFO (and priority) queue with competing
//! consumers and exactly-once consumption, laid out as kazoo's
//! `LockingQueue`:
//!
//! - `<path>/entries/entry-<priority:03>-<seq>`: the items, persistent and
//!   sequential, taken in name order (priority first, then arrival);
//! - `<path>/taken/<entry>`: a consumer's claim on an item, ephemeral, holding
//!   the consumer's id. An item is available while it has no claim;
//! - `<path>/puts/<guid>`: this crate's put markers (ephemeral; kazoo does not
//!   look there), which make a put safe to retry after a ConnectionLoss.
//!
//! Taking an item claims it; acknowledging it deletes the item and the claim
//! in one transaction. A consumer that dies mid-item leaves a claim that goes
//! with its session, and the item is then taken by someone else. Each item is
//! therefore *consumed* (acknowledged) exactly once, and *processed* at least
//! once: a consumer that lost its claim (see [`Claim::lost`]) is told so by
//! its [`Claim::ack`] failing.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::Either;
use parking_lot::Mutex as SyncMutex;
use tokio::time::Instant;

use super::mutex::Wait;
use super::{
    check_path, ensure_path, guid, join, require_session, retry, until, Backoff, Held, InFlight, Lost, LostReason,
};
use crate::{Client, CreateMode, CreateOptions, Error, ErrorCode, Op, OpResult};

/// The priority `put` uses (kazoo's default). Lower values come out first.
pub const DEFAULT_PRIORITY: u16 = 100;
/// Priorities are three digits in the node name (kazoo: 0 ..= 999).
const MAX_PRIORITY: u16 = 999;
/// How many old put markers one put deletes at most.
const MARKERS_PER_PUT: usize = 8;
/// How many unclaimed items a consumer takes from one listing. Fewer means
/// more listings; more means an item handed back (released, or left by a dead
/// consumer) may wait behind more items this consumer already listed.
const CHUNK: usize = 16;

/// A distributed queue with competing consumers (kazoo's `LockingQueue`
/// layout): FIFO within a priority, lower priorities first; every item is
/// acknowledged exactly once, even when consumers die mid-item; optionally
/// bounded, with `put` waiting for room.
///
/// ```no_run
/// # async fn demo(client: corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::Queue;
/// let queue = Queue::new(&client, "/queues/jobs");
/// queue.put(b"resize img-1").await?;
/// let item = queue.take().await?;
/// println!("working on {:?}", String::from_utf8_lossy(item.data()));
/// item.ack().await?; // consumed: nobody else will get it
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    path: String,
    entries: String,
    taken: String,
    puts: String,
    /// Stored in our claims (kazoo's consumer id).
    id: Vec<u8>,
    /// At most this many items (taken ones included); `put` waits for room.
    bound: Option<usize>,
    ensured: AtomicBool,
    /// Markers of our earlier puts: each later put deletes some.
    markers: SyncMutex<Vec<String>>,
    /// What the last listing found unclaimed, in queue order.
    cache: SyncMutex<VecDeque<String>>,
    /// Claims of this handle not yet acked or released: the listing's other
    /// claims estimate how many consumers compete.
    outstanding: AtomicUsize,
}

impl Queue {
    /// An unbounded queue at `path`. Nothing is sent yet.
    pub fn new(client: &Client, path: &str) -> Queue {
        Queue::build(client, path, None)
    }

    /// A queue at `path` that holds at most `max_items` items: `put` waits
    /// while it is full. Producers check the count before they put, so
    /// concurrent producers may overshoot the bound by one item each.
    pub fn bounded(client: &Client, path: &str, max_items: usize) -> Queue {
        Queue::build(client, path, Some(max_items.max(1)))
    }

    fn build(client: &Client, path: &str, bound: Option<usize>) -> Queue {
        let inner = Inner {
            client: client.clone(),
            path: path.to_string(),
            entries: join(path, "entries"),
            taken: join(path, "taken"),
            puts: join(path, "puts"),
            id: guid().into_bytes(),
            bound,
            ensured: AtomicBool::new(false),
            markers: SyncMutex::new(Vec::new()),
            cache: SyncMutex::new(VecDeque::new()),
            outstanding: AtomicUsize::new(0),
        };
        Queue { inner: Arc::new(inner) }
    }

    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Adds an item with the default priority, waiting for room in a bounded
    /// queue.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a session or for a bad path;
    /// SessionExpired. A ConnectionLoss is retried: the put happens once.
    pub async fn put(&self, data: &[u8]) -> Result<(), Error> {
        self.put_with_priority(data, DEFAULT_PRIORITY).await
    }

    /// Adds an item with `priority` (0 ..= 999, lower first).
    pub async fn put_with_priority(&self, data: &[u8], priority: u16) -> Result<(), Error> {
        self.put_items(&[data], priority, None).await.map(drop)
    }

    /// Adds an item, waiting at most `timeout` for room; false if there was
    /// none by then (nothing was put).
    pub async fn put_timeout(&self, data: &[u8], timeout: Duration) -> Result<bool, Error> {
        self.put_items(&[data], DEFAULT_PRIORITY, Some(Instant::now() + timeout)).await
    }

    /// Adds all of `items`, in order, in one transaction (kazoo's `put_all`):
    /// all of them or none.
    pub async fn put_all<T: AsRef<[u8]>>(&self, items: &[T], priority: u16) -> Result<(), Error> {
        let items: Vec<&[u8]> = items.iter().map(AsRef::as_ref).collect();
        self.put_items(&items, priority, None).await.map(drop)
    }

    async fn put_items(&self, items: &[&[u8]], priority: u16, deadline: Option<Instant>) -> Result<bool, Error> {
        if priority > MAX_PRIORITY {
            return Err(Error::InvalidArgument(format!("priority {priority} is outside 0..=999")));
        }
        if items.is_empty() {
            return Ok(true);
        }
        let q = &self.inner;
        require_session(&q.client)?;
        self.ensure().await?;
        if !self.wait_for_room(items.len(), deadline).await? {
            return Ok(false);
        }
        let marker = join(&q.puts, &guid());
        let mut old: Vec<String> = {
            let mut markers = q.markers.lock();
            let n = markers.len().min(MARKERS_PER_PUT);
            markers.drain(..n).collect()
        };
        let prefix = format!("{}/entry-{priority:03}-", q.entries);
        let marker_at = items.len();
        let mut ambiguous = false;
        let mut pause = Backoff::new();
        loop {
            let mut ops: Vec<Op> = items
                .iter()
                .map(|d| Op::create(prefix.clone(), d.to_vec(), CreateOptions::new(CreateMode::PersistentSequential)))
                .collect();
            ops.push(Op::create(marker.clone(), Vec::new(), CreateOptions::new(CreateMode::Ephemeral)));
            ops.extend(old.iter().map(|m| Op::delete(m.clone(), None)));
            match q.client.multi(ops).await {
                Ok(_) => break,
                Err(Error::Multi { code, results }) => match (failed_at(&results), code) {
                    // Our marker exists: an earlier attempt whose outcome we
                    // did not learn went through.
                    (Some(at), ErrorCode::NodeExists) if at == marker_at && ambiguous => break,
                    // An old marker went already (with an earlier session).
                    (Some(at), ErrorCode::NoNode) if at > marker_at => {
                        old.remove(at - marker_at - 1);
                    }
                    (Some(at), ErrorCode::NoNode) if at < marker_at => {
                        q.ensured.store(false, Ordering::Relaxed);
                        self.ensure().await?;
                    }
                    _ => {
                        q.markers.lock().extend(old);
                        return Err(Error::Multi { code, results });
                    }
                },
                Err(e) if !e.is_definite() => {
                    ambiguous = true;
                    pause.wait().await;
                }
                Err(e) => {
                    q.markers.lock().extend(old);
                    return Err(e);
                }
            }
        }
        q.markers.lock().push(marker);
        Ok(true)
    }

    /// Waits until the queue has room for `needed` items (a batch larger than
    /// the bound goes once the queue is empty). False if `deadline` passed.
    async fn wait_for_room(&self, needed: usize, deadline: Option<Instant>) -> Result<bool, Error> {
        let q = &self.inner;
        let Some(bound) = q.bound else { return Ok(true) };
        let fits = |count: usize| count + needed <= bound.max(needed);
        let stat = retry(deadline, || q.client.exists(&q.entries)).await?;
        if fits(stat.map_or(0, |s| usize::try_from(s.num_children).unwrap_or(0))) {
            return Ok(true);
        }
        loop {
            let (items, _, changed) = retry(deadline, || q.client.get_children_watch(&q.entries)).await?;
            if fits(items.len()) {
                return Ok(true);
            }
            match until(deadline, changed).await {
                None => return Ok(false),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// Waits for an item and claims it. Process it, then [`Claim::ack`] it
    /// (or [`Claim::release`] it for someone else).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a session; SessionExpired.
    pub async fn take(&self) -> Result<Claim, Error> {
        self.take_inner(Wait::Forever)
            .await?
            .ok_or_else(|| Error::InvalidArgument("a take without a deadline gave up".into()))
    }

    /// Waits at most `timeout` for an item.
    pub async fn take_timeout(&self, timeout: Duration) -> Result<Option<Claim>, Error> {
        self.take_inner(Wait::Until(Instant::now() + timeout)).await
    }

    /// Claims the first available item, if there is one now.
    pub async fn try_take(&self) -> Result<Option<Claim>, Error> {
        self.take_inner(Wait::No).await
    }

    async fn take_inner(&self, wait: Wait) -> Result<Option<Claim>, Error> {
        let q = &self.inner;
        check_path(&q.path)?;
        let session_id = require_session(&q.client)?;
        self.ensure().await?;
        let deadline = wait.deadline();
        loop {
            let next = q.cache.lock().pop_front();
            let Some(name) = next else {
                if !self.refill(wait, deadline).await? {
                    return Ok(None);
                }
                continue;
            };
            match self.claim(&name, session_id, deadline).await? {
                Taken::Ours(claim) => return Ok(Some(claim)),
                // Another consumer works on this part of the queue: list it
                // again and pick another part.
                Taken::Theirs => {
                    q.cache.lock().clear();
                }
                Taken::Gone => {
                    q.cache.lock().clear();
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    /// Lists the unclaimed items into the cache, waiting for one if there is
    /// none (unless `wait` says not to). False if none came in time.
    async fn refill(&self, wait: Wait, deadline: Option<Instant>) -> Result<bool, Error> {
        let q = &self.inner;
        loop {
            let (listed, claimed) = futures::join!(
                retry(deadline, || q.client.get_children(&q.entries)),
                retry(deadline, || q.client.get_children(&q.taken)),
            );
            let (Some((items, _)), Some((claimed, _))) = (ok_or_timeout(listed)?, ok_or_timeout(claimed)?) else {
                return Ok(false);
            };
            if self.fill(items, claimed) {
                return Ok(true);
            }
            if wait == Wait::No {
                return Ok(false);
            }
            // Nothing free: watch both lists (a new item, or a claim that
            // went with a dead consumer), and look again.
            let listed = ok_or_timeout(retry(deadline, || q.client.get_children_watch(&q.entries)).await)?;
            let claimed = ok_or_timeout(retry(deadline, || q.client.get_children_watch(&q.taken)).await)?;
            let (Some((items, _, added)), Some((claimed, _, freed))) = (listed, claimed) else { return Ok(false) };
            if self.fill(items, claimed) {
                return Ok(true);
            }
            match until(deadline, futures::future::select(added, freed)).await {
                None => return Ok(false),
                Some(Either::Left((Err(e), _)) | Either::Right((Err(e), _))) => return Err(e),
                Some(_) => {}
            }
        }
    }

    /// Caches a chunk of the unclaimed items, in queue order; false if there
    /// are none. Alone, a consumer takes the first chunk; with `n` other
    /// consumers at work (their claims), one of the first `n + 1` chunks at
    /// random, so that competing consumers mostly work on different items
    /// instead of racing for the first one.
    fn fill(&self, mut items: Vec<String>, claimed: Vec<String>) -> bool {
        let others = claimed.len().saturating_sub(self.inner.outstanding.load(Ordering::Relaxed));
        let claimed: HashSet<String> = claimed.into_iter().collect();
        items.retain(|i| !claimed.contains(i));
        // kazoo sorts the names: `entry-<priority>-<seq>` puts priority first.
        items.sort_unstable();
        let chunks = items.len().div_ceil(CHUNK).min(others + 1);
        let start = if chunks > 1 { rand::random::<usize>() % chunks * CHUNK } else { 0 };
        let chunk: VecDeque<String> = items.drain(..).skip(start).take(CHUNK).collect();
        let found = !chunk.is_empty();
        *self.inner.cache.lock() = chunk;
        found
    }

    /// Claims `name`: reads the item and checks for a claim first (a read is
    /// much cheaper than a failed write), then creates the claim in a
    /// transaction that also checks the item is still there.
    async fn claim(&self, name: &str, session_id: i64, deadline: Option<Instant>) -> Result<Taken, Error> {
        match self.precheck(name, deadline).await? {
            Checked::Free(candidate) => self.claim_checked(candidate, session_id, deadline).await,
            Checked::Theirs => Ok(Taken::Theirs),
            Checked::Gone => Ok(Taken::Gone),
        }
    }

    /// Reads the item and whether someone claimed it.
    async fn precheck(&self, name: &str, deadline: Option<Instant>) -> Result<Checked, Error> {
        let q = &self.inner;
        let claim_path = join(&q.taken, name);
        let entry_path = join(&q.entries, name);
        let (entry, claimed) = futures::join!(
            retry(deadline, || q.client.get_data(&entry_path)),
            retry(deadline, || q.client.exists(&claim_path)),
        );
        let (data, version) = match entry {
            Ok((data, stat)) => (data, stat.version),
            Err(e) if e.code() == ErrorCode::NoNode => return Ok(Checked::Gone),
            Err(e) if !e.is_definite() => return Ok(Checked::Gone),
            Err(e) => return Err(e),
        };
        match claimed {
            Ok(None) => Ok(Checked::Free(Candidate { name: name.to_string(), data, version })),
            Ok(Some(_)) => Ok(Checked::Theirs),
            Err(e) if !e.is_definite() => Ok(Checked::Gone),
            Err(e) => Err(e),
        }
    }

    /// The ops that claim `candidate`: the item is still there (and
    /// unchanged), and the claim is ours.
    fn claim_ops(&self, candidate: &Candidate) -> Vec<Op> {
        let q = &self.inner;
        vec![
            Op::check(join(&q.entries, &candidate.name), candidate.version),
            Op::create(join(&q.taken, &candidate.name), q.id.clone(), CreateOptions::new(CreateMode::Ephemeral)),
        ]
    }

    fn claimed(&self, candidate: Candidate, token: i64) -> Claim {
        let q = &self.inner;
        let held = Held::lazy(&q.client, join(&q.taken, &candidate.name), token);
        q.outstanding.fetch_add(1, Ordering::Relaxed);
        Claim { inner: q.clone(), name: candidate.name, data: candidate.data, held, done: false }
    }

    /// Whether our session owns the claim node of `name` (after a claim
    /// whose outcome we did not learn); its czxid if so.
    async fn own_claim(&self, name: &str, session_id: i64, deadline: Option<Instant>) -> Result<Option<i64>, Error> {
        let q = &self.inner;
        let stat = retry(deadline, || q.client.exists(&join(&q.taken, name))).await?;
        Ok(stat.filter(|s| s.ephemeral_owner == session_id).map(|s| s.czxid))
    }

    async fn claim_checked(&self, candidate: Candidate, session_id: i64, deadline: Option<Instant>) -> Result<Taken, Error> {
        let q = &self.inner;
        let ops = self.claim_ops(&candidate);
        let mut ambiguous = false;
        let mut pause = Backoff::new();
        let mut in_flight = InFlight::new(&q.client, join(&q.taken, &candidate.name));
        let token = loop {
            let attempt = in_flight.send(q.client.multi(ops.clone())).await;
            match attempt {
                Ok(results) => match results.get(1) {
                    Some(OpResult::Create { stat, .. }) => break stat.czxid,
                    _ => return Err(Error::InvalidArgument("a claim's transaction answered oddly".into())),
                },
                Err(Error::Multi { code, results }) => match (failed_at(&results), code) {
                    // Consumed since we read it.
                    (Some(0), _) => return Ok(Taken::Gone),
                    (Some(1), ErrorCode::NodeExists) if !ambiguous => return Ok(Taken::Theirs),
                    // Our own earlier attempt, if our session owns it.
                    (Some(1), ErrorCode::NodeExists) => match self.own_claim(&candidate.name, session_id, deadline).await? {
                        Some(token) => break token,
                        None => return Ok(Taken::Theirs),
                    },
                    _ => return Err(Error::Multi { code, results }),
                },
                Err(e) if !e.is_definite() => {
                    ambiguous = true;
                    if !pause.wait_until(deadline).await {
                        self.drop_claim_if_ours(&join(&q.taken, &candidate.name), session_id).await?;
                        return Ok(Taken::Gone);
                    }
                }
                Err(e) => return Err(e),
            }
        };
        in_flight.disarm();
        Ok(Taken::Ours(self.claimed(candidate, token)))
    }

    /// The next item that looks free, without waiting (for
    /// [`Claim::ack_and_take`]): a few tries through the cache and one
    /// listing at most.
    async fn candidate(&self) -> Result<Option<Candidate>, Error> {
        let q = &self.inner;
        let mut listed = false;
        for _ in 0..4 {
            let next = q.cache.lock().pop_front();
            let Some(name) = next else {
                if listed || !self.refill(Wait::No, None).await? {
                    return Ok(None);
                }
                listed = true;
                continue;
            };
            match self.precheck(&name, None).await? {
                Checked::Free(candidate) => return Ok(Some(candidate)),
                Checked::Theirs | Checked::Gone => q.cache.lock().clear(),
            }
        }
        Ok(None)
    }

    async fn drop_claim_if_ours(&self, claim_path: &str, session_id: i64) -> Result<(), Error> {
        let q = &self.inner;
        match retry(None, || q.client.exists(claim_path)).await? {
            Some(stat) if stat.ephemeral_owner == session_id => {
                super::delete_if_exists(&q.client, claim_path, Some(stat.version)).await
            }
            _ => Ok(()),
        }
    }

    /// How many items the queue holds (claimed ones included).
    pub async fn len(&self) -> Result<usize, Error> {
        let q = &self.inner;
        let stat = retry(None, || q.client.exists(&q.entries)).await?;
        Ok(stat.map_or(0, |s| usize::try_from(s.num_children).unwrap_or(0)))
    }

    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    async fn ensure(&self) -> Result<(), Error> {
        let q = &self.inner;
        if q.ensured.load(Ordering::Relaxed) {
            return Ok(());
        }
        check_path(&q.path)?;
        for dir in [&q.entries, &q.taken, &q.puts] {
            ensure_path(&q.client, dir).await?;
        }
        q.ensured.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("path", &self.inner.path).field("bound", &self.inner.bound).finish()
    }
}

/// How an acknowledgement went.
enum Acked {
    /// Applied now: the results of every op.
    Done(Vec<OpResult>),
    /// An earlier attempt (cut off) was applied.
    Earlier,
    /// The ack's own ops would have applied but the extra ones failed, so
    /// nothing was.
    ExtraFailed,
}

/// An item that looked free when read.
struct Candidate {
    name: String,
    data: Vec<u8>,
    version: i32,
}

/// What a look at an item found.
enum Checked {
    Free(Candidate),
    Theirs,
    Gone,
}

/// What became of an attempt to claim an item.
enum Taken {
    Ours(Claim),
    /// Another consumer has it.
    Theirs,
    /// Consumed already (or unreachable for now).
    Gone,
}

/// A result, or `None` if the deadline passed with the outcome unknown.
fn ok_or_timeout<T>(r: Result<T, Error>) -> Result<Option<T>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if !e.is_definite() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The index of the op that failed a multi.
fn failed_at(results: &[OpResult]) -> Option<usize> {
    results.iter().position(|r| {
        matches!(r, OpResult::Error { code } if *code != ErrorCode::Ok && *code != ErrorCode::RuntimeInconsistency)
    })
}

/// An item this consumer has claimed: nobody else gets it while the claim
/// lasts. [`Claim::ack`] consumes it; [`Claim::release`] (or dropping the
/// claim) hands it back.
#[must_use = "an item not acknowledged is handed back when the claim is dropped"]
pub struct Claim {
    inner: Arc<Inner>,
    name: String,
    data: Vec<u8>,
    held: Held,
    /// Acked, released or abandoned: nothing to do on drop.
    done: bool,
}

impl Claim {
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The item's node name (`entry-<priority>-<seq>`), unique in the queue.
    pub fn id(&self) -> &str {
        &self.name
    }

    /// The item's priority, read from its name.
    pub fn priority(&self) -> Option<u16> {
        self.name.strip_prefix("entry-")?.get(..3)?.parse().ok()
    }

    /// The claim node's czxid: a later claim of the same item (after this one
    /// was lost) has a higher one.
    pub fn fencing_token(&self) -> i64 {
        self.held.token
    }

    /// Resolves when the claim is lost (see [`LostReason`]): the item will be
    /// (or was) handed to another consumer, and [`Claim::ack`] will fail.
    pub fn lost(&self) -> Lost {
        self.held.lost()
    }

    pub fn lost_reason(&self) -> Option<LostReason> {
        self.held.lost_reason()
    }

    /// Marks the claim acked, released or abandoned; false if it already was.
    fn settle(&mut self) -> bool {
        if self.done {
            return false;
        }
        self.done = true;
        self.inner.outstanding.fetch_sub(1, Ordering::Relaxed);
        self.held.stop_monitor();
        true
    }

    fn paths(&self) -> (String, String) {
        (join(&self.inner.taken, &self.name), join(&self.inner.entries, &self.name))
    }

    /// A node created and deleted in the transaction: creating an ephemeral
    /// node fails once the session has expired, so the transaction can only
    /// apply while our session, and so our claim, is alive.
    fn fence(&self) -> Vec<Op> {
        let fence = join(&self.inner.taken, &format!("{}-ack-{}", self.name, guid()));
        vec![
            Op::create(fence.clone(), Vec::new(), CreateOptions::new(CreateMode::Ephemeral)),
            Op::delete(fence, None),
        ]
    }

    /// Consumes the item: deletes it and the claim in one transaction, which
    /// applies only while the claim is still ours. Exactly one consumer's ack
    /// of an item ever succeeds.
    ///
    /// # Errors
    /// SessionExpired or NoNode if the claim was lost (the item goes, or went,
    /// to another consumer); [`Error::ConnectionLoss`] in the one case where
    /// the outcome stays unknown: an attempt was cut off and the session
    /// expired before the retry.
    pub async fn ack(mut self) -> Result<(), Error> {
        self.settle();
        self.acknowledge(Vec::new(), &mut false).await.map(drop)
    }

    /// Consumes the item as [`Claim::ack`] does and, in the same transaction,
    /// claims the next free item if there is one (one write per item instead
    /// of two: a consumer loop that uses it goes about twice as fast). `None`
    /// when no item was free (the ack happened all the same): call
    /// [`Queue::take`] to wait for one.
    ///
    /// ```no_run
    /// # async fn demo(queue: corral_client::recipes::Queue) -> Result<(), corral_client::Error> {
    /// let mut item = queue.take().await?;
    /// loop {
    ///     // ... process item.data()
    ///     item = match item.ack_and_take().await? {
    ///         Some(next) => next,
    ///         None => queue.take().await?,
    ///     };
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Claim::ack`].
    pub async fn ack_and_take(mut self) -> Result<Option<Claim>, Error> {
        self.settle();
        let queue = Queue { inner: self.inner.clone() };
        let session_id = self.inner.client.session_id();
        let mut ambiguous = false;
        // Looking for the next item is an optimisation: if that fails, the
        // ack still happens.
        let Ok(Some(next)) = queue.candidate().await else {
            self.acknowledge(Vec::new(), &mut ambiguous).await?;
            return Ok(None);
        };
        let mut outcome = self.acknowledge(queue.claim_ops(&next), &mut ambiguous).await?;
        if let Acked::ExtraFailed = outcome {
            // Someone else got the next item first: just the ack.
            outcome = self.acknowledge(Vec::new(), &mut ambiguous).await?;
        }
        match outcome {
            Acked::Done(results) => match results.get(5) {
                Some(OpResult::Create { stat, .. }) => Ok(Some(queue.claimed(next, stat.czxid))),
                _ => Ok(None),
            },
            // An attempt we lost track of went through, perhaps with the
            // claim of the next item (all or nothing): ours if we own it.
            Acked::Earlier => match queue.own_claim(&next.name, session_id, None).await? {
                Some(token) => Ok(Some(queue.claimed(next, token))),
                None => Ok(None),
            },
            Acked::ExtraFailed => Ok(None),
        }
    }

    /// Deletes the item and the claim (fenced by our session) together with
    /// `extra`, retrying while the outcome is unknown.
    async fn acknowledge(&self, extra: Vec<Op>, ambiguous: &mut bool) -> Result<Acked, Error> {
        // A claim among the extra ops must not outlive a cancelled call.
        let extra_claim = extra.iter().find_map(|op| match op {
            Op::Create { path, .. } => Some(path.clone()),
            _ => None,
        });
        let mut in_flight = extra_claim.map(|path| InFlight::new(&self.inner.client, path));
        let (claim, entry) = self.paths();
        let mut ops = self.fence();
        ops.push(Op::delete(claim, None));
        ops.push(Op::delete(entry, None));
        let first_extra = ops.len();
        ops.extend(extra);
        let mut pause = Backoff::new();
        loop {
            let reply = self.inner.client.multi(ops.clone());
            let attempt = match in_flight.as_mut() {
                Some(f) => f.send(reply).await,
                None => reply.await,
            };
            let expired = match attempt {
                Ok(results) => {
                    in_flight.as_mut().map(InFlight::disarm);
                    return Ok(Acked::Done(results));
                }
                Err(Error::Multi { code, results }) => match (failed_at(&results), code) {
                    // The claim is gone though the session lives: an earlier
                    // attempt of ours went through.
                    (Some(2), ErrorCode::NoNode) if *ambiguous => {
                        in_flight.as_mut().map(InFlight::disarm);
                        return Ok(Acked::Earlier);
                    }
                    (_, ErrorCode::SessionExpired) => Error::Multi { code, results },
                    (Some(at), _) if at >= first_extra => return Ok(Acked::ExtraFailed),
                    _ => return Err(Error::Multi { code, results }),
                },
                Err(e) if e.code() == ErrorCode::SessionExpired => e,
                Err(e) if !e.is_definite() => {
                    *ambiguous = true;
                    pause.wait().await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if *ambiguous {
                return Err(Error::ConnectionLoss(format!(
                    "acknowledging {}: an attempt was cut off and the session then expired, so whether it \
                     applied is unknown",
                    self.name
                )));
            }
            return Err(expired);
        }
    }

    /// Hands the item back without consuming it: the next `take` may get it.
    pub async fn release(mut self) -> Result<(), Error> {
        self.settle();
        release(&self.inner.client, self.fence(), self.paths().0).await
    }

    /// Stops tracking the claim without releasing it: it stays until this
    /// session ends, and the item is then handed to another consumer (what a
    /// crashed consumer leaves behind; useful to simulate one).
    pub fn abandon(mut self) {
        self.settle();
    }

    /// Whether the claim is still ours (kazoo's `holds_lock`), asked of the
    /// ensemble.
    pub async fn holds(&self) -> Result<bool, Error> {
        let client = self.inner.client.linearizable();
        let stat = retry(None, || client.exists(&self.held.path)).await?;
        Ok(stat.is_some_and(|s| s.ephemeral_owner == self.inner.client.session_id()))
    }
}

async fn release(client: &Client, mut ops: Vec<Op>, claim: String) -> Result<(), Error> {
    ops.push(Op::delete(claim, None));
    match retry(None, || client.multi(ops.clone())).await {
        Ok(_) => Ok(()),
        // Gone already, or gone with the session: nothing to hand back.
        Err(e) if matches!(e.code(), ErrorCode::NoNode | ErrorCode::SessionExpired) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.settle() {
            return;
        }
        let client = self.inner.client.clone();
        let ops = self.fence();
        let claim = self.paths().0;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            drop(rt.spawn(async move {
                if let Err(e) = release(&client, ops, claim).await {
                    tracing::debug!(error = %e, "handing back a dropped claim");
                }
            }));
        }
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim").field("id", &self.name).field("len", &self.data.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_op_is_the_first_real_code() {
        let r = |code| OpResult::Error { code };
        assert_eq!(failed_at(&[r(ErrorCode::Ok), r(ErrorCode::NodeExists), r(ErrorCode::RuntimeInconsistency)]), Some(1));
        assert_eq!(failed_at(&[r(ErrorCode::Ok)]), None);
    }

    #[tokio::test]
    async fn claims_know_their_priority() {
        let client = Client::connect(vec!["127.0.0.1:1".into()]).await.expect("valid endpoint");
        let q = Queue::new(&client, "/q");
        assert!(q.fill(
            vec!["entry-100-0000000002".into(), "entry-005-0000000009".into(), "entry-100-0000000001".into()],
            vec!["entry-100-0000000001".into()],
        ));
        let order: Vec<String> = q.inner.cache.lock().iter().cloned().collect();
        assert_eq!(order, vec!["entry-005-0000000009".to_string(), "entry-100-0000000002".to_string()]);
        assert!(!q.fill(vec!["entry-100-0000000001".into()], vec!["entry-100-0000000001".into()]));
    }
}
