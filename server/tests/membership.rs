//! Membership changes end to end: real in-process members on loopback, driven by the real
//! client. An operator grows a 3-member ensemble to 4 voters and an observer while writes go
//! on, removes the leader, and every acknowledged write is on every remaining member; wrong
//! changes get their specific error and change nothing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_client::{Client, CreateMode, CreateOptions, Error, ErrorCode, Membership};
use corral_server::api::membership::MembershipChange;
use corral_server::testing::TestCluster;

const LEADER_WAIT: Duration = Duration::from_secs(15);
/// `Config::default().cluster_secret`, which the test cluster keeps.
const SECRET: &str = "corral-dev-secret";

fn persistent() -> CreateOptions {
    CreateOptions::new(CreateMode::Persistent)
}

fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

fn ids(pairs: &[(u64, String)]) -> Vec<u64> {
    pairs.iter().map(|(id, _)| *id).collect()
}

/// Creates `/load/N` through any member until `stop`, recording what was acknowledged.
fn start_writer(client: Client, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let path = format!("/load/{n:06}");
            n += 1;
            match client.create(&path, b"x", persistent()).await {
                Ok(_) => acked.push(path),
                // The outcome of a write in flight across a change of leader may be unknown;
                // only acknowledged writes are checked.
                Err(e) if !e.is_definite() => {}
                Err(e) => panic!("write {path} failed definitely: {e}"),
            }
        }
        acked
    })
}

