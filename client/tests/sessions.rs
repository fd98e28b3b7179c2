//! Sessions, ephemeral nodes and watches against a real in-process ensemble:
//! one-shot and persistent watches, removal, the event-before-reply ordering,
//! a session moving to another member when its member dies, expiry, and many
//! watchers on one node.

use std::future::Future;
use std::time::Duration;

use corral_client::{
    AddWatchMode, Client, CreateMode, CreateOptions, Error, ErrorCode, EventType, SessionState,
    SessionStates, WatchStream, WatchedEvent, WatcherType,
};
use corral_server::testing::TestCluster;
use futures::{FutureExt, StreamExt};

/// Nothing here should come near this; hitting it means a hang.
const DEADLINE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {DEADLINE:?}"))
}

async fn cluster() -> TestCluster {
    let c = TestCluster::start(3).await;
    c.wait_leader(Duration::from_secs(10)).await;
    c
}

async fn client(c: &TestCluster) -> Client {
    Client::builder(c.endpoints()).request_timeout(Duration::from_secs(10)).connect().await.expect("client")
}

/// A client with a session.
async fn session(c: &TestCluster, timeout_ms: i32) -> Client {
    let client = client(c).await;
    client.start_session(timeout_ms).await.expect("start session");
    assert_eq!(client.session_state(), SessionState::Connected);
    client
}

fn persistent() -> CreateOptions {
    CreateOptions::new(CreateMode::Persistent)
}

fn ev(kind: EventType, path: &str, zxid: i64) -> WatchedEvent {
    WatchedEvent { kind, path: path.into(), zxid: u64::try_from(zxid).expect("zxid") }
}

/// The next event of a persistent watch.
async fn next(events: &mut WatchStream) -> WatchedEvent {
    within("a watch event", events.next()).await.expect("the watch stream ended")
}

/// Nothing more arrives within a short while.
async fn quiet(events: &mut WatchStream) {
    if let Ok(e) = tokio::time::timeout(Duration::from_millis(300), events.next()).await {
        panic!("unexpected event {e:?}");
    }
}

