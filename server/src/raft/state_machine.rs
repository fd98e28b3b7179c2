//! openraft's [`RaftStateMachine`] over the data tree: decode entry → `tree.apply` → record
//! applied log id and membership. Nothing else happens here; ZooKeeper failures come back
//! inside [`Response`], only storage trouble is an error.
//!
//! The tree lives in memory and is made durable by snapshots alone: a restarted member loads
//! the latest snapshot ([`StateMachine::open`]) and openraft re-applies the committed log after
//! it. Snapshot bytes are a versioned envelope around the tree's snapshot format
//! (`DataTree::to_snapshot`), carrying the last applied log id and membership so that the bytes
//! alone rebuild the whole state machine. A build copies the tree out a part at a time while
//! applies go on (`DataTree::begin_snapshot`), then encodes and stores it on a blocking thread:
//! a snapshot of a million nodes must not stall writes for the second it takes.
//!
//! ## Lock order
//! `Inner::snapshot_lock` before `SharedState::tree`, never the reverse; the subscriber list is
//! only locked with neither held.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use corral_proto::ErrorCode;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, StorageIOError};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::types::{zxid, Entry, LogId, Response, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::storage::{BackendError, LogBackend, StoredSnapshot};
use crate::tree::{DataTree, SnapshotAbandoned, SnapshotWriter, TxnOp, WatchEvent};
use crate::watch::{SessionEnd, Watches};

/// The replicated state as of `last_applied`.
pub struct TreeState {
    pub tree: DataTree,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

impl TreeState {
    /// The zxid this replica is at: its last txn's, or the first zxid of its last entry when
    /// that carried no txn (a blank or membership entry). What replies report and what read
    /// barriers compare with.
    pub fn applied_zxid(&self) -> u64 {
        let entry = self.last_applied.map_or(0, |l| zxid::of(l.index, 0));
        self.tree.last_zxid().max(entry)
    }
}

/// The watch events of one applied txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEntry {
    /// The txn's zxid: the zxid of every change it made.
    pub zxid: u64,
    pub events: Vec<WatchEvent>,
}

/// What the watch layer learns from the state machine, in apply order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEvent {
    /// One `apply` batch: the entries that triggered at least one event, in log order.
    Applied(Vec<AppliedEntry>),
    /// The tree was replaced wholesale by a snapshot from the leader, as of `zxid`. Individual
    /// events are unknown, so every registered watch may have been triggered.
    SnapshotInstalled { zxid: u64 },
}

/// The state machine's state as the API layer sees it: readable at any time, with
/// notifications of progress.
pub struct SharedState {
    pub tree: RwLock<TreeState>,
    /// This member's watches and session connections. Locked only while the tree lock is held
    /// (write lock to dispatch, read lock to register), so both see one order of changes.
    pub watches: Mutex<Watches>,
    // Updated after the tree lock is released, so a reader that saw zxid N here finds a tree at
    // N or later.
    applied_tx: watch::Sender<u64>,
    // Unbounded and per subscriber, so the watch layer never misses an event by lagging, which a
    // bounded broadcast channel would allow.
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Arc<TreeEvent>>>>,
}

impl SharedState {
    fn new(state: TreeState) -> SharedState {
        let applied = state.applied_zxid();
        SharedState {
            tree: RwLock::new(state),
            watches: Mutex::new(Watches::default()),
            applied_tx: watch::Sender::new(applied),
            subscribers: Mutex::new(Vec::new()),
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, TreeState> {
        self.tree.read()
    }

    /// The zxid of the last applied change (see [`TreeState::applied_zxid`]), 0 before the first.
    pub fn applied_zxid(&self) -> u64 {
        *self.applied_tx.borrow()
    }

    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// Returns once everything up to `zxid` has been applied (ZooKeeper's `sync`, read-your-writes).
    pub async fn wait_applied(&self, zxid: u64) {
        let mut rx = self.subscribe_applied();
        // The sender lives as long as `self`, so this cannot fail while we borrow it.
        let _ = rx.wait_for(|applied| *applied >= zxid).await;
    }

    /// Every [`TreeEvent`] from now on, losslessly, until the receiver is dropped.
    pub fn subscribe_events(&self) -> mpsc::UnboundedReceiver<Arc<TreeEvent>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.lock().push(tx);
        rx
    }

    fn publish(&self, event: TreeEvent) {
        let mut subs = self.subscribers.lock();
        if subs.is_empty() {
            return;
        }
        let event = Arc::new(event);
        subs.retain(|tx| tx.send(event.clone()).is_ok());
    }

    fn set_applied(&self, zxid: u64) {
        self.applied_tx.send_replace(zxid);
    }
}

/// One member's state machine. Shares its backend with the member's `LogStore`.
pub struct StateMachine {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<SharedState>,
    backend: Arc<dyn LogBackend>,
    // Serializes storing snapshots, so a slow build never overwrites a newer installed one;
    // holds the last log id of the snapshot stored now.
    snapshot_lock: Mutex<Option<LogId>>,
    // One build at a time: the tree keeps one snapshot in progress.
    build_lock: tokio::sync::Mutex<()>,
    // Makes snapshot ids unique within this process.
    snapshot_seq: AtomicU64,
}

/// Builds snapshots in the background (see the module doc).
pub struct SnapshotBuilder {
    inner: Arc<Inner>,
}

impl StateMachine {
    /// Restores the state machine from the latest stored snapshot, or starts empty, with the
    /// default 1 MiB data limit.
    pub fn open(backend: Arc<dyn LogBackend>) -> Result<StateMachine, BackendError> {
        StateMachine::open_with_limit(backend, crate::tree::DEFAULT_MAX_DATA_LEN)
    }

