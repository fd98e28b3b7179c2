//! The Raft storage adapter against openraft's own conformance suite, on both backends, plus
//! the crash/restart and snapshot round trips Corral relies on.

// openraft's StorageError is large and fixed by its trait signatures.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use corral_server::raft::log_store::LogStore;
use corral_server::raft::state_machine::{StateMachine, TreeEvent};
use corral_server::raft::types::{zxid, Batch, Entry, LogId, StorageError, TypeConfig, Vote};
use corral_server::storage::{BackendError, FileBackend, LogBackend, MemBackend, SledBackend};
use corral_server::tree::{Acl, CreateMode, Txn, TxnOp};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    AnyError, CommittedLeaderId, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, StorageHelper,
    StorageIOError,
};

fn to_storage(e: BackendError) -> StorageError {
    StorageIOError::write(AnyError::new(&e)).into()
}

fn open(backend: Arc<dyn LogBackend>) -> Result<(LogStore, StateMachine), StorageError> {
    Ok((LogStore::new(backend.clone()), StateMachine::open(backend).map_err(to_storage)?))
}

struct MemBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, ()> for MemBuilder {
    async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError> {
        let (log, sm) = open(Arc::new(MemBackend::new()))?;
        Ok(((), log, sm))
    }
}

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| to_storage(e.into()))?;
        let backend = SledBackend::open(dir.path()).map_err(to_storage)?;
        let (log, sm) = open(Arc::new(backend))?;
        Ok((dir, log, sm))
    }
}

struct FileBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for FileBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| to_storage(e.into()))?;
        let backend = FileBackend::open(dir.path()).map_err(to_storage)?;
        let (log, sm) = open(Arc::new(backend))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_suite_file() -> Result<(), StorageError> {
    Suite::test_all(FileBuilder)
}

#[test]
fn openraft_suite_mem() -> Result<(), StorageError> {
    Suite::test_all(MemBuilder)
}

#[test]
fn openraft_suite_sled() -> Result<(), StorageError> {
    Suite::test_all(SledBuilder)
}

// --- helpers ---

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn create(path: &str, data: &str) -> Txn {
    Txn {
        time_ms: 1_700_000_000_000,
        session_id: 0,
        auth: vec![],
        op: TxnOp::Create {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            acl: Acl::open_unsafe(),
            mode: CreateMode::Persistent,
            ttl_ms: 0,
        },
    }
}

fn set(path: &str, data: &str) -> Txn {
    Txn {
        time_ms: 1_700_000_000_001,
        session_id: 0,
        auth: vec![],
        op: TxnOp::SetData { path: path.into(), data: data.as_bytes().to_vec(), version: -1 },
    }
}

fn normal(index: u64, txn: Txn) -> Entry {
    Entry { log_id: log_id(1, index), payload: EntryPayload::Normal(Batch { txns: vec![txn] }) }
}

/// A small history as openraft writes it: membership at 0 (`initialize`), blank at 1 (a new
/// leader's first entry), then creates and updates from 2 on. `n + 3` entries.
fn history(n: u64) -> Vec<Entry> {
    let mut out = vec![
        Entry { log_id: log_id(1, 0), payload: EntryPayload::Membership(Membership::new(vec![[1].into()], ())) },
        Entry { log_id: log_id(1, 1), payload: EntryPayload::Blank },
    ];
    for i in 3..3 + n {
        let txn = if i % 3 == 0 { set("/a", &format!("v{i}")) } else { create(&format!("/n{i}"), "x") };
        out.push(normal(i, txn));
    }
    out.insert(2, normal(3, create("/a", "first")));
    // Re-number after the insert so indexes stay consecutive.
    for (k, e) in out.iter_mut().enumerate() {
        e.log_id = log_id(1, k as u64);
    }
    out
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// (digest, node count, last applied) of a state machine.
fn fingerprint(sm: &StateMachine) -> (u64, usize, Option<LogId>) {
    let shared = sm.shared();
    let st = shared.read();
    (st.tree.digest(), st.tree.node_count(), st.last_applied)
}

// --- tests ---

#[test]
fn snapshot_restores_the_same_tree() -> Result<(), StorageError> {
    rt().block_on(async {
        let (_log, mut sm) = open(Arc::new(MemBackend::new()))?;
        sm.apply(history(20)).await?;
        let before = fingerprint(&sm);
        assert_eq!(before.2, Some(log_id(1, 22)));
        assert!(before.1 >= 14, "the history built a real tree: {before:?}");

        let snap = sm.get_snapshot_builder().await.build_snapshot().await?;
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 22)));
        assert_eq!(snap.meta.last_membership.log_id(), &Some(log_id(1, 0)));

        // Installed into a fresh member...
        let fresh = Arc::new(MemBackend::new());
        let (_log2, mut sm2) = open(fresh.clone())?;
        let mut rx = sm2.shared().subscribe_events();
        let mut receiving = sm2.begin_receiving_snapshot().await?;
        *receiving = *snap.snapshot;
        sm2.install_snapshot(&snap.meta, receiving).await?;
        assert_eq!(fingerprint(&sm2), before);
        assert_eq!(sm2.shared().applied_zxid(), zxid::of(22, 0));
        assert_eq!(*rx.recv().await.unwrap(), TreeEvent::SnapshotInstalled { zxid: zxid::of(22, 0) });
        assert_eq!(sm2.applied_state().await?.1, snap.meta.last_membership);

        // ...and the installed snapshot is what that member restarts from.
        fresh.crash();
        let sm3 = StateMachine::open(fresh).map_err(to_storage)?;
        assert_eq!(fingerprint(&sm3), before);
        Ok(())
    })
}