/// Waits for `want` on a state stream, skipping others.
async fn reach(states: &mut SessionStates, want: SessionState) -> Vec<SessionState> {
    let mut seen = Vec::new();
    within(&format!("session state {want}"), async {
        while let Some(s) = states.next().await {
            seen.push(s);
            if s == want {
                return;
            }
        }
        panic!("the state stream ended before {want}: {seen:?}");
    })
    .await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_shot_watches_fire_once_with_the_right_type() {
    let c = cluster().await;
    let s = session(&c, 10_000).await;
    let other = client(&c).await;
    other.create("/w", b"0", persistent()).await.unwrap();

    // Data watch: NodeDataChanged, with the change's zxid.
    let (data, stat, watch) = s.get_data_watch("/w").await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"0"[..], 0));
    let set = other.set_data("/w", b"1", None).await.unwrap();
    assert_eq!(within("data watch", watch).await.unwrap(), ev(EventType::NodeDataChanged, "/w", set.mzxid));
    // One-shot: the next change is news only for a new watch, which gets
    // that change and not a repeat of the first.
    let (_, stat, watch) = s.get_data_watch("/w").await.unwrap();
    assert_eq!(stat.version, 1);
    let set2 = other.set_data("/w", b"2", None).await.unwrap();
    assert_eq!(
        within("second data watch", watch).await.unwrap(),
        ev(EventType::NodeDataChanged, "/w", set2.mzxid)
    );

    // Exists watch on a missing node: NodeCreated.
    let (none, watch) = s.exists_watch("/w/e").await.unwrap();
    assert_eq!(none, None);
    let (_, created) = other.create("/w/e", b"", persistent()).await.unwrap();
    assert_eq!(
        within("exists watch", watch).await.unwrap(),
        ev(EventType::NodeCreated, "/w/e", created.czxid)
    );

    // Child watch: NodeChildrenChanged on the parent.
    let (children, _, watch) = s.get_children_watch("/w").await.unwrap();
    assert_eq!(children, vec!["e".to_string()]);
    let (_, kid) = other.create("/w/f", b"", persistent()).await.unwrap();
    assert_eq!(
        within("child watch", watch).await.unwrap(),
        ev(EventType::NodeChildrenChanged, "/w", kid.czxid)
    );

    // Deletion fires data, exists and child watches alike.
    let (_, _, data_w) = s.get_data_watch("/w/e").await.unwrap();
    let (some, exists_w) = s.exists_watch("/w/e").await.unwrap();
    assert!(some.is_some());
    let (_, _, child_w) = s.get_children_watch("/w/e").await.unwrap();
    other.delete("/w/e", None).await.unwrap();
    let deleted = within("data watch on delete", data_w).await.unwrap();
    assert_eq!((deleted.kind, deleted.path.as_str()), (EventType::NodeDeleted, "/w/e"));
    assert_eq!(within("exists watch on delete", exists_w).await.unwrap(), deleted);
    assert_eq!(within("child watch on delete", child_w).await.unwrap(), deleted);

    // A data watch is not a child watch: creating a child doesn't fire it.
    let (_, _, data_w) = s.get_data_watch("/w").await.unwrap();
    other.create("/w/g", b"", persistent()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut data_w = Box::pin(data_w);
    assert!((&mut data_w).now_or_never().is_none(), "a child's creation is no data change of the parent");
    let set3 = other.set_data("/w", b"3", None).await.unwrap();
    assert_eq!(within("data watch", data_w).await.unwrap(), ev(EventType::NodeDataChanged, "/w", set3.mzxid));

    // A watch on a missing node via get_data is refused and leaves nothing.
    let missing = s.get_data_watch("/nope").await.map(drop);
    assert!(matches!(missing, Err(Error::Zk { code: ErrorCode::NoNode, .. })), "{missing:?}");

    // No session, no watch.
    let bare = other.get_data_watch("/w").await.map(drop);
    assert!(matches!(bare, Err(Error::InvalidArgument(_))), "{bare:?}");
    let bare = other.add_watch("/w", AddWatchMode::Persistent).await.map(drop);
    assert!(matches!(bare, Err(Error::InvalidArgument(_))), "{bare:?}");

    s.close_session().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn persistent_and_recursive_watches_keep_firing() {
    let c = cluster().await;
    let s = session(&c, 10_000).await;
    let other = client(&c).await;

    // The node need not exist yet.
    let mut p = s.add_watch("/p", AddWatchMode::Persistent).await.unwrap();
    let mut r = s.add_watch("/r", AddWatchMode::PersistentRecursive).await.unwrap();

    let (_, st) = other.create("/p", b"", persistent()).await.unwrap();
    assert_eq!(next(&mut p).await, ev(EventType::NodeCreated, "/p", st.czxid));
    for i in 0..3 {
        let st = other.set_data("/p", format!("{i}").as_bytes(), None).await.unwrap();
        assert_eq!(next(&mut p).await, ev(EventType::NodeDataChanged, "/p", st.mzxid));
    }
    let (_, kid) = other.create("/p/k", b"", persistent()).await.unwrap();
    assert_eq!(next(&mut p).await, ev(EventType::NodeChildrenChanged, "/p", kid.czxid));
    // Not recursive: the child's own changes are not the node's.
    other.set_data("/p/k", b"x", None).await.unwrap();
    quiet(&mut p).await;
    other.delete("/p/k", None).await.unwrap();
    assert_eq!(next(&mut p).await.kind, EventType::NodeChildrenChanged);
    other.delete("/p", None).await.unwrap();
    assert_eq!(next(&mut p).await.kind, EventType::NodeDeleted);

    // Recursive: every descendant, no NodeChildrenChanged.
    other.create("/r", b"", persistent()).await.unwrap();
    other.create("/r/a", b"", persistent()).await.unwrap();
    let (_, b) = other.create("/r/a/b", b"", persistent()).await.unwrap();
    let set = other.set_data("/r/a/b", b"v", None).await.unwrap();
    other.delete("/r/a/b", None).await.unwrap();
    let got: Vec<(EventType, String)> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            let e = next(&mut r).await;
            v.push((e.kind, e.path));
        }
        v
    };
    assert_eq!(
        got,
        vec![
            (EventType::NodeCreated, "/r".to_string()),
            (EventType::NodeCreated, "/r/a".to_string()),
            (EventType::NodeCreated, "/r/a/b".to_string()),
            (EventType::NodeDataChanged, "/r/a/b".to_string()),
            (EventType::NodeDeleted, "/r/a/b".to_string()),
        ]
    );
    let _ = (b, set);
    quiet(&mut r).await;

    // Two streams on one path share the registration and both hear each event.
    let mut r2 = s.add_watch("/r", AddWatchMode::PersistentRecursive).await.unwrap();
    let st = other.set_data("/r/a", b"w", None).await.unwrap();
    assert_eq!(next(&mut r).await, ev(EventType::NodeDataChanged, "/r/a", st.mzxid));
    assert_eq!(next(&mut r2).await, ev(EventType::NodeDataChanged, "/r/a", st.mzxid));

    s.close_session().await.unwrap();
    // The session's end ends the streams.
    assert_eq!(within("end of stream", r.next()).await, None);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remove_watches_tells_the_watchers_and_stops_the_events() {
    let c = cluster().await;
    let s = session(&c, 10_000).await;
    let other = client(&c).await;
    other.create("/x", b"", persistent()).await.unwrap();

    let (_, _, data_w) = s.get_data_watch("/x").await.unwrap();
    let (_, exists_w) = s.exists_watch("/x").await.unwrap();
    let (_, _, kids_w) = s.get_children_watch("/x").await.unwrap();
    s.remove_watches("/x", WatcherType::Data).await.unwrap();
    assert_eq!(within("removed", data_w).await.unwrap().kind, EventType::DataWatchRemoved);
    assert_eq!(within("removed", exists_w).await.unwrap().kind, EventType::DataWatchRemoved);
    // Removed on the server too: nothing left of that kind.
    let again = s.remove_watches("/x", WatcherType::Data).await;
    assert!(matches!(again, Err(Error::Zk { code: ErrorCode::NoWatcher, .. })), "{again:?}");
    // The child watch is still there and still fires.
    let (_, kid) = other.create("/x/k", b"", persistent()).await.unwrap();
    assert_eq!(
        within("child watch", kids_w).await.unwrap(),
        ev(EventType::NodeChildrenChanged, "/x", kid.czxid)
    );

    let mut p = s.add_watch("/x", AddWatchMode::Persistent).await.unwrap();
    let st = other.set_data("/x", b"1", None).await.unwrap();
    assert_eq!(next(&mut p).await, ev(EventType::NodeDataChanged, "/x", st.mzxid));
    s.remove_watches("/x", WatcherType::Persistent).await.unwrap();
    assert_eq!(next(&mut p).await.kind, EventType::PersistentWatchRemoved);
    assert_eq!(within("end of stream", p.next()).await, None);
    other.set_data("/x", b"2", None).await.unwrap();
    let none = s.remove_watches("/x", WatcherType::Any).await;
    assert!(matches!(none, Err(Error::Zk { code: ErrorCode::NoWatcher, .. })), "{none:?}");

    s.close_session().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_event_arrives_before_any_reply_that_reflects_the_change() {
    let c = cluster().await;
    let s = session(&c, 10_000).await;
    let writer = client(&c).await;
    writer.create("/o", b"0", persistent()).await.unwrap();

    // A writer changes /o as fast as it can while the session reads.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                writer.set_data("/o", n.to_string().as_bytes(), None).await.unwrap();
                n += 1;
            }
            n
        })
    };

    let mut fired = 0;
    let mut checked = 0;
    for _ in 0..40 {
        let (_, seen, watch) = s.get_data_watch("/o").await.unwrap();
        let mut watch = Box::pin(watch);
        // Every read that shows a newer version than the watch's read was
        // delivered after the watch's event: the watch must have fired.
        loop {
            let (_, now) = s.get_data("/o").await.unwrap();
            checked += 1;
            if now.version > seen.version {
                let event = (&mut watch)
                    .now_or_never()
                    .unwrap_or_else(|| {
                        panic!("read version {} before the event for {}", now.version, seen.version + 1)
                    })
                    .unwrap();
                assert_eq!(event.kind, EventType::NodeDataChanged);
                // ... and the event is for the first change after the watch's read.
                assert!(event.zxid > u64::try_from(seen.mzxid).unwrap(), "{event:?} vs {seen:?}");
                assert!(event.zxid <= u64::try_from(now.mzxid).unwrap(), "{event:?} vs {now:?}");
                fired += 1;
                break;
            }
        }
        // The other direction: a watcher that got the event never reads older data.
        let (_, after, _) = s.get_data_watch("/o").await.unwrap();
        assert!(after.version > seen.version);
    }

    // Same for a persistent watch: by the time a read shows mzxid Z, the
    // stream already holds the event for Z.
    let mut events = s.add_watch("/o", AddWatchMode::Persistent).await.unwrap();
    let (_, start) = s.get_data("/o").await.unwrap();
    let start = u64::try_from(start.mzxid).unwrap();
    let mut newest = 0;
    for _ in 0..200 {
        let (_, now) = s.get_data("/o").await.unwrap();
        while let Some(Some(e)) = events.next().now_or_never() {
            assert_eq!(e.kind, EventType::NodeDataChanged);
            assert!(e.zxid > newest, "events in zxid order: {e:?} after {newest}");
            newest = e.zxid;
        }
        // Every change after `start` happened after the watch was added.
        let now = u64::try_from(now.mzxid).unwrap();
        assert!(now <= start || newest >= now, "a read showed mzxid {now} but the newest event is {newest}");
    }

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writing.await.unwrap();
    assert!(writes > 0 && fired == 40 && checked >= 40, "{writes} writes, {fired} fired, {checked} reads");
    s.close_session().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_survives_the_death_of_its_member() {
    let mut c = cluster().await;
    // Long enough to outlast the kill (which waits for the member's streams)
    // and an election.
    let s = session(&c, 20_000).await;
    let other = client(&c).await;
    let mut states = s.session_states();
    assert_eq!(states.next().await, Some(SessionState::Connected));

    other.create("/m", b"", persistent()).await.unwrap();
    let (eph, _) = s.create("/m/eph", b"mine", CreateOptions::new(CreateMode::Ephemeral)).await.unwrap();
    let (_, _, data_w) = s.get_data_watch("/m").await.unwrap();
    let (_, _, child_w) = s.get_children_watch("/m").await.unwrap();
    let mut persistent_w = s.add_watch("/m", AddWatchMode::PersistentRecursive).await.unwrap();

    // Kill the member the session's stream is on. The session moves to
    // another member: by itself when the stream breaks, or when a request
    // finds the member unreachable, whichever comes first. Either way the
    // request is served once it has moved.
    let attached_to = s.status().await.unwrap().member_id;
    let addr = c.endpoint(attached_to);
    assert_eq!(s.current_endpoint().as_deref(), Some(addr.as_str()));
    c.kill(attached_to).await;
    let (data, stat) = within("a read across the move", s.get_data(&eph)).await.unwrap();
    reach(&mut states, SessionState::Disconnected).await;
    reach(&mut states, SessionState::Connected).await;
    let now_on = s.status().await.unwrap().member_id;
    assert_ne!(now_on, attached_to, "the session moved");
    assert_ne!(s.current_endpoint().as_deref(), Some(addr.as_str()));

    // The session and its ephemeral node survived the move.
    assert_eq!((data.as_slice(), stat.ephemeral_owner), (&b"mine"[..], s.session_id()));
    let other = client(&c).await; // the old one may be pinned to the dead member for a while
    assert_eq!(other.exists(&eph).await.unwrap().map(|st| st.ephemeral_owner), Some(s.session_id()));

    // Its watches were re-registered and still fire, once.
    let st = within("a write after the election", async {
        loop {
            match other.set_data("/m", b"after", None).await {
                Ok(st) => return st,
                Err(e) if !e.is_definite() => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("{e:?}"),
            }
        }
    })
    .await;
    let fired = within("data watch after the move", data_w).await.unwrap();
    assert_eq!(fired.kind, EventType::NodeDataChanged);
    assert!(fired.zxid == 0 || fired.zxid == u64::try_from(st.mzxid).unwrap(), "{fired:?}");
    let (_, kid) = other.create("/m/kid", b"", persistent()).await.unwrap();
    let fired = within("child watch after the move", child_w).await.unwrap();
    assert_eq!(fired, ev(EventType::NodeChildrenChanged, "/m", kid.czxid));
    let mut seen = Vec::new();
    while seen.last().map(|e: &WatchedEvent| e.path.as_str()) != Some("/m/kid") {
        seen.push(next(&mut persistent_w).await);
    }
    assert!(seen.iter().all(|e| e.path == "/m" || e.path == "/m/kid"), "{seen:?}");

    // And the member that died can come back; the session goes on.
    c.restart(attached_to).await;
    s.set_data("/m", b"still", None).await.unwrap();
    assert_eq!(s.session_state(), SessionState::Connected);
    s.close_session().await.unwrap();
    assert_eq!(other.exists(&eph).await.unwrap(), None, "closing deleted the ephemeral");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_that_stops_pinging_expires() {
    // A 200 ms tick: sessions may be as short as 400 ms.
    let c = TestCluster::start_with(3, |cfg| cfg.tick_ms = 200).await;
    c.wait_leader(Duration::from_secs(10)).await;
    let doomed = session(&c, 1000).await;
    assert_eq!(doomed.session().unwrap().timeout_ms, 1000);
    let watcher = session(&c, 4000).await;

    let (eph, _) = doomed.create("/doomed", b"", CreateOptions::new(CreateMode::Ephemeral)).await.unwrap();
    let (stat, gone) = watcher.exists_watch(&eph).await.unwrap();
    assert_eq!(stat.map(|s| s.ephemeral_owner), Some(doomed.session_id()));
    let mut all = watcher.add_watch("/", AddWatchMode::PersistentRecursive).await.unwrap();
    let (_, _, doomed_w) = doomed.get_data_watch(&eph).await.unwrap();

    // While it pings, the session outlives its timeout several times over.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // (A stream may have been replaced meanwhile on a slow machine: two
    // thirds of a second of silence is enough for that.)
    assert!(!doomed.session_state().is_terminal());
    assert!(watcher.exists(&eph).await.unwrap().is_some());

    let mut states = doomed.session_states();
    doomed.pause_pings_for_test(true);
    reach(&mut states, SessionState::Expired).await;
    assert_eq!(doomed.session_state(), SessionState::Expired);

    // Its ephemeral node went with it; other sessions' watches saw it go.
    let fired = within("NodeDeleted for the ephemeral", gone).await.unwrap();
    assert_eq!((fired.kind, fired.path.as_str()), (EventType::NodeDeleted, eph.as_str()));
    let deleted = next(&mut all).await;
    assert_eq!((deleted.kind, deleted.path.as_str()), (EventType::NodeDeleted, eph.as_str()));
    assert_eq!(watcher.exists(&eph).await.unwrap(), None);

    // The expired session's own watches and requests fail with SessionExpired
    // (its watch on its own ephemeral may see the deletion first: the expiry
    // deletes the node before it ends the session).
    let expired = |r: Result<(), Error>| matches!(r, Err(Error::Zk { code: ErrorCode::SessionExpired, .. }));
    match within("doomed watch", doomed_w).await {
        Ok(e) => assert_eq!((e.kind, e.path.as_str()), (EventType::NodeDeleted, eph.as_str())),
        Err(e) => assert!(expired(Err(e.clone())), "{e:?}"),
    }
    assert!(expired(doomed.get_data("/").await.map(drop)));
    assert!(expired(doomed.create("/again", b"", persistent()).await.map(drop)));
    assert!(expired(doomed.exists_watch("/").await.map(drop)));

    // Clearing the expired session lets the client start over.
    doomed.close_session().await.unwrap();
    assert_eq!(doomed.session_state(), SessionState::Closed);
    assert!(doomed.get_data("/").await.is_ok(), "no session: plain requests work again");
    doomed.start_session(1000).await.unwrap();
    assert_eq!(
        reach(&mut states, SessionState::Connected).await,
        vec![SessionState::Closed, SessionState::Connecting, SessionState::Connected]
    );
    doomed.close_session().await.unwrap();

    // The watcher, which kept pinging, is fine.
    assert!(!watcher.session_state().is_terminal());
    watcher.close_session().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_watchers_on_one_node_each_get_one_event() {
    let c = cluster().await;
    let s = session(&c, 10_000).await;
    let other = client(&c).await;
    other.create("/many", b"", persistent()).await.unwrap();

    const N: usize = 1200;
    // Queued together, answered in any order; half data, half exists watches.
    let replies: Vec<_> = (0..N)
        .map(|i| {
            if i % 2 == 0 {
                s.get_data_watch("/many").map(|r| r.map(|(_, _, w)| w)).boxed()
            } else {
                s.exists_watch("/many").map(|r| r.map(|(_, w)| w)).boxed()
            }
        })
        .collect();
    let watches: Vec<_> = within("watch replies", futures::future::join_all(replies))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let st = other.set_data("/many", b"x", None).await.unwrap();
    other.set_data("/many", b"y", None).await.unwrap();
    let events = within("every watch", futures::future::join_all(watches)).await;
    assert_eq!(events.len(), N);
    for e in events {
        assert_eq!(
            e.unwrap(),
            ev(EventType::NodeDataChanged, "/many", st.mzxid),
            "one event each, the first change"
        );
    }
    s.close_session().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_life_cycle_as_the_application_sees_it() {
    let c = cluster().await;
    let s = client(&c).await;
    assert_eq!(s.session_state(), SessionState::NoSession);
    let mut states = s.session_states();
    let info = s.start_session(6000).await.unwrap();
    assert!(matches!(s.start_session(6000).await, Err(Error::InvalidArgument(_))));
    assert_eq!(s.session_id(), info.id);
    let (_, _, watch) = s.get_data_watch("/").await.unwrap();
    let mut stream = s.add_watch("/", AddWatchMode::Persistent).await.unwrap();
    s.close_session().await.unwrap();
    assert_eq!(
        reach(&mut states, SessionState::Closed).await,
        vec![
            SessionState::NoSession,
            SessionState::Connecting,
            SessionState::Connected,
            SessionState::Closed
        ]
    );
    // The closed session's watches fail as ZooKeeper reports them.
    let closed = within("watch after close", watch).await;
    assert!(matches!(closed, Err(Error::Zk { code: ErrorCode::SessionExpired, .. })), "{closed:?}");
    assert_eq!(within("end of stream", stream.next()).await, None);
    assert_eq!(s.session_id(), 0);
    s.close_session().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_hears_only_about_nodes_its_credentials_may_read() {
    let c = cluster().await;
    let alice_only = vec![corral_client::Acl::new(corral_client::Acl::ALL, "digest", digest("alice:secret"))];
    let alice = client(&c).await;
    alice.add_auth("digest", "alice:secret");
    alice.create("/acl", b"", CreateOptions::default()).await.unwrap();
    // Watches set by an anonymous session, through the persistent and the one-shot paths.
    let anon = session(&c, 10_000).await;
    let mut anon_all = anon.add_watch("/acl", AddWatchMode::PersistentRecursive).await.unwrap();
    // The credentials an attach presents count too.
    let bob = client(&c).await;
    bob.add_auth("digest", "alice:secret");
    bob.start_session(10_000).await.unwrap();
    let mut bob_all = bob.add_watch("/acl", AddWatchMode::PersistentRecursive).await.unwrap();

    alice.create("/acl/secret", b"s", CreateOptions::default().with_acl(alice_only.clone())).await.unwrap();
    alice.set_data("/acl/secret", b"t", None).await.unwrap();
    alice.create("/acl/public", b"p", CreateOptions::default()).await.unwrap();
    // In zxid order: the anonymous session hears of the public node only; alice's credentials
    // hear of both.
    let e = next(&mut anon_all).await;
    assert_eq!((e.kind, e.path.as_str()), (EventType::NodeCreated, "/acl/public"), "{e:?}");
    for (want_type, want_path) in [
        (EventType::NodeCreated, "/acl/secret"),
        (EventType::NodeDataChanged, "/acl/secret"),
        (EventType::NodeCreated, "/acl/public"),
    ] {
        let e = next(&mut bob_all).await;
        assert_eq!((e.kind, e.path.as_str()), (want_type, want_path), "{e:?}");
    }
    c.shutdown().await;
}

/// ZooKeeper's digest id for `user:password` (`DigestAuthenticationProvider.generateDigest`).
fn digest(user_password: &str) -> String {
    corral_server::tree::digest_id(user_password)
}