    /// Like [`StateMachine::open`] with the member's data limit (`Config::max_data_len`), which,
    /// like ZooKeeper's jute.maxbuffer, must be the same on every member: the tree enforces it
    /// when applying, so members that disagree would apply the same entry differently.
    pub fn open_with_limit(backend: Arc<dyn LogBackend>, max_data_len: usize) -> Result<StateMachine, BackendError> {
        let state = match backend.load_snapshot()? {
            Some(stored) => {
                let (header, mut tree) = decode_envelope(&stored.data)?;
                tree.set_max_data_len(max_data_len);
                if header.last_applied != stored.meta.last_log_id {
                    return Err(BackendError::corrupt("stored snapshot disagrees with its metadata"));
                }
                TreeState { tree, last_applied: header.last_applied, membership: stored.meta.last_membership }
            }
            None => TreeState {
                tree: DataTree::with_max_data_len(max_data_len),
                last_applied: None,
                membership: StoredMembership::default(),
            },
        };
        Ok(StateMachine {
            inner: Arc::new(Inner {
                snapshot_lock: Mutex::new(state.last_applied),
                shared: Arc::new(SharedState::new(state)),
                backend,
                build_lock: tokio::sync::Mutex::new(()),
                snapshot_seq: AtomicU64::new(0),
            }),
        })
    }

    pub fn shared(&self) -> Arc<SharedState> {
        self.inner.shared.clone()
    }
}

// --- the snapshot envelope ---

const MAGIC: &[u8; 8] = b"CORRALSM";
const ENVELOPE_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// `MAGIC | version: u32 LE | header length: u32 LE | bincode(Header) | tree snapshot`. The tree
/// bytes go last and raw so that they are copied once, not re-encoded.
fn encode_envelope(header: &Header, tree: SnapshotWriter) -> Result<Vec<u8>, BackendError> {
    let header = bincode::serialize(header)?;
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&ENVELOPE_VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    tree.finish_into(&mut out);
    Ok(out)
}

fn decode_envelope(bytes: &[u8]) -> Result<(Header, DataTree), BackendError> {
    let corrupt = |what: &str| BackendError::corrupt(format!("state machine snapshot: {what}"));
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != ENVELOPE_VERSION {
        return Err(corrupt(&format!("unsupported version {version}")));
    }
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let rest = &bytes[16..];
    if rest.len() < header_len {
        return Err(corrupt("truncated header"));
    }
    let header: Header = bincode::deserialize(&rest[..header_len])?;
    let tree = DataTree::from_snapshot(&rest[header_len..]).map_err(|e| corrupt(&e.to_string()))?;
    Ok((header, tree))
}

fn snapshot_err(meta: Option<&SnapshotMeta>, verb: ErrorVerb, e: BackendError) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(meta.map(|m| m.signature())), verb, AnyError::new(&e)).into()
}

impl Inner {
    /// Stores `snapshot` unless a newer one is already stored.
    fn save_if_newer(&self, snapshot: &StoredSnapshot) -> Result<(), BackendError> {
        let mut stored = self.snapshot_lock.lock();
        if *stored > snapshot.meta.last_log_id {
            return Ok(());
        }
        self.backend.save_snapshot(snapshot)?;
        *stored = snapshot.meta.last_log_id;
        Ok(())
    }
}