/// Waits until `id` has applied everything member `from` has, and both hold the same tree.
async fn wait_same_tree(cluster: &TestCluster, id: u64, from: u64) {
    let target = cluster.member(from).applied_zxid();
    cluster.wait_applied(id, target, Duration::from_secs(20)).await;
    cluster.wait_applied(from, target, Duration::from_secs(20)).await;
    let digest = |m: u64| cluster.member(m).state.read().tree.digest();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while digest(id) != digest(from) || cluster.member(id).applied_zxid() != cluster.member(from).applied_zxid() {
        assert!(tokio::time::Instant::now() < deadline, "members {id} and {from} did not converge");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_grows_and_loses_its_leader_under_load_without_losing_a_write() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.wait_leader(LEADER_WAIT).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let admin = Client::connect(vec![cluster.endpoint(follower)]).await.unwrap();
    admin.create("/load", b"", persistent()).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(Client::connect(cluster.endpoints()).await.unwrap(), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A voter joins through a follower (which forwards the change to the leader). It catches up
    // as an observer first, so when the call returns it already holds the tree.
    let four = cluster.start_joining_member().await;
    let m: Membership = admin.add_member(SECRET, four, &cluster.endpoint(four), true).await.unwrap();
    assert_eq!(ids(&m.voters), [1, 2, 3, 4]);
    assert!(m.observers.is_empty());
    assert!(m.config_zxid > 0);
    // Adding it again changes nothing.
    let again = admin.add_member(SECRET, four, &cluster.endpoint(four), true).await.unwrap();
    assert_eq!(again, m);

    // An observer joins: it replicates, serves clients and never votes.
    let five = cluster.start_joining_member().await;
    let m = admin.add_member(SECRET, five, &cluster.endpoint(five), false).await.unwrap();
    assert_eq!(ids(&m.voters), [1, 2, 3, 4]);
    assert_eq!(ids(&m.observers), [5]);
    let observer = Client::connect(vec![cluster.endpoint(five)]).await.unwrap();
    observer.sync("/").await.unwrap();
    let (data, _) = observer.get_data("/load").await.unwrap();
    assert_eq!(data, b"");
    let status = observer.status().await.unwrap();
    assert_eq!(status.member_id, five);
    assert!(status.members.iter().any(|s| s.id == five && !s.voter));

    // The leader is removed while writes go on: another voter takes over.
    let old_leader = cluster.wait_leader_among(&[1, 2, 3, 4], LEADER_WAIT).await;
    let m = admin.remove_member(SECRET, old_leader).await.unwrap();
    let remaining: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|id| *id != old_leader).collect();
    assert_eq!(ids(&m.voters), remaining);
    assert_eq!(ids(&m.observers), [5]);
    let mut everyone = remaining.clone();
    everyone.push(five);
    let new_leader = cluster.wait_leader_among(&everyone, LEADER_WAIT).await;
    assert_ne!(new_leader, old_leader);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(acked.len() > 10, "the writer made too little progress: {}", acked.len());

    // Every acknowledged write is on every remaining member, voter and observer alike, and
    // they hold one tree.
    let reader = Client::connect(vec![cluster.endpoint(new_leader)]).await.unwrap();
    let children: BTreeSet<String> = reader.get_children("/load").await.unwrap().0.into_iter().collect();
    for path in &acked {
        let name = path.trim_start_matches("/load/");
        assert!(children.contains(name), "acknowledged {path} is missing");
    }
    for id in everyone.iter().copied().filter(|id| *id != new_leader) {
        wait_same_tree(&cluster, id, new_leader).await;
    }
    // The removed member gets nothing more.
    let left_at = cluster.member(old_leader).applied_zxid();
    reader.create("/after-removal", b"", persistent()).await.unwrap();
    wait_same_tree(&cluster, five, new_leader).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cluster.member(old_leader).applied_zxid(), left_at);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_membership_changes_get_their_specific_error_and_change_nothing() {
    let cluster = TestCluster::start(3).await;
    cluster.wait_leader(LEADER_WAIT).await;
    let admin = Client::connect(cluster.endpoints()).await.unwrap();
    let before = cluster.member(1).membership();

    // Operators only.
    assert_eq!(code(admin.add_member("wrong", 4, "127.0.0.1:1", true).await), ErrorCode::NoAuth);
    assert_eq!(code(admin.remove_member("", 2).await), ErrorCode::NoAuth);
    // Invalid changes.
    assert_eq!(code(admin.add_member(SECRET, 0, "127.0.0.1:1", true).await), ErrorCode::BadArguments);
    assert_eq!(code(admin.add_member(SECRET, 4, "no-port", true).await), ErrorCode::BadArguments);
    assert_eq!(code(admin.add_member(SECRET, 4, "127.0.0.1:0", false).await), ErrorCode::BadArguments);
    // An id already in the ensemble, at another address.
    assert_eq!(code(admin.add_member(SECRET, 2, "127.0.0.1:1", true).await), ErrorCode::BadArguments);
    // A voter cannot become an observer in place.
    let two = cluster.endpoint(2);
    assert_eq!(code(admin.add_member(SECRET, 2, &two, false).await), ErrorCode::BadArguments);
    // Nobody to remove.
    assert_eq!(code(admin.remove_member(SECRET, 9).await), ErrorCode::NoNode);
    assert_eq!(cluster.member(1).membership(), before);

    // Shrinking to one voter works; removing that last one does not.
    admin.remove_member(SECRET, 3).await.unwrap();
    let m = admin.remove_member(SECRET, 2).await.unwrap();
    assert_eq!(ids(&m.voters), [1]);
    let last = cluster.member(1).change_membership(MembershipChange::Remove { id: 1 }).await;
    assert_eq!(last.unwrap_err().to_string().split(':').next(), Some("NewConfigNoQuorum"));
    // The one-member ensemble still takes writes.
    let solo = Client::connect(vec![cluster.endpoint(1)]).await.unwrap();
    solo.create("/solo", b"", persistent()).await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_can_come_back_with_its_log() {
    let cluster = TestCluster::start(3).await;
    cluster.wait_leader(LEADER_WAIT).await;
    let admin = Client::connect(cluster.endpoints()).await.unwrap();
    for i in 0..20 {
        admin.create(&format!("/before-{i}"), b"", persistent()).await.unwrap();
    }
    let leader = cluster.wait_leader(LEADER_WAIT).await;
    let gone = if leader == 3 { 2 } else { 3 };
    admin.remove_member(SECRET, gone).await.unwrap();
    for i in 0..20 {
        admin.create(&format!("/while-away-{i}"), b"", persistent()).await.unwrap();
    }
    // Back as a voter: it catches up from where its log stopped.
    let m = admin.add_member(SECRET, gone, &cluster.endpoint(gone), true).await.unwrap();
    assert_eq!(ids(&m.voters), [1, 2, 3]);
    wait_same_tree(&cluster, gone, leader).await;
    let local = Client::connect(vec![cluster.endpoint(gone)]).await.unwrap();
    assert_eq!(local.get_children("/").await.unwrap().0.len(), 41);
    cluster.shutdown().await;
}
