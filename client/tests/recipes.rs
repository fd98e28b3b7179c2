//! The recipes against a real three-member ensemble: mutual exclusion under
//! member kills and session expiry (checked by a fenced shared resource that
//! detects overlap), FIFO grant order, read/write and semaphore limits, an
//! election that never has two believing leaders with valid sessions, a queue
//! that neither loses nor duplicates 10 000 items while consumers die, the
//! barriers, and the `corral lock/elect/queue` commands.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_client::recipes::{
    Barrier, DoubleBarrier, Election, LockNaming, LockOptions, LostReason, Mutex, Queue, RwLock, Semaphore,
};
use corral_client::{Client, Error, ErrorCode, SessionState};
use corral_server::testing::TestCluster;
use futures::StreamExt;
use parking_lot::Mutex as SyncMutex;

/// Nothing here should come near this; hitting it means a hang.
const DEADLINE: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f).await.unwrap_or_else(|_| panic!("{what}: no result within {DEADLINE:?}"))
}

async fn cluster() -> TestCluster {
    let c = TestCluster::start(3).await;
    c.wait_leader(Duration::from_secs(10)).await;
    c
}

/// A cluster with a 200 ms tick: sessions may be as short as 400 ms.
async fn fast_cluster() -> TestCluster {
    let c = TestCluster::start_with(3, |cfg| cfg.tick_ms = 200).await;
    c.wait_leader(Duration::from_secs(10)).await;
    c
}

async fn client(endpoints: &[String]) -> Client {
    Client::builder(endpoints.to_vec()).request_timeout(Duration::from_secs(5)).connect().await.expect("client")
}

async fn session(endpoints: &[String], timeout_ms: i32) -> Client {
    let c = client(endpoints).await;
    c.start_session(timeout_ms).await.expect("start session");
    c
}

