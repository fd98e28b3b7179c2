//! [`Mutex`]: a fair, re-entrant distributed lock (ZooKeeper's lock recipe,
//! as kazoo's `Lock` lays it out), and [`LockCore`], the queue of
//! ephemeral-sequential nodes that the read/write lock, the semaphore and the
//! election share.
//!
//! Each acquisition creates `<path>/<owner>__lock__<seq>` (ephemeral,
//! sequential). The contender with the lowest sequence number among those that
//! block it holds the lock; every other one watches only the node just before
//! its own (no herd effect: a release wakes exactly one waiter) and looks
//! again when that node goes. `<owner>` is a guid per handle, which is how a
//! handle finds its node after a ConnectionLoss left the create's outcome
//! unknown, and how it recognises its own nodes as re-entrant.
//!
//! Lock order: `LockCore::gate` (async, held across a whole fresh
//! acquisition) before `LockCore::state` (sync, never held across an await)
//! before `Acquired::holds`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex as SyncMutex;
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use super::{
    base_name, check_path, dashed_guid, delete_if_exists, ensure_path, guid, join, require_session, retry,
    split_sequence, until, Backoff, Held, Lost, LostReason,
};
use crate::{Client, CreateMode, CreateOptions, Error, ErrorCode, Reply, Stat};

/// How lock nodes are named, which decides which other clients understand
/// them. Either way this crate's locks recognise both kinds as contenders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LockNaming {
    /// `<32 hex digits>__lock__<seq>`, as kazoo's `Lock` (and its `Election`
    /// and `Semaphore`) name them.
    #[default]
    Kazoo,
    /// `_c_<uuid>-lock-<seq>`, as Curator's `InterProcessMutex` names them
    /// (protection mode).
    Curator,
}

/// Options for [`Mutex::with_options`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockOptions {
    pub naming: LockNaming,
    /// Stored in the lock node: what `contenders` reports for this handle
    /// (kazoo's `identifier`).
    pub data: Vec<u8>,
}

impl LockOptions {
    pub fn new() -> LockOptions {
        LockOptions::default()
    }

    pub fn naming(mut self, naming: LockNaming) -> LockOptions {
        self.naming = naming;
        self
    }

    pub fn data(mut self, data: impl Into<Vec<u8>>) -> LockOptions {
        self.data = data.into();
        self
    }
}

/// Which nodes a lock creates and which nodes block it. A node blocks a
/// contender when its name, without the sequence suffix, ends with one of
/// `blockers` and its sequence number is lower (kazoo's `_EXCLUDE_NAMES`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    /// Kazoo's `_NODE_NAME`.
    pub(crate) node_name: &'static str,
    pub(crate) blockers: &'static [&'static str],
}

/// An exclusive lock: blocked by writers of every naming (kazoo `Lock`,
/// Curator `InterProcessMutex`).
pub(crate) const EXCLUSIVE: Kind = Kind { node_name: "__lock__", blockers: &["__lock__", "lock-"] };

/// How long an acquisition may wait for its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Forever,
    Until(Instant),
    /// Take it only if it is free now.
    No,
}

impl Wait {
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Until(d) => Some(d),
            Wait::Forever | Wait::No => None,
        }
    }

}

/// One handle's side of a lock queue at `dir`: its guid, what it holds, and
/// the acquisition protocol.
pub(crate) struct LockCore {
    pub(crate) client: Client,
    pub(crate) dir: String,
    kind: Kind,
    /// Every node of this handle starts with this (`<guid>` or `_c_<uuid>-`).
    owner: String,
    /// `owner` + the node name: what is passed to create.
    prefix: String,
    /// Serialises fresh acquisitions (and the clean-up of abandoned ones) of
    /// this handle, so two of them never race for the same guid.
    gate: Arc<tokio::sync::Mutex<()>>,
    state: SyncMutex<CoreState>,
}