#[test]
fn crash_then_restart_replays_committed_log_after_snapshot() -> Result<(), StorageError> {
    rt().block_on(async {
        let backend = MemBackend::new();
        let entries = history(30);
        let (expected, snapshot_at);
        {
            let (mut log, mut sm) = open(Arc::new(backend.clone()))?;
            log.save_vote(&Vote::new(1, 1)).await?;
            log.blocking_append(entries[..15].to_vec()).await?;
            log.save_committed(Some(log_id(1, 14))).await?;
            sm.apply(entries[..15].to_vec()).await?;
            snapshot_at = sm.get_snapshot_builder().await.build_snapshot().await?.meta.last_log_id;
            log.purge(log_id(1, 10)).await?;

            log.blocking_append(entries[15..].to_vec()).await?;
            log.save_committed(Some(log_id(1, 30))).await?;
            sm.apply(entries[15..31].to_vec()).await?;
            expected = fingerprint(&sm);
            // The committed id is not synced by itself: the next durable write carries it.
            log.save_vote(&Vote::new(2, 1)).await?;
            // Never synced: lost at the crash below.
            log.save_committed(Some(log_id(1, 32))).await?;
        }
        assert_eq!(snapshot_at, Some(log_id(1, 14)));

        backend.crash();
        let (mut log, mut sm) = open(Arc::new(backend.clone()))?;
        assert_eq!(sm.shared().applied_zxid(), zxid::of(14, 0), "restored from the snapshot");
        assert_eq!(log.read_vote().await?, Some(Vote::new(2, 1)));
        assert_eq!(log.read_committed().await?, Some(log_id(1, 30)));

        let state = StorageHelper::new(&mut log, &mut sm).get_initial_state().await?;
        assert_eq!(state.committed, Some(log_id(1, 30)), "committed entries re-applied");
        assert_eq!(fingerprint(&sm), expected);
        assert_eq!(sm.shared().applied_zxid(), zxid::of(30, 0));
        Ok(())
    })
}

/// A leader replicates and commits entries while it syncs them itself (vendor/README.md), so the
/// commit index it saved may point past its durable log when it crashes: the recovered commit
/// point is the last entry on disk, and the restart re-applies up to it instead of failing on
/// entries it does not have.
#[test]
fn a_commit_index_past_the_durable_log_recovers_as_its_last_entry() -> Result<(), StorageError> {
    rt().block_on(async {
        let backend = MemBackend::new();
        let entries = history(20);
        {
            let (mut log, _sm) = open(Arc::new(backend.clone()))?;
            log.save_vote(&Vote::new(1, 1)).await?;
            log.blocking_append(entries[..15].to_vec()).await?;
            // Committed by the followers up to 20; the vote write below makes the index durable.
            log.save_committed(Some(log_id(1, 20))).await?;
            log.save_vote(&Vote::new(2, 1)).await?;
        }
        backend.crash();
        let (mut log, mut sm) = open(Arc::new(backend.clone()))?;
        assert_eq!(log.get_log_state().await?.last_log_id, Some(log_id(1, 14)));
        assert_eq!(log.read_committed().await?, Some(log_id(1, 14)));
        let state = StorageHelper::new(&mut log, &mut sm).get_initial_state().await?;
        assert_eq!(state.committed, Some(log_id(1, 14)));
        assert_eq!(sm.shared().applied_zxid(), zxid::of(14, 0));
        Ok(())
    })
}

type Opener = fn(&std::path::Path) -> Result<Arc<dyn LogBackend>, BackendError>;