/// A new session for a worker that starts over while members come and go:
/// as an application would, it tries again until a member takes it.
async fn fresh_session(endpoints: &[String], timeout_ms: i32) -> Client {
    let c = client(endpoints).await;
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        match c.start_session(timeout_ms).await {
            Ok(_) => return c,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("starting a session: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no session within {DEADLINE:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mutex_excludes_reenters_times_out_and_cleans_up() {
    let c = cluster().await;
    let eps = c.endpoints();
    let a = session(&eps, 10_000).await;
    let b = session(&eps, 10_000).await;
    let ma = Mutex::with_options(&a, "/locks/basic", LockOptions::new().data("a"));
    let mb = Mutex::with_options(&b, "/locks/basic", LockOptions::new().data("b"));

    let g1 = within("acquire", ma.acquire()).await.unwrap();
    assert!(ma.is_held() && !mb.is_held());
    assert!(g1.node().starts_with("/locks/basic/") && g1.node().contains("__lock__"), "{}", g1.node());
    // Re-entrant on the same handle (and its clones): the same node.
    let g2 = within("re-enter", ma.clone().acquire()).await.unwrap();
    assert_eq!((g2.node(), g2.fencing_token()), (g1.node(), g1.fencing_token()));
    // Another handle can't have it.
    assert!(mb.try_acquire().await.unwrap().is_none());
    let started = tokio::time::Instant::now();
    assert!(mb.acquire_timeout(Duration::from_millis(300)).await.unwrap().is_none());
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Neither left a node behind.
    let (kids, _) = a.get_children("/locks/basic").await.unwrap();
    assert_eq!(kids.len(), 1, "{kids:?}");

    // One release of a re-entered lock keeps it; the last one frees it.
    g2.release().await.unwrap();
    assert!(mb.try_acquire().await.unwrap().is_none());
    let waiting = tokio::spawn({
        let mb = mb.clone();
        async move { mb.acquire().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ma.contenders().await.unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
    drop(g1); // released in the background
    let gb = within("b gets it", waiting).await.unwrap().unwrap();
    assert!(gb.fencing_token() > 0);
    let first_token = gb.fencing_token();
    gb.release().await.unwrap();
    let again = ma.acquire().await.unwrap();
    assert!(again.fencing_token() > first_token, "tokens grow with every grant");

    // A cancelled acquire (its future dropped) removes its node.
    let pending = mb.acquire();
    let _ = tokio::time::timeout(Duration::from_millis(300), pending).await;
    let gone = within("the cancelled node goes", async {
        loop {
            let (kids, _) = a.get_children("/locks/basic").await.unwrap();
            if kids.len() == 1 {
                return kids;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(format!("/locks/basic/{}", gone[0]), again.node());
    // Cancelled at every stage, the create still on its way included: no
    // node is left behind either.
    for i in 0..20u64 {
        let _ = tokio::time::timeout(Duration::from_micros(500 * i), mb.acquire()).await;
    }
    let kept = within("every cancelled node goes", async {
        loop {
            let (kids, _) = a.get_children("/locks/basic").await.unwrap();
            if kids.len() == 1 {
                return kids;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(format!("/locks/basic/{}", kept[0]), again.node());
    again.release().await.unwrap();

    // Curator's names also work, and both kinds exclude each other.
    let curator = Mutex::with_options(&b, "/locks/basic", LockOptions::new().naming(LockNaming::Curator));
    let gc = curator.acquire().await.unwrap();
    assert!(gc.node().contains("/_c_") && gc.node().contains("-lock-"), "{}", gc.node());
    assert!(ma.try_acquire().await.unwrap().is_none());
    gc.release().await.unwrap();
    assert!(ma.try_acquire().await.unwrap().is_some());

    // Without a session: a clear error, nothing sent.
    let bare = client(&eps).await;
    let err = Mutex::new(&bare, "/locks/basic").acquire().await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_mutex_is_granted_in_request_order() {
    let c = cluster().await;
    let eps = c.endpoints();
    let holder = session(&eps, 10_000).await;
    let first = Mutex::new(&holder, "/locks/fifo").acquire().await.unwrap();
    let order = Arc::new(SyncMutex::new(Vec::new()));
    let mut waiters = Vec::new();
    let mut clients = Vec::new();
    for i in 0..8 {
        let c = session(&eps, 10_000).await;
        let m = Mutex::with_options(&c, "/locks/fifo", LockOptions::new().data(format!("{i}")));
        let order = order.clone();
        waiters.push(tokio::spawn(async move {
            let g = m.acquire().await.unwrap();
            order.lock().push(i);
            tokio::time::sleep(Duration::from_millis(20)).await;
            g.release().await.unwrap();
        }));
        clients.push(c);
        // Wait until waiter i is queued before starting the next one.
        within("queued", async {
            loop {
                let (kids, _) = holder.get_children("/locks/fifo").await.unwrap();
                if kids.len() == i + 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
    first.release().await.unwrap();
    for w in waiters {
        within("waiter", w).await.unwrap();
    }
    assert_eq!(*order.lock(), (0..8).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holders_hear_of_expiry_and_of_their_node_being_deleted() {
    let c = fast_cluster().await;
    let eps = c.endpoints();
    let other = session(&eps, 4000).await;

    // Someone deletes the lock node.
    let a = session(&eps, 4000).await;
    let g = Mutex::new(&a, "/locks/lost").acquire().await.unwrap();
    assert_eq!(g.lost_reason(), None);
    other.delete(g.node(), None).await.unwrap();
    assert_eq!(within("lost", g.lost()).await, LostReason::NodeDeleted);
    assert_eq!(g.lost_reason(), Some(LostReason::NodeDeleted));
    drop(g);

    // The session expires (the client stops pinging, as a hung process would).
    let doomed = session(&eps, 1000).await;
    let m = Mutex::new(&doomed, "/locks/lost");
    let g = m.acquire().await.unwrap();
    let lost = g.lost();
    doomed.pause_pings_for_test(true);
    let reason = within("lost on expiry", lost).await;
    assert!(matches!(reason, LostReason::SessionExpired | LostReason::NodeDeleted), "{reason:?}");
    assert!(!m.is_held());
    // Whoever waits gets it, with a higher fencing token.
    let next = within("the next holder", Mutex::new(&other, "/locks/lost").acquire()).await.unwrap();
    assert!(next.fencing_token() > g.fencing_token());
    within("expired", async {
        while doomed.session_state() != SessionState::Expired {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(g.lost_reason(), Some(reason));
    // Releasing a lost lock is fine (the node went with the session).
    g.release().await.unwrap();
    let err = m.acquire().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::SessionExpired, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_share_writers_exclude_and_semaphores_count() {
    let c = cluster().await;
    let eps = c.endpoints();
    let a = session(&eps, 10_000).await;
    let b = session(&eps, 10_000).await;
    let rw_a = RwLock::new(&a, "/locks/rw");
    let rw_b = RwLock::new(&b, "/locks/rw");
    let r1 = rw_a.read().await.unwrap();
    let r2 = within("second reader", rw_b.read()).await.unwrap();
    assert!(rw_b.try_write().await.unwrap().is_none());
    // A writer waits for both readers, and the readers after it wait for it.
    let writer = tokio::spawn({
        let rw_b = rw_b.clone();
        async move { rw_b.write().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c2 = session(&eps, 10_000).await;
    let late_reader = RwLock::new(&c2, "/locks/rw");
    assert!(late_reader.try_read().await.unwrap().is_none(), "a queued writer holds back later readers");
    r1.release().await.unwrap();
    r2.release().await.unwrap();
    let w = within("writer", writer).await.unwrap().unwrap();
    assert!(rw_a.try_read().await.unwrap().is_none());
    // A writer excludes a plain mutex too (same node names as kazoo's).
    assert!(Mutex::new(&a, "/locks/rw").try_acquire().await.unwrap().is_none());
    // Downgrade: the writer's handle may read.
    let down = within("downgrade", rw_b.read()).await.unwrap();
    w.release().await.unwrap();
    assert!(rw_a.try_read().await.unwrap().is_some());
    down.release().await.unwrap();

    // A semaphore with 2 leases.
    let sems: Vec<Semaphore> = vec![
        Semaphore::with_data(&a, "/sem/two", 2, "a"),
        Semaphore::with_data(&b, "/sem/two", 2, "b"),
        Semaphore::with_data(&c2, "/sem/two", 2, "c"),
    ];
    let l1 = sems[0].acquire().await.unwrap();
    let l2 = sems[1].acquire().await.unwrap();
    assert!(sems[2].try_acquire().await.unwrap().is_none());
    assert!(sems[2].acquire_timeout(Duration::from_millis(200)).await.unwrap().is_none());
    let mut holders = sems[0].lease_holders().await.unwrap();
    holders.sort();
    assert_eq!(holders, vec![b"a".to_vec(), b"b".to_vec()]);
    let third = tokio::spawn({
        let s = sems[2].clone();
        async move { s.acquire().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!third.is_finished());
    l1.release().await.unwrap();
    let l3 = within("third lease", third).await.unwrap().unwrap();
    assert!(l3.fencing_token() > l2.fencing_token());
    // The count is stored, and a handle that disagrees is refused.
    assert_eq!(a.get_data("/sem/two").await.unwrap().0, b"2".to_vec());
    let err = Semaphore::new(&a, "/sem/two", 3).try_acquire().await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    drop(l2);
    drop(l3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn barriers_hold_until_lowered_and_double_barriers_until_all_arrive_and_leave() {
    let c = cluster().await;
    let eps = c.endpoints();
    let a = session(&eps, 10_000).await;
    let gate = Barrier::new(&a, "/barriers/gate");
    gate.create().await.unwrap();
    assert!(!gate.wait_timeout(Duration::from_millis(200)).await.unwrap());
    let waiter = tokio::spawn({
        let gate = gate.clone();
        async move { gate.wait().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(gate.remove().await.unwrap());
    within("barrier down", waiter).await.unwrap().unwrap();
    assert!(!gate.remove().await.unwrap());
    assert!(gate.wait_timeout(Duration::from_millis(10)).await.unwrap());

    let arrived = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let left = Arc::new(AtomicUsize::new(0));
    let mut members = Vec::new();
    for i in 0..3u64 {
        let s = session(&eps, 10_000).await;
        let (arrived, entered_, left_) = (arrived.clone(), entered.clone(), left.clone());
        members.push(tokio::spawn(async move {
            let b = DoubleBarrier::new(&s, "/barriers/double", 3);
            tokio::time::sleep(Duration::from_millis(150 * i)).await;
            arrived.fetch_add(1, Ordering::SeqCst);
            b.enter().await.unwrap();
            // Nobody is through before everyone arrived.
            assert_eq!(arrived.load(Ordering::SeqCst), 3);
            entered_.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100 * (3 - i))).await;
            b.leave().await.unwrap();
            // Nobody leaves before everyone finished.
            assert_eq!(entered_.load(Ordering::SeqCst), 3);
            left_.fetch_add(1, Ordering::SeqCst);
            s
        }));
        if i == 1 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert_eq!(entered.load(Ordering::SeqCst), 0, "two of three is not enough");
        }
    }
    for m in members {
        within("double barrier", m).await.unwrap();
    }
    assert_eq!((entered.load(Ordering::SeqCst), left.load(Ordering::SeqCst)), (3, 3));
    let (kids, _) = a.get_children("/barriers/double").await.unwrap();
    assert!(kids.is_empty(), "{kids:?}");
    // Too few members: entering times out and leaves no node.
    let lonely = DoubleBarrier::new(&a, "/barriers/lonely", 2);
    assert!(!lonely.enter_timeout(Duration::from_millis(200)).await.unwrap());
    assert!(a.get_children("/barriers/lonely").await.unwrap().0.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_is_fifo_by_priority_bounded_and_hands_back_dropped_items() {
    let c = cluster().await;
    let eps = c.endpoints();
    let a = session(&eps, 10_000).await;
    let b = session(&eps, 10_000).await;
    let qa = Queue::new(&a, "/queues/basic");
    let qb = Queue::new(&b, "/queues/basic");
    for i in 0..5 {
        qa.put(format!("item-{i}").as_bytes()).await.unwrap();
    }
    qa.put_with_priority(b"urgent", 1).await.unwrap();
    qa.put_all(&[b"batch-1".to_vec(), b"batch-2".to_vec()], 100).await.unwrap();
    assert_eq!(qa.len().await.unwrap(), 8);
    let first = qb.take().await.unwrap();
    assert_eq!((first.data(), first.priority()), (&b"urgent"[..], Some(1)));
    // Claimed items are not handed out twice.
    let second = qa.take().await.unwrap();
    assert_eq!(second.data(), b"item-0");
    let third = qb.take().await.unwrap();
    assert_eq!(third.data(), b"item-1");
    first.ack().await.unwrap();
    // Dropped unacknowledged: handed back (to the front, by name order, for
    // a consumer that lists the queue afresh).
    drop(second);
    within("handed back", async {
        while a.get_children("/queues/basic/taken").await.unwrap().0.len() > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let again = Queue::new(&a, "/queues/basic").try_take().await.unwrap().expect("an item");
    assert_eq!(again.data(), b"item-0");
    again.release().await.unwrap();
    let mut rest = Vec::new();
    while let Some(item) = Queue::new(&a, "/queues/basic").try_take().await.unwrap() {
        rest.push(String::from_utf8(item.data().to_vec()).unwrap());
        item.ack().await.unwrap();
    }
    assert_eq!(rest, vec!["item-0", "item-2", "item-3", "item-4", "batch-1", "batch-2"]);
    third.ack().await.unwrap();
    assert_eq!(qa.len().await.unwrap(), 0);
    // An empty queue: take waits for a put.
    assert!(qb.take_timeout(Duration::from_millis(200)).await.unwrap().is_none());
    let taker = tokio::spawn({
        let qb = qb.clone();
        async move { qb.take().await.map(|c| c.data().to_vec()) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    qa.put(b"late").await.unwrap();
    assert_eq!(within("take waits", taker).await.unwrap().unwrap(), b"late".to_vec());

    // A bounded queue makes producers wait for room.
    let bounded = Queue::bounded(&a, "/queues/bounded", 2);
    bounded.put(b"1").await.unwrap();
    bounded.put(b"2").await.unwrap();
    assert!(!bounded.put_timeout(b"3", Duration::from_millis(200)).await.unwrap());
    let producer = tokio::spawn({
        let bounded = bounded.clone();
        async move { bounded.put(b"3").await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!producer.is_finished(), "the producer waits while the queue is full");
    Queue::new(&b, "/queues/bounded").take().await.unwrap().ack().await.unwrap();
    within("room", producer).await.unwrap().unwrap();
    assert_eq!(bounded.len().await.unwrap(), 2);
    // Takes cancelled at every stage leave no claim behind.
    let cq = Queue::new(&a, "/queues/cancel");
    cq.put_all(&[b"1".to_vec(), b"2".to_vec(), b"3".to_vec()], 100).await.unwrap();
    for i in 0..20u64 {
        let _ = tokio::time::timeout(Duration::from_micros(700 * i), cq.take()).await;
    }
    within("cancelled claims go", async {
        while !a.get_children("/queues/cancel/taken").await.unwrap().0.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(cq.len().await.unwrap(), 3);
    // Put markers do not pile up: one per producer handle.
    let (markers, _) = a.get_children("/queues/bounded/puts").await.unwrap();
    assert!(markers.len() <= 1, "{markers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_election_observes_hands_over_and_resigns_in_order() {
    let c = cluster().await;
    let eps = c.endpoints();
    let watcher = session(&eps, 10_000).await;
    let mut changes = Election::new(&watcher, "/election/basic").observe();
    assert_eq!(within("no leader yet", changes.next()).await.unwrap().unwrap(), None);
    let mut candidates = Vec::new();
    for name in ["a", "b", "c"] {
        candidates.push((name, session(&eps, 10_000).await));
    }
    let a = Election::new(&candidates[0].1, "/election/basic");
    let lead_a = a.campaign("a").await.unwrap();
    let info = within("a leads", changes.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((info.value.as_slice(), info.fencing_token), (&b"a"[..], lead_a.fencing_token()));
    assert_eq!(info.session_id, candidates[0].1.session_id());
    let mut waiting = Vec::new();
    for (name, s) in &candidates[1..] {
        let e = Election::new(s, "/election/basic");
        let name = name.to_string();
        waiting.push(tokio::spawn(async move { (name.clone(), e.campaign(name.into_bytes()).await) }));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(a.contenders().await.unwrap(), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    // A new value is seen by observers.
    lead_a.proclaim(b"a2").await.unwrap();
    let info = within("proclaimed", changes.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(info.value, b"a2".to_vec());
    assert_eq!(a.leader().await.unwrap().unwrap().value, b"a2".to_vec());
    lead_a.resign().await.unwrap();
    let (name, lead_b) = within("b", waiting.remove(0)).await.unwrap();
    let lead_b = lead_b.unwrap();
    assert_eq!(name, "b");
    let info = within("b leads", changes.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(info.value, b"b".to_vec());
    assert!(info.fencing_token > 0 && lead_b.fencing_token() == info.fencing_token);
    lead_b.resign().await.unwrap();
    let (name, lead_c) = within("c", waiting.remove(0)).await.unwrap();
    assert_eq!(name, "c");
    assert_eq!(within("c leads", changes.next()).await.unwrap().unwrap().unwrap().value, b"c".to_vec());
    drop(lead_c);
    assert_eq!(within("nobody", changes.next()).await.unwrap().unwrap(), None);
}

// ---------------------------------------------------------------------------
// Mutual exclusion under failures.

/// The protected resource: remembers the highest fencing token it has seen,
/// refuses lower ones, and records every time a holder entered while another
/// was still inside.
#[derive(Default)]
struct Resource {
    state: SyncMutex<ResourceState>,
}

#[derive(Default)]
struct ResourceState {
    inside: Option<(usize, i64)>,
    highest: i64,
    /// (displaced worker, its token, the newcomer's token)
    overlaps: Vec<(usize, i64, i64)>,
    /// Tokens refused because a later one had been seen.
    fenced: Vec<i64>,
    entries: usize,
}

impl Resource {
    fn enter(&self, who: usize, token: i64) -> Result<(), ()> {
        let mut s = self.state.lock();
        if token < s.highest {
            s.fenced.push(token);
            return Err(());
        }
        if let Some((other, t)) = s.inside {
            s.overlaps.push((other, t, token));
        }
        s.highest = token;
        s.inside = Some((who, token));
        s.entries += 1;
        Ok(())
    }

    /// One write of the protected work.
    fn step(&self, who: usize, token: i64) -> Result<(), ()> {
        let mut s = self.state.lock();
        if token < s.highest {
            s.fenced.push(token);
            return Err(());
        }
        assert_eq!(s.inside, Some((who, token)), "worker {who} writes while not inside");
        Ok(())
    }

    fn exit(&self, who: usize, token: i64) {
        let mut s = self.state.lock();
        if s.inside == Some((who, token)) {
            s.inside = None;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_holds_through_member_kills_and_session_expiry() {
    const WORKERS: usize = 5;
    const RUN: Duration = Duration::from_secs(12);
    let mut c = fast_cluster().await;
    let eps = c.endpoints();
    let resource = Arc::new(Resource::default());
    let stop = Arc::new(AtomicBool::new(false));
    // A worker the test has chosen to hang (it stops pinging while holding
    // the lock, as a process in a long GC pause would).
    let doomed: Arc<Vec<AtomicBool>> = Arc::new((0..WORKERS).map(|_| AtomicBool::new(false)).collect());
    let clients: Arc<Vec<SyncMutex<Option<Client>>>> = Arc::new((0..WORKERS).map(|_| SyncMutex::new(None)).collect());
    let lost_tokens = Arc::new(SyncMutex::new(BTreeMap::<i64, LostReason>::new()));
    let expirations = Arc::new(AtomicUsize::new(0));
    // Every other hang is "deaf" (see below).
    let deaf_hangs = Arc::new(AtomicBool::new(false));

    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (eps, resource, stop, doomed, clients, lost_tokens, expirations, deaf_hangs) = (
            eps.clone(),
            resource.clone(),
            stop.clone(),
            doomed.clone(),
            clients.clone(),
            lost_tokens.clone(),
            expirations.clone(),
            deaf_hangs.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut acquired = 0usize;
            'sessions: while !stop.load(Ordering::SeqCst) {
                let client = fresh_session(&eps, 2000).await;
                *clients[w].lock() = Some(client.clone());
                let mutex = Mutex::with_options(&client, "/locks/mx", LockOptions::new().data(format!("worker {w}")));
                while !stop.load(Ordering::SeqCst) {
                    let guard = match mutex.acquire().await {
                        Ok(g) => g,
                        Err(e) if e.code() == ErrorCode::SessionExpired => {
                            let _ = client.close_session().await;
                            continue 'sessions;
                        }
                        Err(e) => panic!("worker {w}: acquire: {e}"),
                    };
                    acquired += 1;
                    let token = guard.fencing_token();
                    resource.enter(w, token).unwrap_or_else(|()| panic!("worker {w}: a fresh grant ({token}) was fenced"));
                    let mut lost = guard.lost();
                    let started = tokio::time::Instant::now();
                    let mut steps = 0;
                    let verdict = loop {
                        // A hung process that doesn't even look at its lost
                        // future: only fencing stops its writes.
                        let deaf = doomed[w].load(Ordering::SeqCst) && deaf_hangs.load(Ordering::SeqCst);
                        tokio::select! {
                            reason = &mut lost, if !deaf => break Some(reason),
                            () = tokio::time::sleep(Duration::from_millis(15)) => {}
                        }
                        if resource.step(w, token).is_err() {
                            // Someone with a later token got in: we must have
                            // lost the lock. Stop writing and find out why.
                            break None;
                        }
                        steps += 1;
                        let hanging = doomed[w].load(Ordering::SeqCst);
                        if !hanging && steps >= 3 {
                            break Some(LostReason::Released);
                        }
                        assert!(started.elapsed() < Duration::from_secs(15), "worker {w} hung for too long");
                    };
                    resource.exit(w, token);
                    let reason = match verdict {
                        Some(LostReason::Released) => {
                            guard.release().await.unwrap_or_else(|e| panic!("worker {w}: release: {e}"));
                            continue;
                        }
                        Some(reason) => reason,
                        None => within("lost after being fenced", guard.lost()).await,
                    };
                    lost_tokens.lock().insert(token, reason);
                    if doomed[w].load(Ordering::SeqCst) {
                        expirations.fetch_add(1, Ordering::SeqCst);
                    }
                    drop(guard);
                    // Start over with a new session, as an application would.
                    within("the old session ends", async {
                        while !client.session_state().is_terminal() && doomed[w].load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    })
                    .await;
                    let _ = client.close_session().await;
                    doomed[w].store(false, Ordering::SeqCst);
                    continue 'sessions;
                }
            }
            acquired
        }));
    }

    // The nemesis: every ~1.5 s, kill a member, bring one back, or hang the
    // current holder.
    let started = tokio::time::Instant::now();
    let mut down: Option<u64> = None;
    let mut round = 0u64;
    let mut hangs = 0;
    while started.elapsed() < RUN {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        round += 1;
        match (round % 3, down) {
            (0, None) => {
                let victim = 1 + round % 3;
                c.kill(victim).await;
                down = Some(victim);
            }
            (_, Some(id)) if round % 3 != 2 => {
                c.restart(id).await;
                down = None;
            }
            _ => {
                let inside = resource.state.lock().inside;
                let idle = doomed.iter().all(|d| !d.load(Ordering::SeqCst));
                if let (Some((w, _)), true) = (inside, idle) {
                    deaf_hangs.store(hangs % 2 == 0, Ordering::SeqCst);
                    doomed[w].store(true, Ordering::SeqCst);
                    if let Some(client) = clients[w].lock().as_ref() {
                        client.pause_pings_for_test(true);
                        hangs += 1;
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    if let Some(id) = down {
        c.restart(id).await;
    }
    let mut total = 0;
    for w in workers {
        total += tokio::time::timeout(Duration::from_secs(30), w).await.expect("worker stops").expect("worker");
    }
    let s = resource.state.lock();
    let lost = lost_tokens.lock();
    eprintln!(
        "{} grants ({total} acquisitions), {} overlaps, {} fenced writes, {hangs} hangs, {} expirations seen, lost: {:?}",
        s.entries,
        s.overlaps.len(),
        s.fenced.len(),
        expirations.load(Ordering::SeqCst),
        lost.values().collect::<Vec<_>>()
    );
    assert!(total >= 20, "too little progress: {total}");
    assert!(hangs >= 1, "the nemesis never hung a holder");
    assert!(expirations.load(Ordering::SeqCst) >= 1);
    // Two holders only ever overlapped when the earlier one had lost its
    // session (and was told so); fencing refused its later writes.
    for (other, token, newcomer) in &s.overlaps {
        assert!(lost.contains_key(token), "worker {other} (token {token}) overlapped {newcomer} without losing the lock");
    }
    for token in &s.fenced {
        assert!(lost.contains_key(token), "token {token} fenced but never reported lost");
    }
}

// ---------------------------------------------------------------------------
// Election safety.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_election_never_has_two_believing_leaders_with_valid_sessions() {
    const CANDIDATES: usize = 4;
    const RUN: Duration = Duration::from_secs(12);
    let mut c = fast_cluster().await;
    let eps = c.endpoints();
    let checker = client(&eps).await.linearizable();
    // Who believes it leads: candidate → (node, token).
    let believers: Arc<SyncMutex<BTreeMap<usize, (String, i64)>>> = Arc::default();
    let violations: Arc<SyncMutex<Vec<String>>> = Arc::default();
    let terms = Arc::new(AtomicUsize::new(0));
    let doomed: Arc<Vec<AtomicBool>> = Arc::new((0..CANDIDATES).map(|_| AtomicBool::new(false)).collect());
    let clients: Arc<Vec<SyncMutex<Option<Client>>>> = Arc::new((0..CANDIDATES).map(|_| SyncMutex::new(None)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let deaf = Arc::new(AtomicUsize::new(0));
    let deaf_hang = Arc::new(AtomicBool::new(false));
    let stale = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..CANDIDATES {
        let (deaf, deaf_hang, stale) = (deaf.clone(), deaf_hang.clone(), stale.clone());
        let (eps, believers, violations, terms, doomed, clients, stop, checker) = (
            eps.clone(),
            believers.clone(),
            violations.clone(),
            terms.clone(),
            doomed.clone(),
            clients.clone(),
            stop.clone(),
            checker.clone(),
        );
        tasks.push(tokio::spawn(async move {
            'sessions: while !stop.load(Ordering::SeqCst) {
                let client = fresh_session(&eps, 2000).await;
                *clients[i].lock() = Some(client.clone());
                let election = Election::new(&client, "/election/safety");
                while !stop.load(Ordering::SeqCst) {
                    let leadership = match election.campaign(format!("candidate {i}")).await {
                        Ok(l) => l,
                        Err(e) if e.code() == ErrorCode::SessionExpired => {
                            let _ = client.close_session().await;
                            continue 'sessions;
                        }
                        Err(e) => panic!("candidate {i}: {e}"),
                    };
                    terms.fetch_add(1, Ordering::SeqCst);
                    // Before acting as the leader: does anyone else believe
                    // it while their session (so their node) still lives?
                    let others: Vec<(usize, (String, i64))> =
                        believers.lock().iter().map(|(k, v)| (*k, v.clone())).collect();
                    believers.lock().insert(i, (leadership.node().to_string(), leadership.fencing_token()));
                    for (other, (node, token)) in others {
                        match checker.exists(&node).await {
                            Ok(Some(stat)) => violations.lock().push(format!(
                                "candidate {i} elected while {other} (token {token}, node {node}, session {:#x}) still believes it leads",
                                stat.ephemeral_owner
                            )),
                            // It believes, but its session (and node) is gone:
                            // allowed, and fencing tokens tell them apart.
                            Ok(None) => {
                                assert!(leadership.fencing_token() > token);
                                stale.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => panic!("checking {node}: {e}"),
                        }
                    }
                    let mut lost = leadership.lost();
                    let term = tokio::time::sleep(Duration::from_millis(100));
                    tokio::pin!(term);
                    let mut deafened = false;
                    let reason = loop {
                        if doomed[i].load(Ordering::SeqCst) && deaf_hang.load(Ordering::SeqCst) && !deafened {
                            // A deaf hung leader: it keeps believing for a
                            // while after its session expired (and someone
                            // else was elected), until it looks again.
                            deafened = true;
                            deaf.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_secs(6)).await;
                        }
                        tokio::select! {
                            reason = &mut lost => break Some(reason),
                            () = &mut term, if !doomed[i].load(Ordering::SeqCst) => break None,
                            () = tokio::time::sleep(Duration::from_millis(50)) => {}
                        }
                    };
                    // Stop believing before stepping down.
                    believers.lock().remove(&i);
                    match reason {
                        None => leadership.resign().await.unwrap_or_else(|e| panic!("candidate {i}: resign: {e}")),
                        Some(_) => {
                            drop(leadership);
                            within("the hung session ends", async {
                                while !client.session_state().is_terminal() && doomed[i].load(Ordering::SeqCst) {
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                            })
                            .await;
                            let _ = client.close_session().await;
                            doomed[i].store(false, Ordering::SeqCst);
                            continue 'sessions;
                        }
                    }
                }
            }
        }));
    }
    // Observers see strictly increasing terms.
    let observer = session(&eps, 4000).await;
    let mut changes = Election::new(&observer, "/election/safety").observe();
    let seen = tokio::spawn(async move {
        let mut tokens = Vec::new();
        while let Some(Ok(change)) = changes.next().await {
            if let Some(leader) = change {
                tokens.push(leader.fencing_token);
            }
        }
        tokens
    });

    let started = tokio::time::Instant::now();
    let mut round = 0u64;
    let mut hangs = 0;
    while started.elapsed() < RUN {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        round += 1;
        match round % 4 {
            1 => c.kill(1 + round % 3).await,
            2 => c.restart(1 + (round - 1) % 3).await,
            _ => {
                let leader = believers.lock().keys().next().copied();
                if let Some(i) = leader {
                    if doomed.iter().all(|d| !d.load(Ordering::SeqCst)) {
                        deaf_hang.store(hangs % 2 == 0, Ordering::SeqCst);
                        doomed[i].store(true, Ordering::SeqCst);
                        if let Some(client) = clients[i].lock().as_ref() {
                            client.pause_pings_for_test(true);
                            hangs += 1;
                        }
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    if round % 4 == 1 {
        c.restart(1 + round % 3).await;
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t).await.expect("candidate stops").expect("candidate");
    }
    observer.close_session().await.unwrap();
    let tokens = within("observer", seen).await.unwrap();
    eprintln!(
        "{} terms, {hangs} hung leaders ({} deaf), {} elections beside a stale believer, observed {} leaders",
        terms.load(Ordering::SeqCst),
        deaf.load(Ordering::SeqCst),
        stale.load(Ordering::SeqCst),
        tokens.len()
    );
    assert!(violations.lock().is_empty(), "{:#?}", violations.lock());
    assert!(terms.load(Ordering::SeqCst) >= 10, "too few terms");
    assert!(hangs >= 1);
    if deaf.load(Ordering::SeqCst) > 0 {
        assert!(stale.load(Ordering::SeqCst) > 0, "a deaf leader never overlapped a new one: the check was idle");
    }
    assert!(tokens.windows(2).all(|w| w[0] <= w[1]), "terms went backwards: {tokens:?}");
}

// ---------------------------------------------------------------------------
// The queue under consumer deaths.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_items_are_consumed_exactly_once_while_consumers_die() {
    const ITEMS: usize = 10_000;
    const PRODUCERS: usize = 2;
    const CONSUMERS: usize = 16;
    const BATCH: usize = 50;
    let c = fast_cluster().await;
    let eps = c.endpoints();
    let acks: Arc<Vec<AtomicU8>> = Arc::new((0..ITEMS).map(|_| AtomicU8::new(0)).collect());
    let consumed = Arc::new(AtomicUsize::new(0));
    let deaths = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();

    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let eps = eps.clone();
        producers.push(tokio::spawn(async move {
            let client = session(&eps, 4000).await;
            // Bounded: producers wait for the consumers (back-pressure), which
            // keeps every consumer's listing short.
            let queue = Queue::bounded(&client, "/queues/big", 400);
            let mine: Vec<usize> = (0..ITEMS).filter(|i| i % PRODUCERS == p).collect();
            for batch in mine.chunks(BATCH) {
                let items: Vec<Vec<u8>> = batch.iter().map(|i| i.to_string().into_bytes()).collect();
                queue.put_all(&items, 100).await.unwrap();
            }
            client.close_session().await.unwrap();
        }));
    }
    let mut consumers = Vec::new();
    for k in 0..CONSUMERS {
        let (eps, acks, consumed, deaths) = (eps.clone(), acks.clone(), consumed.clone(), deaths.clone());
        consumers.push(tokio::spawn(async move {
            let mut rng_state = 0x9e37_79b9_7f4a_7c15u64 ^ (k as u64 + 1);
            let mut next = move || {
                rng_state ^= rng_state << 13;
                rng_state ^= rng_state >> 7;
                rng_state ^= rng_state << 17;
                rng_state
            };
            while consumed.load(Ordering::SeqCst) < ITEMS {
                // A consumer process: its own client and session (1 s).
                let client = fresh_session(&eps, 1000).await;
                let queue = Queue::new(&client, "/queues/big");
                let mut holding = None;
                loop {
                    if consumed.load(Ordering::SeqCst) >= ITEMS {
                        break;
                    }
                    let item = match holding.take() {
                        Some(item) => item,
                        None => match queue.take_timeout(Duration::from_millis(500)).await.unwrap() {
                            Some(item) => item,
                            None => continue,
                        },
                    };
                    let i: usize = std::str::from_utf8(item.data()).unwrap().parse().unwrap();
                    if next() % 400 == 0 {
                        // Dies mid-item: the claim stays until its session
                        // expires, then someone else gets the item.
                        item.abandon();
                        deaths.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    // Mostly with the next item claimed in the same
                    // transaction (one write per item), sometimes plainly.
                    if next() % 8 != 0 {
                        holding = item.ack_and_take().await.unwrap_or_else(|e| panic!("ack {i}: {e}"));
                    } else {
                        item.ack().await.unwrap_or_else(|e| panic!("ack {i}: {e}"));
                    }
                    acks[i].fetch_add(1, Ordering::SeqCst);
                    consumed.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(item) = holding {
                    item.release().await.unwrap();
                }
                drop(queue);
                drop(client);
            }
        }));
    }
    for p in producers {
        tokio::time::timeout(Duration::from_secs(120), p).await.expect("producers finish").unwrap();
    }
    for k in consumers {
        tokio::time::timeout(Duration::from_secs(120), k).await.expect("consumers finish").unwrap();
    }
    let elapsed = started.elapsed();
    let counts: Vec<u8> = acks.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    let lost: Vec<usize> = (0..ITEMS).filter(|i| counts[*i] == 0).collect();
    let twice: Vec<usize> = (0..ITEMS).filter(|i| counts[*i] > 1).collect();
    eprintln!(
        "{ITEMS} items in {elapsed:?} ({:.0}/s) with {} consumer deaths",
        ITEMS as f64 / elapsed.as_secs_f64(),
        deaths.load(Ordering::SeqCst)
    );
    assert!(lost.is_empty() && twice.is_empty(), "lost {lost:?}, duplicated {twice:?}");
    assert!(deaths.load(Ordering::SeqCst) >= 3, "too few consumers died to test anything");
    let check = client(&eps).await;
    assert_eq!(check.get_children("/queues/big/entries").await.unwrap().0.len(), 0);
    let (claims, _) = check.get_children("/queues/big/taken").await.unwrap();
    assert!(claims.is_empty(), "{claims:?}");
}

// ---------------------------------------------------------------------------
// The CLI.

fn corral(endpoints: &[String]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.arg("--endpoints").arg(endpoints.join(",")).env_remove("CORRAL_ENDPOINTS");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corral_lock_runs_commands_one_at_a_time_and_passes_their_status() {
    let c = cluster().await;
    let eps = c.endpoints();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // Three commands contend; each writes start and end around a sleep.
    let script = format!(
        "echo start $CORRAL_LOCK_TOKEN >> {0}; sleep 0.3; echo end $CORRAL_LOCK_TOKEN >> {0}",
        log.display()
    );
    let children: Vec<std::process::Child> = (0..3)
        .map(|_| corral(&eps).args(["lock", "cli-lock", "--", "sh", "-c", &script]).spawn().unwrap())
        .collect();
    let statuses = tokio::task::spawn_blocking(move || {
        children.into_iter().map(|mut ch| ch.wait().unwrap()).collect::<Vec<_>>()
    });
    let statuses = within("three locked commands", statuses).await.unwrap();
    assert!(statuses.iter().all(|s| s.success()), "{statuses:?}");
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    let mut tokens = HashSet::new();
    for pair in lines.chunks(2) {
        let (s, e) = (pair[0].strip_prefix("start ").unwrap(), pair[1].strip_prefix("end ").unwrap());
        assert_eq!(s, e, "a command started inside another's critical section: {lines:?}");
        assert!(tokens.insert(s.to_string()), "{lines:?}");
    }

    // The command's exit status is ours; the lock is released either way.
    let status = corral(&eps).args(["lock", "cli-lock", "--", "sh", "-c", "exit 7"]).status().unwrap();
    assert_eq!(status.code(), Some(7));
    let status = corral(&eps).args(["lock", "--wait", "5s", "cli-lock", "--", "true"]).status().unwrap();
    assert!(status.success());

    // Losing the lock kills the command and fails.
    let admin = session(&eps, 10_000).await;
    let mut holder = corral(&eps).args(["lock", "cli-lock", "--", "sleep", "30"]).spawn().unwrap();
    let node = within("the lock node", async {
        loop {
            if let Ok((kids, _)) = admin.get_children("/corral/locks/cli-lock").await {
                if let Some(k) = kids.first() {
                    return format!("/corral/locks/cli-lock/{k}");
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // Held: another contender gives up after its wait.
    let out = corral(&eps).args(["lock", "--wait", "300ms", "cli-lock", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OperationTimeout"), "{out:?}");
    admin.delete(&node, None).await.unwrap();
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || holder.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corral_queue_and_elect_work_from_the_shell() {
    let c = cluster().await;
    let eps = c.endpoints();
    for (prio, data) in [("100", "second"), ("5", "first")] {
        let st = corral(&eps).args(["queue", "put", "-p", prio, "cli-q", data]).status().unwrap();
        assert!(st.success());
    }
    let len = corral(&eps).args(["queue", "len", "cli-q"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&len.stdout), "2\n");
    for want in ["first\n", "second\n"] {
        let out = corral(&eps).args(["queue", "take", "cli-q"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }
    let out = corral(&eps).args(["queue", "take", "--wait", "200ms", "cli-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));

    // Two campaigners: the first leads; when it is stopped the second does.
    use std::io::{BufRead, BufReader};
    let mut first = corral(&eps)
        .args(["elect", "cli-e", "one"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_out = BufReader::new(first.stdout.take().unwrap());
    let mut line = String::new();
    first_out.read_line(&mut line).unwrap();
    if line == "no leader\n" {
        line.clear();
        first_out.read_line(&mut line).unwrap();
    }
    assert_eq!(line, "leader one\n");
    let mut second = corral(&eps)
        .args(["elect", "cli-e", "two"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut second_out = BufReader::new(second.stdout.take().unwrap());
    line.clear();
    second_out.read_line(&mut line).unwrap();
    assert_eq!(line, "leader one\n");
    // SIGTERM: the first resigns and exits 0; the second takes over.
    unsafe {
        libc::kill(first.id() as i32, libc::SIGTERM);
    }
    assert!(first.wait().unwrap().success());
    line.clear();
    second_out.read_line(&mut line).unwrap();
    assert_eq!(line, "leader two\n");
    unsafe {
        libc::kill(second.id() as i32, libc::SIGTERM);
    }
    assert!(second.wait().unwrap().success());
}