#[derive(Default)]
struct CoreState {
    /// What this handle holds now, if anything (re-entered by later acquires).
    current: Option<Arc<Acquired>>,
    /// Nodes of ours being deleted by a release: not ours to adopt any more.
    releasing: HashSet<String>,
    /// A create's outcome was unknown or an abandoned acquisition's node may
    /// remain: sweep our nodes before the next fresh acquisition.
    dirty: bool,
}

/// One acquisition: the node, its monitor, and how many guards share it.
pub(crate) struct Acquired {
    pub(crate) held: Held,
    /// Guards sharing this acquisition (re-entrance).
    holds: SyncMutex<usize>,
    /// A create of this acquisition had an unknown outcome: another node of
    /// ours may still appear, so the release sweeps.
    ambiguous: bool,
}

impl std::fmt::Debug for Acquired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquired").field("held", &self.held).field("holds", &*self.holds.lock()).finish()
    }
}

/// Where an acquisition stands, for the clean-up of one that did not finish.
struct Attempt {
    core: Arc<LockCore>,
    gate: Option<OwnedMutexGuard<()>>,
    /// Our node's name, once known.
    node: Option<String>,
    /// The create on its way: its reply tells a clean-up what to delete
    /// (dropping a reply does not withdraw its request).
    creating: Option<Reply<(String, Stat)>>,
    ambiguous: bool,
    done: bool,
}

impl Drop for Attempt {
    /// The acquisition was dropped half-way (its future was cancelled): remove
    /// its node in the background, still holding the gate so that the next
    /// acquisition of this handle waits for it.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let core = self.core.clone();
        let gate = self.gate.take();
        let mut node = self.node.take();
        let creating = self.creating.take();
        let mut ambiguous = self.ambiguous;
        core.state.lock().dirty |= ambiguous || creating.is_some();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                drop(rt.spawn(async move {
                    let _gate = gate;
                    if let Some(create) = creating {
                        match create.await {
                            Ok((path, _)) => node = Some(base_name(&path).to_string()),
                            Err(e) if !e.is_definite() => ambiguous = true,
                            Err(_) => {}
                        }
                    }
                    core.clean_up(node.as_deref(), ambiguous).await;
                    if !ambiguous {
                        core.state.lock().dirty = false;
                    }
                }));
            }
            Err(_) => core.state.lock().dirty = true,
        }
    }
}

enum Turn {
    Acquired,
    /// Not ours (yet) and not waiting any longer.
    NotYet,
    /// Our node is gone (deleted by someone, or with a previous session).
    Vanished,
}

impl LockCore {
    pub(crate) fn new(client: &Client, dir: &str, kind: Kind, naming: LockNaming) -> LockCore {
        match naming {
            LockNaming::Kazoo => LockCore::build(client, dir, kind, guid(), kind.node_name),
            // Curator's protected name: `_c_<uuid>-` then its lock name.
            LockNaming::Curator => LockCore::build(client, dir, kind, format!("_c_{}-", dashed_guid()), "lock-"),
        }
    }

    /// A core whose nodes start with `owner` (a read/write lock's two sides
    /// share one, so that a writer is not blocked by its own read node).
    pub(crate) fn with_owner(client: &Client, dir: &str, kind: Kind, owner: String) -> LockCore {
        LockCore::build(client, dir, kind, owner, kind.node_name)
    }

    fn build(client: &Client, dir: &str, kind: Kind, owner: String, node_name: &str) -> LockCore {
        let prefix = format!("{owner}{node_name}");
        LockCore {
            client: client.clone(),
            dir: dir.to_string(),
            kind,
            owner,
            prefix,
            gate: Arc::new(tokio::sync::Mutex::new(())),
            state: SyncMutex::new(CoreState::default()),
        }
    }

    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    /// The live acquisition of this handle, with one more hold on it.
    fn reenter(&self) -> Option<Arc<Acquired>> {
        let state = self.state.lock();
        let current = state.current.as_ref()?;
        if current.held.lost_reason().is_some() {
            return None;
        }
        *current.holds.lock() += 1;
        Some(current.clone())
    }