/// The durable backends, by name, opened on a directory.
fn durable_backends() -> [(&'static str, Opener); 2] {
    [
        ("sled", |p| Ok(Arc::new(SledBackend::open(p)?) as Arc<dyn LogBackend>)),
        ("file", |p| Ok(Arc::new(FileBackend::open(p)?) as Arc<dyn LogBackend>)),
    ]
}

#[test]
fn restart_keeps_everything() -> Result<(), StorageError> {
    rt().block_on(async {
        for (name, open_backend) in durable_backends() {
            let dir = tempfile::tempdir().unwrap();
            let entries = history(10);
            let expected = {
                let (mut log, mut sm) = open(open_backend(dir.path()).map_err(to_storage)?)?;
                log.save_vote(&Vote::new(4, 1)).await?;
                log.blocking_append(entries.clone()).await?;
                log.save_committed(Some(log_id(1, 12))).await?;
                sm.apply(entries[..8].to_vec()).await?;
                sm.get_snapshot_builder().await.build_snapshot().await?;
                sm.apply(entries[8..].to_vec()).await?;
                fingerprint(&sm)
            };
            let (mut log, mut sm) = open(open_backend(dir.path()).map_err(to_storage)?)?;
            assert_eq!(log.read_vote().await?, Some(Vote::new(4, 1)), "{name}");
            assert_eq!(log.get_log_state().await?.last_log_id, Some(log_id(1, 12)), "{name}");
            assert_eq!(log.try_get_log_entries(..).await?, entries, "{name}");
            assert_eq!(sm.get_current_snapshot().await?.unwrap().meta.last_log_id, Some(log_id(1, 7)), "{name}");
            StorageHelper::new(&mut log, &mut sm).get_initial_state().await?;
            assert_eq!(fingerprint(&sm), expected, "{name}");
        }
        Ok(())
    })
}

#[test]
fn purge_then_read_returns_the_remaining_range() -> Result<(), StorageError> {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut backends = vec![Arc::new(MemBackend::new()) as Arc<dyn LogBackend>];
        for (name, open_backend) in durable_backends() {
            backends.push(open_backend(&dir.path().join(name)).map_err(to_storage)?);
        }
        for backend in backends {
            let mut log = LogStore::new(backend);
            let entries = history(17);
            log.blocking_append(entries.clone()).await?;
            log.purge(log_id(1, 6)).await?;

            let state = log.get_log_state().await?;
            assert_eq!(state.last_purged_log_id, Some(log_id(1, 6)));
            assert_eq!(state.last_log_id, Some(log_id(1, 19)));
            assert_eq!(log.try_get_log_entries(..).await?, entries[7..]);
            assert_eq!(log.try_get_log_entries(3..9).await?, entries[7..9]);
            assert_eq!(log.try_get_log_entries(8..=10).await?, entries[8..11]);
            assert_eq!(log.try_get_log_entries(20..).await?, vec![]);

            log.truncate(log_id(1, 15)).await?;
            assert_eq!(log.get_log_state().await?.last_log_id, Some(log_id(1, 14)));
            log.purge(log_id(1, 14)).await?;
            let state = log.get_log_state().await?;
            assert_eq!(state.last_log_id, Some(log_id(1, 14)), "all purged: last is the purged id");
            assert_eq!(log.try_get_log_entries(..).await?, vec![]);
        }
        Ok(())
    })
}

#[test]
fn one_append_call_is_one_sync() -> Result<(), StorageError> {
    rt().block_on(async {
        let backend = MemBackend::new();
        let mut log = LogStore::new(Arc::new(backend.clone()));
        log.blocking_append(history(100)).await?;
        assert_eq!(backend.sync_count(), 1);
        log.save_committed(Some(log_id(1, 50))).await?;
        assert_eq!(backend.sync_count(), 1, "committed id rides along with the next sync");
        Ok(())
    })
}

#[test]
fn apply_publishes_events_and_progress() -> Result<(), StorageError> {
    rt().block_on(async {
        let (_log, mut sm) = open(Arc::new(MemBackend::new()))?;
        let shared = sm.shared();
        let mut events = shared.subscribe_events();
        let mut applied = shared.subscribe_applied();

        let replies = sm.apply(history(3)).await?;
        assert_eq!(replies.len(), 6);
        assert_eq!(replies[1].results, vec![], "blank entry");
        assert!(replies[2].results[0].is_ok(), "create /a: {:?}", replies[2].results);
        assert_eq!(*applied.borrow_and_update(), zxid::of(5, 0));
        assert_eq!(shared.applied_zxid(), zxid::of(5, 0));
        shared.wait_applied(zxid::of(5, 0)).await;

        let TreeEvent::Applied(batch) = &*events.recv().await.unwrap() else { panic!("expected Applied") };
        let zxids: Vec<u64> = batch.iter().map(|e| e.zxid).collect();
        assert_eq!(zxids, [2, 3, 4, 5].map(|i| zxid::of(i, 0)));
        assert!(batch.iter().all(|e| !e.events.is_empty()));
        Ok(())
    })
}
