//! Sessions, watches and sweeps at the protocol level: raw gRPC against real members, so
//! these pin down what the server promises independently of the client crate.

use std::time::Duration;

use corral_proto::v1 as pb;
use corral_proto::v1::data_client::DataClient;
use corral_proto::v1::session_client::SessionClient;
use corral_proto::v1::session_server_message::Msg;
use corral_proto::ErrorCode;
use corral_server::testing::TestCluster;
use tokio::sync::mpsc;
use tonic::transport::Channel;

const LEADER_WAIT: Duration = Duration::from_secs(15);

/// Short ticks so timeouts are short: tick 100 ms → timeouts in [200, 2000] ms.
async fn cluster() -> TestCluster {
    TestCluster::start_with(3, |c| {
        c.tick_ms = 100;
        c.container_check_ms = 100;
    })
    .await
}

async fn channel(addr: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

fn code_of(status: &tonic::Status) -> ErrorCode {
    corral_proto::status::from_status(status).map(|(c, _)| c).unwrap_or(ErrorCode::SystemError)
}

fn header(session_id: i64, min_zxid: u64) -> Option<pb::RequestHeader> {
    Some(pb::RequestHeader { session_id, min_zxid, ..Default::default() })
}

/// An attached session stream: send pings with `tx`, read notices from `rx`.
struct Stream {
    tx: mpsc::UnboundedSender<pb::SessionClientMessage>,
    rx: tonic::Streaming<pb::SessionServerMessage>,
}

impl Stream {
    async fn next(&mut self, within: Duration) -> Option<Msg> {
        match tokio::time::timeout(within, self.rx.message()).await {
            Ok(Ok(Some(m))) => m.msg,
            Ok(Ok(None)) | Ok(Err(_)) => None,
            Err(_) => panic!("no notice within {within:?}"),
        }
    }

    fn ping(&self) {
        let _ = self.tx.send(pb::SessionClientMessage { msg: Some(pb::session_client_message::Msg::Ping(pb::Ping {})) });
    }
}

async fn attach(ch: Channel, attach: pb::Attach) -> Result<Stream, tonic::Status> {
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(pb::SessionClientMessage { msg: Some(pb::session_client_message::Msg::Attach(attach)) }).unwrap();
    let outbound = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut rx = SessionClient::new(ch).stream(outbound).await?.into_inner();
    // The first notice is Attached, or the stream fails with the reason.
    match rx.message().await? {
        Some(pb::SessionServerMessage { msg: Some(Msg::Attached(_)) }) => Ok(Stream { tx, rx }),
        other => panic!("expected Attached, got {other:?}"),
    }
}

async fn open_session(ch: Channel, timeout_ms: i32) -> pb::CreateSessionResponse {
    SessionClient::new(ch).create_session(pb::CreateSessionRequest { timeout_ms }).await.unwrap().into_inner()
}

fn attach_msg(s: &pb::CreateSessionResponse) -> pb::Attach {
    pb::Attach {
        session_id: s.session_id,
        password: s.password.clone(),
        last_zxid: s.header.as_ref().unwrap().zxid,
        ..Default::default()
    }
}

async fn create(ch: Channel, session_id: i64, path: &str, mode: pb::CreateMode) -> Result<pb::CreateResponse, tonic::Status> {
    DataClient::new(ch)
        .create(pb::CreateRequest {
            header: header(session_id, 0),
            path: path.into(),
            mode: mode as i32,
            ttl_ms: if matches!(mode, pb::CreateMode::PersistentWithTtl) { 300 } else { 0 },
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

async fn exists(ch: Channel, path: &str) -> bool {
    let mut d = DataClient::new(ch.clone());
    d.sync(pb::SyncRequest { header: None, path: "/".into() }).await.unwrap();
    d.exists(pb::ExistsRequest { header: None, path: path.into(), watch: false })
        .await
        .unwrap()
        .into_inner()
        .stat
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_stops_pinging_expires_and_its_ephemerals_go_with_it() {
    let cluster = cluster().await;
    let leader = cluster.wait_leader(LEADER_WAIT).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let ch = channel(&cluster.endpoint(follower)).await;
    let s = open_session(ch.clone(), 400).await;
    assert_eq!(s.timeout_ms, 400, "within [2, 20] ticks, kept as asked");
    let mut stream = attach(ch.clone(), attach_msg(&s)).await.unwrap();
    create(ch.clone(), s.session_id, "/e", pb::CreateMode::Ephemeral).await.unwrap();

    // A watcher on another session sees the ephemeral go.
    let other_ch = channel(&cluster.endpoint(leader)).await;
    let other = open_session(other_ch.clone(), 2000).await;
    let mut other_stream = attach(other_ch.clone(), attach_msg(&other)).await.unwrap();
    DataClient::new(other_ch.clone())
        .exists(pb::ExistsRequest { header: header(other.session_id, 0), path: "/e".into(), watch: true })
        .await
        .unwrap();

    // Pinging at a third of the timeout keeps it alive well past the timeout.
    for _ in 0..12 {
        stream.ping();
        tokio::time::sleep(Duration::from_millis(130)).await;
    }
    assert!(exists(ch.clone(), "/e").await, "a pinging session expired");
    // The other session keeps pinging in the background from here on.
    let pinger = tokio::spawn(async move {
        loop {
            other_stream.ping();
            tokio::select! {
                biased;
                m = other_stream.rx.message() => match m {
                    Ok(Some(pb::SessionServerMessage { msg: Some(Msg::Event(e)) })) => return e,
                    Ok(Some(_)) => {}
                    other => panic!("other session's stream ended: {other:?}"),
                },
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            }
        }
    });

    // Silence: the session expires, the stream says so and ends.
    let mut saw_expired = false;
    while let Some(m) = stream.next(Duration::from_secs(5)).await {
        if m == Msg::State(pb::SessionState::Expired as i32) {
            saw_expired = true;
        }
    }
    assert!(saw_expired, "the stream ended without saying Expired");
    assert!(!exists(ch.clone(), "/e").await, "the ephemeral survived its session");
    let event = tokio::time::timeout(Duration::from_secs(5), pinger).await.unwrap().unwrap();
    assert_eq!((event.r#type, event.path.as_str()), (pb::EventType::NodeDeleted as i32, "/e"));

    // The expired session cannot come back, nor act.
    let again = attach(ch.clone(), attach_msg(&s)).await.err().expect("re-attach of an expired session");
    assert_eq!(code_of(&again), ErrorCode::SessionExpired);
    let write = create(ch.clone(), s.session_id, "/late", pb::CreateMode::Persistent).await.unwrap_err();
    assert_eq!(code_of(&write), ErrorCode::SessionExpired);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moves_to_another_member_with_its_ephemerals_and_a_wrong_password_is_refused() {
    let mut cluster = cluster().await;
    let leader = cluster.wait_leader(LEADER_WAIT).await;
    let (a, b) = match leader {
        1 => (2, 3),
        2 => (1, 3),
        _ => (1, 2),
    };
    let ch_a = channel(&cluster.endpoint(a)).await;
    let s = open_session(ch_a.clone(), 1500).await;
    let stream = attach(ch_a.clone(), attach_msg(&s)).await.unwrap();
    create(ch_a.clone(), s.session_id, "/mine", pb::CreateMode::Ephemeral).await.unwrap();
    drop(stream);
    cluster.kill(a).await;

    let ch_b = channel(&cluster.endpoint(b)).await;
    let mut wrong = attach_msg(&s);
    wrong.password = b"not the password".to_vec().into();
    assert_eq!(code_of(&attach(ch_b.clone(), wrong).await.err().unwrap()), ErrorCode::AuthFailed);
    let mut unknown = attach_msg(&s);
    unknown.session_id += 12345;
    assert_eq!(code_of(&attach(ch_b.clone(), unknown).await.err().unwrap()), ErrorCode::SessionExpired);

    let stream = attach(ch_b.clone(), attach_msg(&s)).await.unwrap();
    for _ in 0..10 {
        stream.ping();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(exists(ch_b.clone(), "/mine").await, "the session lost its ephemeral when it moved");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_failover_expires_no_healthy_session() {
    let mut cluster = cluster().await;
    let leader = cluster.wait_leader(LEADER_WAIT).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let ch = channel(&cluster.endpoint(follower)).await;
    // The shortest timeout there is (2 ticks): the failover takes longer than that.
    let s = open_session(ch.clone(), 200).await;
    assert_eq!(s.timeout_ms, 200);
    let stream = attach(ch.clone(), attach_msg(&s)).await.unwrap();
    create(ch.clone(), s.session_id, "/alive", pb::CreateMode::Ephemeral).await.unwrap();
    let pinger = tokio::spawn(async move {
        for _ in 0..60 {
            stream.ping();
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        stream
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill(leader).await;
    let new_leader = cluster.wait_leader(LEADER_WAIT).await;
    assert_ne!(new_leader, leader);
    let mut stream = pinger.await.unwrap();
    assert!(exists(ch.clone(), "/alive").await, "the failover expired a pinging session");
    // Its stream is still the one it had: no Expired came.
    stream.ping();
    loop {
        match stream.next(Duration::from_secs(2)).await {
            Some(Msg::Pong(_)) => break,
            Some(Msg::State(s)) => panic!("session state changed to {s}"),
            Some(_) => {}
            None => panic!("stream ended"),
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_come_in_zxid_order_before_replies_that_reflect_them() {
    let cluster = cluster().await;
    cluster.wait_leader(LEADER_WAIT).await;
    let ch = channel(&cluster.endpoint(1)).await;
    let s = open_session(ch.clone(), 2000).await;
    let mut stream = attach(ch.clone(), attach_msg(&s)).await.unwrap();
    let mut data = DataClient::new(ch.clone());
    create(ch.clone(), 0, "/w", pb::CreateMode::Persistent).await.unwrap();
    data.get_data(pb::GetDataRequest { header: header(s.session_id, 0), path: "/w".into(), watch: true })
        .await
        .unwrap();
    // A watch needs the session's stream on the member that serves the read. (Once member 2
    // has applied /w: a read there with no zxid barrier could otherwise answer NoNode first.)
    cluster.wait_applied(2, cluster.member(1).applied_zxid(), Duration::from_secs(5)).await;
    let elsewhere = DataClient::new(channel(&cluster.endpoint(2)).await)
        .get_data(pb::GetDataRequest { header: header(s.session_id, 0), path: "/w".into(), watch: true })
        .await
        .unwrap_err();
    assert_eq!(code_of(&elsewhere), ErrorCode::SessionMoved);

    // Another client changes the node through another member.
    let writer = DataClient::new(channel(&cluster.endpoint(3)).await)
        .set_data(pb::SetDataRequest { path: "/w".into(), data: b"1".to_vec().into(), version: -1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let zxid = writer.header.unwrap().zxid;
    // A read on our member that reflects the change names how many notices precede it...
    let read = data
        .get_data(pb::GetDataRequest { header: header(s.session_id, zxid), path: "/w".into(), watch: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.stat.unwrap().version, 1);
    let seq = read.header.unwrap().event_seq;
    // ...and those include the event: notice 1 is Attached, notice 2 the NodeDataChanged.
    assert_eq!(seq, 2);
    match stream.next(Duration::from_secs(2)).await {
        Some(Msg::Event(e)) => {
            assert_eq!(e.r#type, pb::EventType::NodeDataChanged as i32);
            assert_eq!(e.path, "/w");
            assert_eq!(e.zxid, zxid);
            assert_eq!(e.watcher, pb::WatcherType::Data as i32);
        }
        other => panic!("{other:?}"),
    }
    // One-shot: a second change fires nothing; a persistent-recursive watch fires for
    // every change below it, in zxid order.
    let mut session = SessionClient::new(ch.clone());
    session
        .add_watch(pb::AddWatchRequest {
            header: header(s.session_id, 0),
            path: "/w".into(),
            mode: pb::AddWatchMode::PersistentRecursive as i32,
        })
        .await
        .unwrap();
    let mut zxids = Vec::new();
    for i in 0..5 {
        let r = create(ch.clone(), 0, &format!("/w/c{i}"), pb::CreateMode::Persistent).await.unwrap();
        zxids.push(r.header.unwrap().zxid);
    }
    for (i, z) in zxids.iter().enumerate() {
        match stream.next(Duration::from_secs(2)).await {
            Some(Msg::Event(e)) => {
                assert_eq!(e.r#type, pb::EventType::NodeCreated as i32);
                assert_eq!(e.path, format!("/w/c{i}"));
                assert_eq!(e.zxid, *z);
                assert_eq!(e.watcher, pb::WatcherType::PersistentRecursive as i32);
            }
            other => panic!("{other:?}"),
        }
    }
    session
        .remove_watches(pb::RemoveWatchesRequest {
            header: header(s.session_id, 0),
            path: "/w".into(),
            kind: pb::WatcherType::Any as i32,
        })
        .await
        .unwrap();
    let none = session
        .remove_watches(pb::RemoveWatchesRequest {
            header: header(s.session_id, 0),
            path: "/w".into(),
            kind: pb::WatcherType::Any as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&none), ErrorCode::NoWatcher);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_with_watches_fires_what_was_missed() {
    let cluster = cluster().await;
    cluster.wait_leader(LEADER_WAIT).await;
    let ch1 = channel(&cluster.endpoint(1)).await;
    create(ch1.clone(), 0, "/m", pb::CreateMode::Persistent).await.unwrap();
    let s = open_session(ch1.clone(), 2000).await;
    let seen = create(ch1.clone(), 0, "/quiet", pb::CreateMode::Persistent).await.unwrap().header.unwrap().zxid;
    // While the session is away, /m changes and /quiet does not.
    DataClient::new(ch1.clone())
        .set_data(pb::SetDataRequest { path: "/m".into(), data: b"x".to_vec().into(), version: -1, ..Default::default() })
        .await
        .unwrap();
    let ch2 = channel(&cluster.endpoint(2)).await;
    let mut a = attach_msg(&s);
    a.last_zxid = seen;
    a.data_watches = vec!["/m".into(), "/quiet".into()];
    a.exist_watches = vec!["/quiet".into(), "/unborn".into()];
    let mut stream = attach(ch2.clone(), a).await.unwrap();
    let mut fired = Vec::new();
    for _ in 0..2 {
        match stream.next(Duration::from_secs(2)).await {
            Some(Msg::Event(e)) => fired.push((e.r#type, e.path)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        fired,
        vec![(pb::EventType::NodeDataChanged as i32, "/m".to_string()), (pb::EventType::NodeCreated as i32, "/quiet".to_string())]
    );
    // The silent ones are registered: creating /unborn fires now.
    create(ch2.clone(), 0, "/unborn", pb::CreateMode::Persistent).await.unwrap();
    match stream.next(Duration::from_secs(2)).await {
        Some(Msg::Event(e)) => assert_eq!((e.r#type, e.path.as_str()), (pb::EventType::NodeCreated as i32, "/unborn")),
        other => panic!("{other:?}"),
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_sweeps_empty_containers_and_expired_ttl_nodes() {
    let cluster = cluster().await;
    cluster.wait_leader(LEADER_WAIT).await;
    let ch = channel(&cluster.endpoint(1)).await;
    create(ch.clone(), 0, "/box", pb::CreateMode::Container).await.unwrap();
    create(ch.clone(), 0, "/box/item", pb::CreateMode::Persistent).await.unwrap();
    create(ch.clone(), 0, "/ttl", pb::CreateMode::PersistentWithTtl).await.unwrap();
    create(ch.clone(), 0, "/empty-box", pb::CreateMode::Container).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(exists(ch.clone(), "/box").await, "a container with a child was swept");
    assert!(exists(ch.clone(), "/empty-box").await, "a container that never had a child was swept");
    assert!(!exists(ch.clone(), "/ttl").await, "a TTL node outlived its 300 ms TTL");
    DataClient::new(ch.clone())
        .delete(pb::DeleteRequest { header: None, path: "/box/item".into(), version: -1 })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while exists(ch.clone(), "/box").await {
        assert!(tokio::time::Instant::now() < deadline, "the emptied container was never swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_client_address_are_limited() {
    let cluster = TestCluster::start_with(3, |c| c.max_client_cnxns = 2).await;
    cluster.wait_leader(LEADER_WAIT).await;
    let ch = channel(&cluster.endpoint(1)).await;
    let mut streams = Vec::new();
    for _ in 0..2 {
        let s = open_session(ch.clone(), 4000).await;
        streams.push(attach(ch.clone(), attach_msg(&s)).await.unwrap());
    }
    let s = open_session(ch.clone(), 4000).await;
    let refused = attach(ch.clone(), attach_msg(&s)).await.err().expect("a third connection from one address");
    assert_eq!(code_of(&refused), ErrorCode::Throttled);
    // Other members count their own connections.
    let ch2 = channel(&cluster.endpoint(2)).await;
    let _ok = attach(ch2, attach_msg(&s)).await.unwrap();
    // A closed stream frees its place.
    drop(streams.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = open_session(ch.clone(), 4000).await;
        match attach(ch.clone(), attach_msg(&s)).await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(code_of(&e), ErrorCode::Throttled);
                assert!(tokio::time::Instant::now() < deadline, "a closed stream never freed its place");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_watchers_on_one_node_each_get_exactly_one_event() {
    const WATCHERS: usize = 10_000;
    // Channels each carry a share of the streams (HTTP/2 limits concurrent streams per
    // connection); every client address is 127.0.0.1, so lift the per-address limit.
    const CHANNELS: usize = 100;
    let cluster = TestCluster::start_with(3, |c| c.max_client_cnxns = 0).await;
    cluster.wait_leader(LEADER_WAIT).await;
    let mut channels = Vec::new();
    for i in 0..CHANNELS {
        channels.push(channel(&cluster.endpoint(1 + (i % 3) as u64)).await);
    }
    create(channels[0].clone(), 0, "/hot", pb::CreateMode::Persistent).await.unwrap();

    // Open, attach and watch, 100 at a time.
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<(usize, pb::WatchEvent)>();
    let mut setups = futures::stream::FuturesUnordered::new();
    let mut started = 0;
    let mut streams_done = 0;
    let mut keepers = Vec::new();
    while streams_done < WATCHERS {
        while started < WATCHERS && setups.len() < 100 {
            let ch = channels[started % CHANNELS].clone();
            let i = started;
            setups.push(async move {
                let s = open_session(ch.clone(), 30_000).await;
                let stream = attach(ch.clone(), attach_msg(&s)).await.unwrap();
                DataClient::new(ch)
                    .get_data(pb::GetDataRequest { header: header(s.session_id, 0), path: "/hot".into(), watch: true })
                    .await
                    .unwrap();
                (i, stream)
            });
            started += 1;
        }
        use futures::StreamExt;
        let (i, mut stream) = setups.next().await.unwrap();
        streams_done += 1;
        let tx = events_tx.clone();
        keepers.push(tokio::spawn(async move {
            // Ping as a client would, so setting up 10 000 sessions on a slow machine does not
            // outlast the first sessions' timeouts.
            loop {
                tokio::select! {
                    biased;
                    m = stream.rx.message() => match m {
                        Ok(Some(m)) => {
                            if let Some(Msg::Event(e)) = m.msg {
                                let _ = tx.send((i, e));
                            }
                        }
                        _ => break,
                    },
                    _ = tokio::time::sleep(Duration::from_secs(5)) => stream.ping(),
                }
            }
            drop(stream.tx);
        }));
    }
    drop(events_tx);

    // Two changes: one-shot watches fire for the first only.
    for v in [b"1", b"2"] {
        DataClient::new(channels[1].clone())
            .set_data(pb::SetDataRequest { path: "/hot".into(), data: v.to_vec().into(), version: -1, ..Default::default() })
            .await
            .unwrap();
    }
    let mut got = vec![0u32; WATCHERS];
    let mut total = 0;
    while total < WATCHERS {
        let (i, e) = tokio::time::timeout(Duration::from_secs(30), events_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {total} of {WATCHERS} watchers heard the change"))
            .unwrap();
        assert_eq!((e.r#type, e.path.as_str()), (pb::EventType::NodeDataChanged as i32, "/hot"));
        got[i] += 1;
        total += 1;
    }
    // Nothing more arrives: no duplicates, no event for the second change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(events_rx.try_recv().is_err(), "a watcher got a second event");
    assert!(got.iter().all(|n| *n == 1));
    for k in keepers {
        k.abort();
    }
    cluster.shutdown().await;
}