    pub(crate) fn current(&self) -> Option<Arc<Acquired>> {
        self.state.lock().current.clone().filter(|a| a.held.lost_reason().is_none())
    }

    /// Takes the lock (or re-enters this handle's hold on it). `Ok(None)` when
    /// `wait` ran out first; the node made for the attempt is removed then.
    pub(crate) async fn acquire(self: &Arc<Self>, data: &[u8], wait: Wait) -> Result<Option<Arc<Acquired>>, Error> {
        check_path(&self.dir)?;
        require_session(&self.client)?;
        if let Some(a) = self.reenter() {
            return Ok(Some(a));
        }
        let gate = match wait {
            Wait::No => match self.gate.clone().try_lock_owned() {
                Ok(g) => g,
                // Another acquisition of this handle is under way.
                Err(_) => return Ok(None),
            },
            Wait::Forever => self.gate.clone().lock_owned().await,
            Wait::Until(d) => match until(Some(d), self.gate.clone().lock_owned()).await {
                Some(g) => g,
                None => return Ok(None),
            },
        };
        // The acquisition we waited for may have succeeded.
        if let Some(a) = self.reenter() {
            return Ok(Some(a));
        }
        let mut attempt =
            Attempt { core: self.clone(), gate: Some(gate), node: None, creating: None, ambiguous: false, done: false };
        let outcome = self.run(&mut attempt, data, wait).await;
        match outcome {
            Ok(Some(acquired)) => {
                attempt.done = true;
                Ok(Some(acquired))
            }
            other => {
                // Timed out or failed: our node (if any) must not stay queued.
                self.clean_up(attempt.node.as_deref(), attempt.ambiguous).await;
                attempt.done = true;
                other
            }
        }
    }

    async fn run(self: &Arc<Self>, attempt: &mut Attempt, data: &[u8], wait: Wait) -> Result<Option<Arc<Acquired>>, Error> {
        let deadline = wait.deadline();
        let dirty = std::mem::take(&mut self.state.lock().dirty);
        if dirty {
            if let Err(e) = self.sweep(None).await {
                self.state.lock().dirty = true;
                return Err(e);
            }
        }
        let (created, created_token) = loop {
            let Some((name, token)) = self.create(attempt, data, deadline).await? else {
                return Ok(None);
            };
            attempt.node = Some(name.clone());
            match self.wait_turn(attempt, wait).await? {
                Turn::Acquired => break (name, token),
                Turn::NotYet => return Ok(None),
                Turn::Vanished => attempt.node = None,
            }
        };
        let node = attempt.node.clone().unwrap_or(created.clone());
        let path = join(&self.dir, &node);
        // Adopted another node of ours (an earlier create that did happen):
        // its czxid is the token.
        let token = if node == created {
            created_token
        } else {
            match retry(deadline, || self.client.exists(&path)).await? {
                Some(stat) => stat.czxid,
                None => return Ok(None),
            }
        };
        let held = Held::start(&self.client, path, token);
        let acquired = Arc::new(Acquired { held, holds: SyncMutex::new(1), ambiguous: attempt.ambiguous });
        self.state.lock().current = Some(acquired.clone());
        Ok(Some(acquired))
    }

