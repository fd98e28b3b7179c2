//! Replication end to end: real in-process members on loopback, driven by the
//! real client. What a user of a 3-member ensemble relies on: any member takes
//! writes, acknowledged writes survive a leader's death and a full restart, and
//! a member that fell far behind comes back through a snapshot.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use corral_client::{Client, CreateMode, CreateOptions, Error, ErrorCode};
use corral_server::testing::TestCluster;
use parking_lot::Mutex;

const LEADER_WAIT: Duration = Duration::from_secs(15);

fn persistent() -> CreateOptions {
    CreateOptions::new(CreateMode::Persistent)
}

/// A client pinned to one member: it can only fail over to itself.
async fn client_of(cluster: &TestCluster, id: u64) -> Client {
    Client::connect(vec![cluster.endpoint(id)]).await.expect("client")
}

async fn client_of_all(cluster: &TestCluster) -> Client {
    Client::connect(cluster.endpoints()).await.expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_any_member_is_readable_on_every_member_after_sync() {
    let cluster = TestCluster::start(3).await;
    cluster.wait_leader(LEADER_WAIT).await;
    for id in 1..=3 {
        let c = client_of(&cluster, id).await;
        let (path, stat) =
            c.create(&format!("/from-{id}"), format!("v{id}").as_bytes(), persistent()).await.unwrap();
        assert_eq!(path, format!("/from-{id}"));
        assert_eq!(stat.version, 0);
        // The zxid is the Raft log index: it grows with every write.
        assert!(stat.czxid > 0 && stat.czxid == stat.mzxid);
    }
    for reader in 1..=3 {
        let c = client_of(&cluster, reader).await;
        c.sync("/").await.unwrap();
        for writer in 1..=3 {
            let (data, _) = c.get_data(&format!("/from-{writer}")).await.unwrap();
            assert_eq!(data, format!("v{writer}").as_bytes(), "member {reader} reading /from-{writer}");
        }
        let (mut children, root) = c.get_children("/").await.unwrap();
        children.sort();
        assert_eq!(children, ["from-1", "from-2", "from-3", "zookeeper"]);
        assert_eq!(root.num_children, 4);
    }
    // Every replica holds an identical tree at the same zxid.
    let applied: Vec<u64> = (1..=3).map(|id| cluster.member(id).applied_zxid()).collect();
    let target = *applied.iter().max().unwrap();
    for id in 1..=3 {
        cluster.wait_applied(id, target, Duration::from_secs(5)).await;
    }
    let digests: BTreeSet<_> = (1..=3).map(|id| cluster.member(id).state.read().tree.digest()).collect();
    assert_eq!(digests.len(), 1, "replicas diverged: {digests:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_reads_and_reads_after_own_writes_see_the_latest_value() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(LEADER_WAIT).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let writer = client_of(&cluster, leader).await;
    let reader = client_of(&cluster, follower).await.linearizable();
    writer.create("/k", b"0", persistent()).await.unwrap();
    for i in 1..=20 {
        writer.set_data("/k", i.to_string().as_bytes(), None).await.unwrap();
        // A different client on a different member: only the read index makes
        // this see the write that was just acknowledged.
        let (data, stat) = reader.get_data("/k").await.unwrap();
        assert_eq!(data, i.to_string().as_bytes());
        assert_eq!(stat.version, i);
    }
    // Read-your-writes through a follower without a linearizable read: the
    // follower forwards the write and waits until it has applied it.
    let same = client_of(&cluster, follower).await;
    for i in 0..20 {
        let stat = same.set_data("/k", format!("f{i}").as_bytes(), None).await.unwrap();
        let (data, read) = same.get_data("/k").await.unwrap();
        assert_eq!(data, format!("f{i}").as_bytes());
        assert_eq!(read.version, stat.version);
    }
    cluster.shutdown().await;
}

/// Acknowledged creates, and creates whose outcome is unknown.
#[derive(Default)]
struct Outcomes {
    acked: Vec<String>,
    unknown: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_a_new_one_and_loses_no_acknowledged_write() {
    let mut cluster = TestCluster::start(3).await;
    let old_leader = cluster.wait_leader(LEADER_WAIT).await;
    let client = client_of_all(&cluster).await;
    client.create("/w", b"", persistent()).await.unwrap();

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let client = client.clone();
        let outcomes = outcomes.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let path = format!("/w/{w}-{i}");
                match client.create(&path, b"x", persistent()).await {
                    Ok(_) => outcomes.lock().acked.push(path),
                    Err(e) if e.is_definite() => panic!("definite failure for {path}: {e}"),
                    Err(_) => outcomes.lock().unknown.push(path),
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let acked_before_kill = outcomes.lock().acked.len();
    assert!(acked_before_kill > 0, "no write was acknowledged before the kill");
    cluster.kill(old_leader).await;

    let new_leader = cluster.wait_leader(LEADER_WAIT).await;
    assert_ne!(new_leader, old_leader);
    // Keep writing under the new leader for a while, then stop.
    let resumed_at = outcomes.lock().acked.len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while outcomes.lock().acked.len() < resumed_at + 50 {
        assert!(tokio::time::Instant::now() < deadline, "writes did not resume under the new leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    let outcomes = std::mem::take(&mut *outcomes.lock());
    for id in cluster.live_ids() {
        let c = client_of(&cluster, id).await.linearizable();
        let (children, _) = c.get_children("/w").await.unwrap();
        let present: BTreeSet<String> = children.into_iter().map(|n| format!("/w/{n}")).collect();
        for path in &outcomes.acked {
            assert!(present.contains(path), "member {id} lost acknowledged write {path}");
        }
        // Nothing appears that no one tried to write.
        for path in &present {
            assert!(
                outcomes.acked.contains(path) || outcomes.unknown.contains(path),
                "member {id} has {path}, which was never written"
            );
        }
    }
    // The old leader comes back as a follower and catches up.
    cluster.restart(old_leader).await;
    let leader = cluster.wait_leader(LEADER_WAIT).await;
    let target = cluster.member(leader).applied_zxid();
    cluster.wait_applied(old_leader, target, Duration::from_secs(10)).await;
    let a = cluster.member(leader).state.read().tree.get_all_children_number("/w", &[]).unwrap();
    let b = cluster.member(old_leader).state.read().tree.get_all_children_number("/w", &[]).unwrap();
    assert_eq!(a, b);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_member_keeps_all_data() {
    let mut cluster = TestCluster::start_with(3, |c| {
        // Some of the data in a snapshot, the rest only in the log.
        c.snapshot_every = 50;
        c.keep_logs_behind_snapshot = 10;
    })
    .await;
    cluster.wait_leader(LEADER_WAIT).await;
    let client = client_of_all(&cluster).await;
    client.create("/keep", b"root", persistent()).await.unwrap();
    for i in 0..120 {
        client.create(&format!("/keep/n{i:03}"), format!("{i}").as_bytes(), persistent()).await.unwrap();
    }
    client.set_data("/keep/n007", b"changed", Some(0)).await.unwrap();
    client.delete("/keep/n008", None).await.unwrap();
    let before_digest = {
        let leader = cluster.wait_leader(LEADER_WAIT).await;
        let m = cluster.member(leader);
        let st = m.state.read();
        (st.tree.digest(), st.last_applied.map(|l| l.index))
    };
    drop(client);

    for id in 1..=3 {
        cluster.kill(id).await;
    }
    for id in 1..=3 {
        cluster.restart(id).await;
    }
    cluster.wait_leader(LEADER_WAIT).await;

    let client = client_of_all(&cluster).await;
    client.sync("/").await.unwrap();
    assert_eq!(client.get_all_children_number("/keep").await.unwrap(), 119);
    assert_eq!(client.get_data("/keep/n007").await.unwrap().0, b"changed");
    assert_eq!(client.get_data("/keep/n119").await.unwrap().0, b"119");
    assert_eq!(client.exists("/keep/n008").await.unwrap(), None);
    // Each replica rebuilt exactly the tree it had, at the same zxid.
    for id in 1..=3 {
        cluster.wait_applied(id, before_digest.1.unwrap(), Duration::from_secs(10)).await;
    }
    // New writes get zxids above every old one: the log went on, it did not restart.
    let stat = client.set_data("/keep", b"after", None).await.unwrap();
    assert!(stat.mzxid as u64 > before_digest.1.unwrap());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_missed_many_entries_catches_up_by_snapshot() {
    let mut cluster = TestCluster::start_with(3, |c| {
        c.snapshot_every = 100;
        c.keep_logs_behind_snapshot = 10;
    })
    .await;
    let leader = cluster.wait_leader(LEADER_WAIT).await;
    let lagging = if leader == 3 { 2 } else { 3 };
    let client = client_of(&cluster, leader).await;
    client.create("/snap", b"", persistent()).await.unwrap();
    let lagging_had = cluster.member(leader).applied_zxid();
    cluster.wait_applied(lagging, lagging_had, Duration::from_secs(5)).await;
    cluster.kill(lagging).await;
    // Log positions: the entry that holds the last txn the lagging member had.
    let lagging_entry = corral_server::raft::types::zxid::entry(lagging_had);

    // Far more entries than the leader keeps behind its snapshots, written as
    // multis to make it quick.
    for batch in 0..40 {
        let ops = (0..10)
            .map(|i| corral_client::Op::create(format!("/snap/b{batch:02}-{i}"), vec![b'x'; 100], persistent()))
            .collect();
        client.multi(ops).await.unwrap();
    }
    for _ in 0..300 {
        client.set_data("/snap", b"tick", None).await.unwrap();
    }
    // The entries the lagging member needs are gone from the leader's log.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let purged = cluster.member(leader).raft.metrics().borrow().purged.map_or(0, |l| l.index);
        if purged > lagging_entry + 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "leader never purged past {lagging_entry}: {purged}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    cluster.restart(lagging).await;
    let target = cluster.member(leader).applied_zxid();
    cluster.wait_applied(lagging, target, Duration::from_secs(20)).await;
    let snapshot = cluster.member(lagging).raft.metrics().borrow().snapshot;
    assert!(
        snapshot.is_some_and(|s| s.index > lagging_entry),
        "member {lagging} caught up without a newer snapshot: {snapshot:?}"
    );
    {
        let st = cluster.member(lagging).state.read();
        assert_eq!(st.tree.get_all_children_number("/snap", &[]).unwrap(), 400);
        let (data, stat) = st.tree.get_data("/snap", &[]).unwrap();
        assert_eq!(data, b"tick");
        assert_eq!(stat.version, 300);
    }
    let leader_digest = cluster.member(leader).state.read().tree.digest();
    cluster.wait_applied(lagging, cluster.member(leader).applied_zxid(), Duration::from_secs(5)).await;
    assert_eq!(cluster.member(lagging).state.read().tree.digest(), leader_digest);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_cannot_acknowledge_writes() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(LEADER_WAIT).await;
    let client = client_of(&cluster, leader).await;
    client.create("/q", b"", persistent()).await.unwrap();
    for id in 1..=3 {
        if id != leader {
            cluster.kill(id).await;
        }
    }
    let lonely = Client::builder([cluster.endpoint(leader)])
        .request_timeout(Duration::from_secs(3))
        .connect()
        .await
        .unwrap();
    let r = lonely.set_data("/q", b"lost?", None).await;
    assert!(matches!(r, Err(ref e) if !e.is_definite()), "a lone member acknowledged a write: {r:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_limit_is_configurable() {
    let cluster = TestCluster::start_with(3, |c| c.max_data_len = 2 * 1024 * 1024).await;
    cluster.wait_leader(LEADER_WAIT).await;
    let client = client_of_all(&cluster).await;
    let big = vec![3u8; 1536 * 1024];
    client.create("/big", &big, persistent()).await.unwrap();
    let too_big = vec![3u8; 2 * 1024 * 1024 + 1];
    assert_eq!(code(client.set_data("/big", &too_big, None).await), ErrorCode::BadArguments);
    for id in 1..=3 {
        let c = client_of(&cluster, id).await;
        c.sync("/").await.unwrap();
        assert_eq!(c.get_data("/big").await.unwrap().0.len(), big.len(), "member {id}");
    }
    cluster.shutdown().await;
}

fn code(r: Result<impl std::fmt::Debug, Error>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_their_specific_error_and_everyone_else_is_served() {
    use corral_proto::v1::data_client::DataClient;
    use corral_proto::v1::{CreateRequest, GetDataRequest, SetDataRequest};

    let cluster = TestCluster::start(3).await;
    cluster.wait_leader(LEADER_WAIT).await;
    let client = client_of_all(&cluster).await;
    let bystander = client_of(&cluster, 2).await;
    bystander.create("/ok", b"fine", persistent()).await.unwrap();

    // Invalid paths, sent raw so the client's own validation does not stop them.
    let mut raw = DataClient::connect(format!("http://{}", cluster.endpoint(1))).await.unwrap();
    for bad in ["", "no-slash", "/trailing/", "/a//b", "/a/./b", "/a/../b", "/nul\u{0}", "/ctl\u{1}x"] {
        let status = raw
            .create(CreateRequest { path: bad.into(), data: b"x".to_vec().into(), ..Default::default() })
            .await
            .expect_err(bad);
        let (code, _) = corral_proto::status::from_status(&status).expect("typed error");
        assert_eq!(code, ErrorCode::BadArguments, "{bad:?}");
    }
    // As in ZooKeeper, /zookeeper itself cannot be deleted (its children can be made).
    assert_eq!(code(client.delete("/zookeeper", None).await), ErrorCode::BadArguments);
    let status = raw.get_data(GetDataRequest { path: "bad".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(corral_proto::status::from_status(&status).unwrap().0, ErrorCode::BadArguments);

    // Oversized data: a clean error, nothing written, the connection still fine.
    let big = vec![7u8; 1024 * 1024 + 1];
    assert_eq!(code(client.create("/big", &big, persistent()).await), ErrorCode::BadArguments);
    assert_eq!(code(client.set_data("/ok", &big, None).await), ErrorCode::BadArguments);
    let status = raw
        .set_data(SetDataRequest { path: "/ok".into(), data: big.clone().into(), version: -1, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(corral_proto::status::from_status(&status).unwrap().0, ErrorCode::BadArguments);
    assert_eq!(client.exists("/big").await.unwrap(), None);
    // Exactly at the limit is fine.
    let max = vec![1u8; 1024 * 1024];
    client.create("/max", &max, persistent()).await.unwrap();
    assert_eq!(client.get_data("/max").await.unwrap().0.len(), max.len());

    // Wrong versions.
    assert_eq!(code(client.set_data("/ok", b"x", Some(5)).await), ErrorCode::BadVersion);
    assert_eq!(code(client.delete("/ok", Some(3)).await), ErrorCode::BadVersion);
    assert_eq!(code(client.check("/ok", 9).await), ErrorCode::BadVersion);

    // A child of an ephemeral node.
    let owner = client_of_all(&cluster).await;
    owner.start_session(10_000).await.unwrap();
    owner.create("/eph", b"", CreateOptions::new(CreateMode::Ephemeral)).await.unwrap();
    assert_eq!(
        code(owner.create("/eph/child", b"", persistent()).await),
        ErrorCode::NoChildrenForEphemerals
    );

    // Deleting a node that has children; missing nodes and parents.
    client.create("/parent", b"", persistent()).await.unwrap();
    client.create("/parent/kid", b"", persistent()).await.unwrap();
    assert_eq!(code(client.delete("/parent", None).await), ErrorCode::NotEmpty);
    assert_eq!(code(client.delete("/absent", None).await), ErrorCode::NoNode);
    assert_eq!(code(client.create("/absent/kid", b"", persistent()).await), ErrorCode::NoNode);
    assert_eq!(code(client.create("/ok", b"", persistent()).await), ErrorCode::NodeExists);

    // Garbage on the wire: plain junk, an HTTP/2 preface followed by junk, and a
    // gRPC frame whose protobuf is malformed.
    for junk in [
        b"\x00\x01\x02garbage that is not http/2\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
        vec![0xAB; 70_000],
        // Replication link openings (raft::link): a hello that is not bincode, a frame length
        // of 4 GiB, the magic alone, and half of it.
        [&b"CRLK"[..], &[0, 0, 0, 8], b"\xff\xff\xff\xff\xff\xff\xff\xff"].concat(),
        [&b"CRLK"[..], &[0xff, 0xff, 0xff, 0xff]].concat(),
        b"CRLK".to_vec(),
        b"CR".to_vec(),
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(cluster.endpoint(1)).await.unwrap();
        let _ = s.write_all(&junk).await;
        let mut buf = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.endpoint(1)))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/corral.v1.Data/GetData");
    let malformed = grpc
        .unary::<_, corral_proto::v1::GetDataResponse, _>(
            tonic::Request::new(bytes::Bytes::from_static(b"\xff\xff\xff\xff\x0f")),
            path,
            RawCodec,
        )
        .await;
    assert!(malformed.is_err(), "a malformed request was accepted: {malformed:?}");

    // Everyone else is still served, on every member.
    for id in 1..=3 {
        let c = client_of(&cluster, id).await;
        c.sync("/").await.unwrap();
        assert_eq!(c.get_data("/ok").await.unwrap().0, b"fine");
    }
    bystander.set_data("/ok", b"still fine", Some(0)).await.unwrap();
    cluster.shutdown().await;
}

/// Sends raw bytes as a gRPC message and decodes the reply as `T`: the only way
/// to put a malformed protobuf on the wire through tonic.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = corral_proto::v1::GetDataResponse;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<corral_proto::v1::GetDataResponse>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

#[derive(Debug)]
struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: bytes::Bytes, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

/// AppendEntries travel over a TCP connection of their own on the gRPC port
/// (`corral_server::raft::link`): a caller without the cluster secret gets nothing, and a
/// member that has one is answered (here: told that a newer term exists).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replication_link_answers_members_and_refuses_strangers() {
    use corral_server::raft::link::AppendLink;
    use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};

    let cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let stale = AppendEntriesRequest {
        vote: openraft::Vote::new_committed(0, leader),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![],
    };

    let mut stranger = AppendLink::connect(&cluster.endpoint(follower), "not-the-secret", 9).await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(10), stranger.append_entries(&stale)).await.unwrap();
    assert!(refused.is_err(), "a link without the cluster secret was answered: {refused:?}");

    let mut member = AppendLink::connect(&cluster.endpoint(follower), "corral-dev-secret", leader).await.unwrap();
    for _ in 0..3 {
        let reply = member.append_entries(&stale).await.unwrap().unwrap();
        assert!(matches!(reply, AppendEntriesResponse::HigherVote(_)), "term 0 must be refused: {reply:?}");
    }

    // Replication itself (over links) goes on.
    let c = client_of_all(&cluster).await;
    c.create("/after-link-probes", b"x", persistent()).await.unwrap();
    for id in 1..=3 {
        let c = client_of(&cluster, id).await;
        c.sync("/").await.unwrap();
        assert_eq!(c.get_data("/after-link-probes").await.unwrap().0, b"x".to_vec());
    }
    cluster.shutdown().await;
}