/// Nodes copied per read-lock hold while a snapshot is built: small enough that a write waits
/// about a millisecond for the lock, large enough that a million nodes take a few hundred holds.
/// The simulator's trees are small: tiny parts there make its applies and snapshot installs
/// interleave with a build.
const SNAPSHOT_PART_NODES: usize = if cfg!(madsim) { 8 } else { 4096 };

/// Ends the tree's snapshot in progress however the build ends (done, abandoned, cancelled),
/// so the tree stops keeping the nodes it replaced.
struct TreeCopy<'a> {
    shared: &'a SharedState,
    // Some until the copy is done.
    writer: Option<SnapshotWriter>,
}

impl TreeCopy<'_> {
    fn end(&mut self) -> Option<SnapshotWriter> {
        let writer = self.writer.take()?;
        self.shared.tree.write().tree.end_snapshot(&writer);
        Some(writer)
    }
}

impl Drop for TreeCopy<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

impl SnapshotBuilder {
    /// The tree's snapshot bytes with the log position and membership they are as of. Copied a
    /// part at a time under the read lock, letting applies in between (a million nodes took
    /// over a second under one lock hold, stalling every write for that long); the tree keeps
    /// what those applies replace, so the copy is still the tree at one point.
    async fn copy_tree(&self) -> (Header, SnapshotWriter) {
        let shared = &*self.inner.shared;
        'begin: loop {
            let (header, writer) = {
                let mut st = shared.tree.write();
                let header = Header { last_applied: st.last_applied, membership: st.membership.clone() };
                (header, st.tree.begin_snapshot())
            };
            let mut copy = TreeCopy { shared, writer: Some(writer) };
            while let Some(writer) = copy.writer.as_mut() {
                let part = shared.read().tree.write_snapshot_part(writer, SNAPSHOT_PART_NODES);
                match part {
                    Ok(true) => {
                        if let Some(writer) = copy.end() {
                            return (header, writer);
                        }
                    }
                    Ok(false) => tokio::task::yield_now().await,
                    // A snapshot from the leader replaced the tree meanwhile: copy the new one.
                    Err(SnapshotAbandoned) => continue 'begin,
                }
            }
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let _one_build = self.inner.build_lock.lock().await;
        let started = tokio::time::Instant::now();
        let (header, tree) = self.copy_tree().await;
        let copied = started.elapsed();
        let seq = self.inner.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match header.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, seq),
            None => format!("0-0-{seq}"),
        };
        let meta = SnapshotMeta { last_log_id: header.last_applied, last_membership: header.membership.clone(), snapshot_id };
        // Encoding and the durable write of a hundred megabytes stay off the async workers.
        let inner = self.inner.clone();
        let save_meta = meta.clone();
        let saved = in_background(move || {
            let data = encode_envelope(&header, tree)?;
            let stored = StoredSnapshot { meta: save_meta, data };
            inner.save_if_newer(&stored)?;
            Ok::<_, BackendError>(stored)
        })
        .await;
        let stored = match saved {
            Ok(result) => result.map_err(|e| snapshot_err(Some(&meta), ErrorVerb::Write, e))?,
            Err(e) => {
                let e = BackendError::Io(std::io::Error::other(format!("snapshot save thread failed: {e}")));
                return Err(snapshot_err(Some(&meta), ErrorVerb::Write, e));
            }
        };
        tracing::info!(
            snapshot = %stored.meta.snapshot_id,
            bytes = stored.data.len(),
            copy_ms = copied.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "snapshot built and stored"
        );
        Ok(Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

/// Runs `work` on a thread of its own at a lower CPU priority (nice 10): a snapshot's encoding,
/// checksum and write take a second or more of CPU at a million znodes, and on a busy machine
/// they took it from request handling (set p99 at 10,000 writes/s went from 6 ms to over
/// 100 ms while the members snapshotted). Writes never wait for a snapshot, so it may take
/// longer. The simulator runs it inline: it must not start threads.
async fn in_background<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    #[cfg(not(madsim))]
    {
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("corral-snapshot".into())
            .spawn(move || {
                #[cfg(target_os = "linux")]
                // SAFETY: changes only the scheduling priority of the calling thread (PRIO_PROCESS
                // with a thread id); a failure leaves it as it was, which is harmless.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
                }
                let _ = done.send(work());
            })
            .map_err(|e| e.to_string())?;
        result.await.map_err(|_| "the snapshot thread ended without a result".to_string())
    }
    #[cfg(madsim)]
    {
        Ok(work())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let st = self.inner.shared.read();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let shared = &self.inner.shared;
        let mut replies = Vec::new();
        let mut applied = Vec::new();
        let applied_zxid = {
            let mut st = shared.tree.write();
            for entry in entries {
                let index = entry.log_id.index;
                // openraft never applies an entry twice to one instance; should it ever, the
                // tree must not see it again (a second Create would fail, a second SetData
                // would bump the version).
                if st.last_applied.is_some_and(|l| l.index >= index) {
                    tracing::warn!(%entry.log_id, "skipping re-application of an applied entry");
                    let n = match &entry.payload {
                        EntryPayload::Normal(batch) => batch.txns.len(),
                        _ => 0,
                    };
                    replies.push(Response { results: vec![Err(ErrorCode::RuntimeInconsistency); n] });
                    continue;
                }
                let results = match entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(batch) => {
                        let mut results = Vec::with_capacity(batch.txns.len());
                        for (position, txn) in batch.txns.iter().enumerate() {
                            let zxid = zxid::of(index, position);
                            let out = st.tree.apply(zxid, txn);
                            // Queued before the tree lock is released: no read can see this
                            // txn's effect before its watch events are on their way.
                            let mut watches = shared.watches.lock();
                            // The ended session's connection goes first, as ZooKeeper closes it
                            // before the deletes of its ephemerals notify anyone: it never hears
                            // about its own ephemerals going.
                            if out.result.is_ok() {
                                match txn.op {
                                    TxnOp::CloseSession { session_id } => {
                                        watches.session_ended(session_id, SessionEnd::Closed)
                                    }
                                    TxnOp::ExpireSession { session_id } => {
                                        watches.session_ended(session_id, SessionEnd::Expired)
                                    }
                                    _ => {}
                                }
                            }
                            watches.dispatch(zxid, &out.events);
                            drop(watches);
                            if !out.events.is_empty() {
                                applied.push(AppliedEntry { zxid, events: out.events });
                            }
                            results.push(out.result);
                        }
                        results
                    }
                    EntryPayload::Membership(m) => {
                        st.membership = StoredMembership::new(Some(entry.log_id), m);
                        Vec::new()
                    }
                };
                st.last_applied = Some(entry.log_id);
                replies.push(Response { results });
            }
            st.applied_zxid()
        };
        if !applied.is_empty() {
            shared.publish(TreeEvent::Applied(applied));
        }
        shared.set_applied(applied_zxid);
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { inner: self.inner.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<Cursor<Vec<u8>>>) -> Result<(), StorageError> {
        let err = |e| snapshot_err(Some(meta), ErrorVerb::Write, e);
        let data = snapshot.into_inner();
        let (header, mut tree) = decode_envelope(&data).map_err(err)?;
        tree.set_max_data_len(self.inner.shared.read().tree.max_data_len());
        if header.last_applied != meta.last_log_id {
            return Err(err(BackendError::corrupt(format!(
                "snapshot data is as of {:?} but its metadata says {:?}",
                header.last_applied, meta.last_log_id
            ))));
        }
        let zxid;
        {
            // Persist before swapping: once the tree moves past the log, a crash must find the
            // snapshot on disk.
            let mut stored = self.inner.snapshot_lock.lock();
            self.inner.backend.save_snapshot(&StoredSnapshot { meta: meta.clone(), data }).map_err(err)?;
            *stored = meta.last_log_id;
            let mut st = self.inner.shared.tree.write();
            *st = TreeState { tree, last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
            zxid = st.applied_zxid();
            self.inner.shared.watches.lock().drop_all();
        }
        self.inner.shared.publish(TreeEvent::SnapshotInstalled { zxid });
        self.inner.shared.set_applied(zxid);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored = self.inner.backend.load_snapshot().map_err(|e| snapshot_err(None, ErrorVerb::Read, e))?;
        Ok(stored.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_rejects_garbage() {
        assert!(decode_envelope(b"").is_err());
        assert!(decode_envelope(b"NOTASNAPSHOTATALL").is_err());
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        assert!(decode_envelope(&bytes).is_err(), "unknown version");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&ENVELOPE_VERSION.to_le_bytes());
        bytes.extend_from_slice(&100u32.to_le_bytes());
        assert!(decode_envelope(&bytes).is_err(), "truncated header");
    }
}