    /// Creates our node, safely across ConnectionLoss: once a create's outcome
    /// is unknown, look for a node of ours before trying again (Curator's
    /// protection mode). `None` if the deadline passed.
    async fn create(&self, attempt: &mut Attempt, data: &[u8], deadline: Option<Instant>) -> Result<Option<(String, i64)>, Error> {
        let mut pause = Backoff::new();
        let path = join(&self.dir, &self.prefix);
        loop {
            if attempt.ambiguous {
                match self.find_ours(deadline).await {
                    Ok(Some(found)) => return Ok(Some(found)),
                    Ok(None) => {}
                    Err(e) if !e.is_definite() => {
                        if !pause.wait_until(deadline).await {
                            return Ok(None);
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let create = attempt
                .creating
                .insert(self.client.create(&path, data, CreateOptions::new(CreateMode::EphemeralSequential)));
            let created = create.await;
            attempt.creating = None;
            match created {
                Ok((created, stat)) => return Ok(Some((base_name(&created).to_string(), stat.czxid))),
                Err(e) if e.code() == ErrorCode::NoNode => {
                    ensure_path(&self.client, &self.dir).await?;
                }
                Err(e) if !e.is_definite() => {
                    attempt.ambiguous = true;
                    if !pause.wait_until(deadline).await {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Our nodes among `children` (not those being released), lowest first.
    fn ours<'a>(&self, children: &'a [String]) -> Vec<(i64, &'a str)> {
        let state = self.state.lock();
        let releasing = &state.releasing;
        let mut ours: Vec<(i64, &str)> = children
            .iter()
            .filter(|c| c.starts_with(&self.prefix) && !releasing.contains(c.as_str()))
            .filter_map(|c| split_sequence(c).map(|(_, seq)| (seq, c.as_str())))
            .collect();
        ours.sort_unstable();
        ours
    }

    /// The lowest of our nodes (deleting any others), with its czxid.
    async fn find_ours(&self, deadline: Option<Instant>) -> Result<Option<(String, i64)>, Error> {
        let (children, _) = retry(deadline, || self.client.get_children(&self.dir)).await?;
        let ours: Vec<String> = self.ours(&children).into_iter().map(|(_, c)| c.to_string()).collect();
        let Some(lowest) = ours.first() else { return Ok(None) };
        for extra in &ours[1..] {
            delete_if_exists(&self.client, &join(&self.dir, extra), None).await?;
        }
        let stat = retry(deadline, || self.client.exists(&join(&self.dir, lowest))).await?;
        Ok(stat.map(|s| (lowest.clone(), s.czxid)))
    }

    /// The contender just before `node`: the one with the highest sequence
    /// number below ours among the nodes that block this kind. Our own nodes
    /// never block us.
    pub(crate) fn predecessor<'a>(&self, children: &'a [String], node: &str) -> Option<&'a str> {
        let (_, mine) = split_sequence(node)?;
        children
            .iter()
            .filter(|c| !c.starts_with(&self.owner))
            .filter_map(|c| {
                let (stem, seq) = split_sequence(c)?;
                let blocks = self.kind.blockers.iter().any(|b| stem.ends_with(b));
                (blocks && seq < mine).then_some((seq, c.as_str()))
            })
            .max()
            .map(|(_, c)| c)
    }

    async fn wait_turn(&self, attempt: &mut Attempt, wait: Wait) -> Result<Turn, Error> {
        let deadline = wait.deadline();
        let mut pause = Backoff::new();
        loop {
            let children = match retry(deadline, || self.client.get_children(&self.dir)).await {
                Ok((children, _)) => children,
                Err(e) if !e.is_definite() => return Ok(Turn::NotYet),
                Err(e) => return Err(e),
            };
            // Keep the lowest of our nodes: an earlier create whose outcome
            // was unknown may have made one below the node we know of.
            let ours: Vec<String> = self.ours(&children).into_iter().map(|(_, c)| c.to_string()).collect();
            let Some(node) = ours.first().cloned() else { return Ok(Turn::Vanished) };
            for extra in &ours[1..] {
                delete_if_exists(&self.client, &join(&self.dir, extra), None).await?;
            }
            attempt.node = Some(node.clone());
            let Some(predecessor) = self.predecessor(&children, &node) else { return Ok(Turn::Acquired) };
            if wait == Wait::No {
                return Ok(Turn::NotYet);
            }
            let predecessor = join(&self.dir, predecessor);
            let (stat, gone) = match self.client.exists_watch(&predecessor).await {
                Ok(r) => r,
                Err(e) if !e.is_definite() => {
                    if !pause.wait_until(deadline).await {
                        return Ok(Turn::NotYet);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            if stat.is_none() {
                continue;
            }
            match until(deadline, gone).await {
                None => return Ok(Turn::NotYet),
                // Any event (deleted, or its data changed): look again.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// Deletes every node of ours except `keep` (sweeping after creates whose
    /// outcome was unknown).
    async fn sweep(&self, keep: Option<&str>) -> Result<(), Error> {
        let children = match retry(None, || self.client.get_children(&self.dir)).await {
            Ok((children, _)) => children,
            Err(e) if e.code() == ErrorCode::NoNode => return Ok(()),
            Err(e) => return Err(e),
        };
        for child in children.iter().filter(|c| c.starts_with(&self.prefix) && Some(c.as_str()) != keep) {
            delete_if_exists(&self.client, &join(&self.dir, child), None).await?;
        }
        Ok(())
    }

    /// Removes what an unfinished acquisition may have left.
    async fn clean_up(&self, node: Option<&str>, ambiguous: bool) {
        let cleaned = if ambiguous {
            self.sweep(None).await
        } else if let Some(node) = node {
            delete_if_exists(&self.client, &join(&self.dir, node), None).await
        } else {
            Ok(())
        };
        if let Err(e) = cleaned {
            tracing::debug!(dir = %self.dir, error = %e, "could not clean up an abandoned lock attempt");
            self.state.lock().dirty = true;
        }
    }

    /// Drops one hold on `acquired`; returns it when that was the last one, to
    /// be released by the caller.
    fn unhold(&self, acquired: &Arc<Acquired>) -> Option<Arc<Acquired>> {
        let mut state = self.state.lock();
        let mut holds = acquired.holds.lock();
        *holds = holds.saturating_sub(1);
        if *holds > 0 {
            return None;
        }
        if state.current.as_ref().is_some_and(|c| Arc::ptr_eq(c, acquired)) {
            state.current = None;
        }
        state.releasing.insert(base_name(&acquired.held.path).to_string());
        Some(acquired.clone())
    }

    /// Deletes a released acquisition's node (and, after an ambiguous create,
    /// any other node of ours that may have appeared).
    async fn release(self: Arc<Self>, acquired: Arc<Acquired>) -> Result<(), Error> {
        let deleted = acquired.held.delete().await;
        let name = base_name(&acquired.held.path).to_string();
        self.state.lock().releasing.remove(&name);
        if acquired.ambiguous {
            let _gate = self.gate.clone().lock_owned().await;
            if let Err(e) = self.sweep(None).await {
                self.state.lock().dirty = true;
                return Err(e);
            }
        }
        deleted
    }

    /// The contenders' node names in queue order (every kind that counts as a
    /// lock node here, ours included).
    pub(crate) async fn contender_nodes(&self) -> Result<Vec<String>, Error> {
        let children = match retry(None, || self.client.get_children(&self.dir)).await {
            Ok((children, _)) => children,
            Err(e) if e.code() == ErrorCode::NoNode => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(sorted_contenders(&children, &[self.kind.blockers, &[self.kind.node_name]].concat()))
    }

    /// The data of each contender, in queue order.
    pub(crate) async fn contenders(&self) -> Result<Vec<Vec<u8>>, Error> {
        let nodes = self.contender_nodes().await?;
        let replies: Vec<_> = nodes.iter().map(|n| self.client.get_data(&join(&self.dir, n))).collect();
        let mut out = Vec::new();
        for reply in replies {
            match reply.await {
                Ok((data, _)) => out.push(data),
                Err(e) if e.code() == ErrorCode::NoNode => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// The children whose stem ends with one of `patterns`, by sequence number.
pub(crate) fn sorted_contenders(children: &[String], patterns: &[&str]) -> Vec<String> {
    let mut found: Vec<(i64, &String)> = children
        .iter()
        .filter_map(|c| {
            let (stem, seq) = split_sequence(c)?;
            patterns.iter().any(|p| stem.ends_with(p)).then_some((seq, c))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, c)| c.clone()).collect()
}

/// A held lock (of a [`Mutex`] or either side of an [`RwLock`]). Released when
/// dropped (in the background) or by [`LockGuard::release`].
///
/// [`RwLock`]: super::RwLock
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    core: Arc<LockCore>,
    acquired: Arc<Acquired>,
    released: bool,
}

impl LockGuard {
    pub(crate) fn new(core: Arc<LockCore>, acquired: Arc<Acquired>) -> LockGuard {
        LockGuard { core, acquired, released: false }
    }

    /// The lock node's czxid. Every grant of the lock gets a higher one than
    /// all grants before it, so a resource that refuses tokens lower than the
    /// highest it has seen is safe from a holder that lost the lock without
    /// knowing yet.
    pub fn fencing_token(&self) -> i64 {
        self.acquired.held.token
    }

    /// The lock node's path.
    pub fn node(&self) -> &str {
        &self.acquired.held.path
    }

    pub(crate) fn client(&self) -> &Client {
        &self.acquired.held.client
    }

    /// Resolves when this hold is lost (see [`LostReason`]); resolves with
    /// [`LostReason::Released`] once the lock is released instead.
    pub fn lost(&self) -> Lost {
        self.acquired.held.lost()
    }

    /// Why the hold is lost, if it is.
    pub fn lost_reason(&self) -> Option<LostReason> {
        self.acquired.held.lost_reason()
    }

    /// Releases this hold; the lock node is deleted when it is the handle's
    /// last one (re-entrance). A node already gone (the session expired)
    /// counts as released.
    ///
    /// # Errors
    /// Whatever stopped the deletion for good (e.g. NoAuth). The node then
    /// goes with the session.
    pub async fn release(mut self) -> Result<(), Error> {
        self.released = true;
        match self.core.unhold(&self.acquired) {
            Some(last) => self.core.clone().release(last).await,
            None => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Some(last) = self.core.unhold(&self.acquired) {
            let core = self.core.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn(async move {
                    if let Err(e) = core.release(last).await {
                        tracing::debug!(error = %e, "releasing a dropped lock guard");
                    }
                })),
                // No runtime to delete it from: it goes with the session.
                Err(_) => self.core.state.lock().dirty = true,
            }
        }
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("node", &self.node())
            .field("fencing_token", &self.fencing_token())
            .field("lost", &self.lost_reason())
            .finish()
    }
}

/// A fair, re-entrant distributed mutex (kazoo's `Lock` layout).
///
/// - **Fair**: granted in the order contenders asked (their sequence
///   numbers); each waiter watches only its predecessor.
/// - **Re-entrant per handle**: a handle (and its clones) that holds the
///   lock gets it again at once; the node goes with the last guard. Create
///   another `Mutex` for an independent contender.
/// - **Cancellable**: dropping an `acquire` future removes its node (in the
///   background); the timeout and try variants remove it themselves.
/// - **Session loss**: see [`LockGuard::lost`].
///
/// ```no_run
/// # async fn demo(client: corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::Mutex;
/// client.start_session(10_000).await?;
/// let mutex = Mutex::new(&client, "/locks/db-migration");
/// let guard = mutex.acquire().await?;
/// println!("holding {} with token {}", guard.node(), guard.fencing_token());
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Mutex {
    core: Arc<LockCore>,
    data: Arc<Vec<u8>>,
}

impl Mutex {
    /// A contender for the lock at `path` (created on first use), with kazoo's
    /// node names and no data. Nothing is sent until `acquire`.
    pub fn new(client: &Client, path: &str) -> Mutex {
        Mutex::with_options(client, path, LockOptions::default())
    }

    pub fn with_options(client: &Client, path: &str, options: LockOptions) -> Mutex {
        Mutex { core: Arc::new(LockCore::new(client, path, EXCLUSIVE, options.naming)), data: Arc::new(options.data) }
    }

    /// The lock's path (the parent of the contenders' nodes).
    pub fn path(&self) -> &str {
        &self.core.dir
    }

    /// Waits for the lock, as long as it takes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a session or for a bad path;
    /// SessionExpired if the session ends meanwhile; NoAuth. ConnectionLoss
    /// is retried, not returned.
    pub async fn acquire(&self) -> Result<LockGuard, Error> {
        let acquired = self.core.acquire(&self.data, Wait::Forever).await?;
        acquired
            .map(|a| LockGuard::new(self.core.clone(), a))
            .ok_or_else(|| Error::InvalidArgument("an acquisition without a deadline gave up".into()))
    }

    /// Waits for the lock for at most `timeout`; `None` if it was not granted
    /// by then (the attempt's node is removed).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        let wait = Wait::Until(Instant::now() + timeout);
        Ok(self.core.acquire(&self.data, wait).await?.map(|a| LockGuard::new(self.core.clone(), a)))
    }

    /// Takes the lock only if nobody holds it or waits for it now.
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        Ok(self.core.acquire(&self.data, Wait::No).await?.map(|a| LockGuard::new(self.core.clone(), a)))
    }

    /// Whether this handle holds the lock (and has not been told it lost it).
    pub fn is_held(&self) -> bool {
        self.core.current().is_some()
    }

    /// The data of every contender (holder first, then the waiters in order),
    /// as kazoo's `contenders()`.
    pub async fn contenders(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.core.contenders().await
    }
}

impl std::fmt::Debug for Mutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mutex").field("path", &self.core.dir).field("owner", &self.core.owner).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn core(kind: Kind, owner: &str) -> LockCore {
        let client = Client::connect(vec!["127.0.0.1:1".into()]).await.expect("valid endpoint");
        LockCore::with_owner(&client, "/l", kind, owner.to_string())
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn the_predecessor_is_the_closest_lower_blocker() {
        let c = core(EXCLUSIVE, "aaaa").await;
        let children = names(&[
            "bbbb__lock__0000000001",
            "cccc__lock__0000000003",
            "aaaa__lock__0000000004",
            "dddd__rlock__0000000002", // a reader: does not block an exclusive lock
            "_c_1234-lock-0000000000", // Curator's
            "eeee__lock__0000000005",  // behind us
            "leases",
        ]);
        assert_eq!(c.predecessor(&children, "aaaa__lock__0000000004"), Some("cccc__lock__0000000003"));
        assert_eq!(c.predecessor(&children, "aaaa__lock__0000000000"), None);
        let only_curator = names(&["_c_1234-lock-0000000000", "aaaa__lock__0000000001"]);
        assert_eq!(c.predecessor(&only_curator, "aaaa__lock__0000000001"), Some("_c_1234-lock-0000000000"));
        // Our own nodes never block us.
        let own = names(&["aaaa__lock__0000000001", "aaaa__lock__0000000002"]);
        assert_eq!(c.predecessor(&own, "aaaa__lock__0000000002"), None);
    }

    #[tokio::test]
    async fn our_nodes_are_found_by_prefix_lowest_first() {
        let c = core(EXCLUSIVE, "aaaa").await;
        let children = names(&["aaaa__lock__0000000009", "bbbb__lock__0000000001", "aaaa__lock__0000000003"]);
        let ours: Vec<&str> = c.ours(&children).into_iter().map(|(_, n)| n).collect();
        assert_eq!(ours, vec!["aaaa__lock__0000000003", "aaaa__lock__0000000009"]);
        c.state.lock().releasing.insert("aaaa__lock__0000000003".into());
        assert_eq!(c.ours(&children).len(), 1);
    }

    #[test]
    fn contenders_sort_by_sequence_whatever_the_prefix() {
        let children = names(&["zz__lock__0000000002", "aa__lock__0000000003", "mm__rlock__0000000001", "ready"]);
        assert_eq!(
            sorted_contenders(&children, &["__lock__", "__rlock__"]),
            names(&["mm__rlock__0000000001", "zz__lock__0000000002", "aa__lock__0000000003"])
        );
        assert_eq!(sorted_contenders(&children, &["__lock__"]), names(&["zz__lock__0000000002", "aa__lock__0000000003"]));
    }
}
