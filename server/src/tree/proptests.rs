//! Model-based property tests: random operation sequences applied to the DataTree and
//! to a naive model must agree on every result and on the final contents; snapshots
//! must round-trip whatever the history.

use std::collections::BTreeMap;

use corral_proto::ErrorCode;
use proptest::prelude::*;

use super::*;

/// Paths the generated operations use: a small space so they collide often, plus
/// one invalid path.
const PATHS: &[&str] = &["/a", "/b", "/a/b", "/a/c", "/b/a", "/a/b/c", "/c", "/a/"];

#[derive(Debug, Clone)]
enum Op {
    Create { path: &'static str, data: Vec<u8> },
    Delete { path: &'static str, version: i32 },
    SetData { path: &'static str, data: Vec<u8>, version: i32 },
    Check { path: &'static str, version: i32 },
}

#[derive(Debug, Clone)]
enum Step {
    One(Op),
    Multi(Vec<Op>),
}

fn path() -> impl Strategy<Value = &'static str> {
    prop::sample::select(PATHS)
}

fn version() -> impl Strategy<Value = i32> {
    prop_oneof![Just(-1), 0..3]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..4)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (path(), data()).prop_map(|(path, data)| Op::Create { path, data }),
        2 => (path(), version()).prop_map(|(path, version)| Op::Delete { path, version }),
        2 => (path(), data(), version()).prop_map(|(path, data, version)| Op::SetData { path, data, version }),
        1 => (path(), version()).prop_map(|(path, version)| Op::Check { path, version }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => op().prop_map(Step::One),
        1 => prop::collection::vec(op(), 0..5).prop_map(Step::Multi),
    ]
}

fn to_txn_op(op: &Op) -> TxnOp {
    match op.clone() {
        Op::Create { path, data } => {
            TxnOp::Create { path: path.into(), data, acl: Acl::open_unsafe(), mode: CreateMode::Persistent, ttl_ms: 0 }
        }
        Op::Delete { path, version } => TxnOp::Delete { path: path.into(), version },
        Op::SetData { path, data, version } => TxnOp::SetData { path: path.into(), data, version },
        Op::Check { path, version } => TxnOp::Check { path: path.into(), version },
    }
}

/// What the model predicts for one op: success (with the new version for setData,
/// the created path for create) or an error code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Created(String),
    Deleted,
    DataSet(i32),
    Checked,
    Failed(ErrorCode),
}

/// The naive model: path -> (data, version), for user nodes only.
#[derive(Debug, Clone, Default)]
struct Model {
    nodes: BTreeMap<String, (Vec<u8>, i32)>,
}

impl Model {
    fn valid(path: &str) -> bool {
        !path.ends_with('/')
    }

    fn parent(path: &str) -> &str {
        match path.rfind('/') {
            Some(0) | None => "/",
            Some(i) => &path[..i],
        }
    }

    fn exists(&self, path: &str) -> bool {
        path == "/" || self.nodes.contains_key(path)
    }

    fn has_children(&self, path: &str) -> bool {
        self.nodes.keys().any(|p| Model::parent(p) == path)
    }

    fn version_ok(current: i32, expected: i32) -> bool {
        expected == -1 || expected == current
    }

    fn apply(&mut self, op: &Op) -> Expect {
        use ErrorCode::*;
        match op {
            Op::Create { path, data } => {
                if !Model::valid(path) {
                    Expect::Failed(BadArguments)
                } else if !self.exists(Model::parent(path)) {
                    Expect::Failed(NoNode)
                } else if self.exists(path) {
                    Expect::Failed(NodeExists)
                } else {
                    self.nodes.insert(path.to_string(), (data.clone(), 0));
                    Expect::Created(path.to_string())
                }
            }
            Op::Delete { path, version } => {
                if !Model::valid(path) {
                    return Expect::Failed(BadArguments);
                }
                match self.nodes.get(*path) {
                    None => Expect::Failed(NoNode),
                    Some((_, v)) if !Model::version_ok(*v, *version) => Expect::Failed(BadVersion),
                    Some(_) if self.has_children(path) => Expect::Failed(NotEmpty),
                    Some(_) => {
                        self.nodes.remove(*path);
                        Expect::Deleted
                    }
                }
            }
            Op::SetData { path, data, version } => {
                if !Model::valid(path) {
                    return Expect::Failed(BadArguments);
                }
                match self.nodes.get_mut(*path) {
                    None => Expect::Failed(NoNode),
                    Some((_, v)) if !Model::version_ok(*v, *version) => Expect::Failed(BadVersion),
                    Some(node) => {
                        node.0 = data.clone();
                        node.1 += 1;
                        Expect::DataSet(node.1)
                    }
                }
            }
            Op::Check { path, version } => {
                if !Model::valid(path) {
                    return Expect::Failed(BadArguments);
                }
                match self.nodes.get(*path) {
                    None => Expect::Failed(NoNode),
                    Some((_, v)) if !Model::version_ok(*v, *version) => Expect::Failed(BadVersion),
                    Some(_) => Expect::Checked,
                }
            }
        }
    }

    /// All-or-nothing, with ZooKeeper's failure shape.
    fn apply_multi(&mut self, ops: &[Op]) -> Vec<Expect> {
        let mut scratch = self.clone();
        let mut out = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let e = scratch.apply(op);
            if let Expect::Failed(code) = e {
                let mut shape = vec![Expect::Failed(ErrorCode::Ok); i];
                shape.push(Expect::Failed(code));
                shape.resize(ops.len(), Expect::Failed(ErrorCode::RuntimeInconsistency));
                return shape;
            }
            out.push(e);
        }
        *self = scratch;
        out
    }
}

fn observed(result: &TxnResult) -> Expect {
    match result {
        Ok(OpOutcome::Created { path, .. }) => Expect::Created(path.clone()),
        Ok(OpOutcome::Deleted) => Expect::Deleted,
        Ok(OpOutcome::DataSet { stat }) => Expect::DataSet(stat.version),
        Ok(OpOutcome::Checked) => Expect::Checked,
        Ok(other) => panic!("unexpected outcome {other:?}"),
        Err(code) => Expect::Failed(*code),
    }
}

/// The user nodes of a tree (everything but `/` and `/zookeeper...`), as the model holds them.
fn contents(tree: &DataTree) -> BTreeMap<String, (Vec<u8>, i32)> {
    tree.paths()
        .into_iter()
        .filter(|p| p != "/" && p != "/zookeeper" && !p.starts_with("/zookeeper/"))
        .map(|p| {
            let (data, stat) = tree.get_data(&p, &[]).unwrap();
            (p, (data, stat.version))
        })
        .collect()
}

/// Structural invariants every tree must keep.
fn check_invariants(tree: &DataTree) {
    for p in tree.paths() {
        let (children, stat) = tree.get_children(&p, &[]).unwrap();
        assert_eq!(stat.num_children as usize, children.len(), "numChildren of {p}");
        assert_eq!(stat.data_length as usize, tree.get_data(&p, &[]).unwrap().0.len());
    }
    assert_eq!(tree.get_all_children_number("/", &[]).unwrap() as usize, tree.node_count() - 1);
    let restored = DataTree::from_snapshot(&tree.to_snapshot()).expect("snapshot restores");
    assert_eq!(&restored, tree);
    assert_eq!(restored.digest(), tree.digest());
    assert_eq!(restored.to_snapshot(), tree.to_snapshot());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tree_agrees_with_naive_model_on_every_result_and_final_contents(
        steps in prop::collection::vec(step(), 1..40)
    ) {
        let mut tree = DataTree::new();
        let mut model = Model::default();
        for (i, step) in steps.iter().enumerate() {
            let zxid = i as u64 + 1;
            let before = tree.digest();
            match step {
                Step::One(op) => {
                    let expected = model.apply(op);
                    let txn = Txn { time_ms: zxid as i64, session_id: 0, auth: vec![], op: to_txn_op(op) };
                    let applied = tree.apply(zxid, &txn);
                    prop_assert_eq!(observed(&applied.result), expected.clone(), "step {} {:?}", i, op);
                    if matches!(expected, Expect::Failed(_) | Expect::Checked) {
                        prop_assert!(applied.events.is_empty());
                        prop_assert_eq!(tree.digest(), before);
                    }
                }
                Step::Multi(ops) => {
                    let expected = model.apply_multi(ops);
                    let txn = Txn {
                        time_ms: zxid as i64,
                        session_id: 0,
                        auth: vec![],
                        op: TxnOp::Multi(ops.iter().map(to_txn_op).collect()),
                    };
                    let applied = tree.apply(zxid, &txn);
                    let results = match &applied.result {
                        Ok(OpOutcome::Multi(results)) => results.iter().map(observed).collect::<Vec<_>>(),
                        other => panic!("multi gave {other:?}"),
                    };
                    prop_assert_eq!(&results, &expected, "step {} {:?}", i, ops);
                    if expected.iter().any(|e| matches!(e, Expect::Failed(_))) {
                        prop_assert!(applied.events.is_empty());
                        prop_assert_eq!(tree.digest(), before, "failed multi changed the tree");
                    }
                }
            }
            prop_assert_eq!(tree.last_zxid(), zxid);
        }
        prop_assert_eq!(contents(&tree), model.nodes.clone());
        check_invariants(&tree);
    }
}

/// Operations over the whole feature set (sessions, ephemerals, sequential, containers,
/// TTL, ACLs), for invariants and determinism rather than a model.
#[derive(Debug, Clone)]
enum Wide {
    Create { path: &'static str, mode: i32, session: usize, restricted: bool },
    Delete { path: &'static str },
    SetData { path: &'static str, len: usize },
    SetAcl { path: &'static str, restricted: bool },
    OpenSession,
    CloseSession { session: usize },
    Multi(Vec<Wide>),
}

fn wide() -> impl Strategy<Value = Wide> {
    let leaf = prop_oneof![
        4 => (path(), 0..7i32, 0..3usize, any::<bool>())
            .prop_map(|(path, mode, session, restricted)| Wide::Create { path, mode, session, restricted }),
        2 => path().prop_map(|path| Wide::Delete { path }),
        2 => (path(), 0..6usize).prop_map(|(path, len)| Wide::SetData { path, len }),
        1 => (path(), any::<bool>()).prop_map(|(path, restricted)| Wide::SetAcl { path, restricted }),
        1 => Just(Wide::OpenSession),
        1 => (0..3usize).prop_map(|session| Wide::CloseSession { session }),
    ];
    leaf.prop_recursive(1, 8, 4, |inner| prop::collection::vec(inner, 0..4).prop_map(Wide::Multi))
}

fn wide_op(w: &Wide, sessions: &[i64]) -> (i64, TxnOp) {
    let restricted_acl = || vec![Acl { perms: perms::READ | perms::ADMIN, id: Id::anyone() }];
    match w {
        Wide::Create { path, mode, session, restricted } => {
            let mode = CreateMode::from_flag(*mode).unwrap_or(CreateMode::Persistent);
            let acl = if *restricted { restricted_acl() } else { Acl::open_unsafe() };
            let ttl_ms = if mode.is_ttl() { 1000 } else { 0 };
            let session = sessions.get(*session).copied().unwrap_or(0);
            (session, TxnOp::Create { path: path.to_string(), data: vec![7], acl, mode, ttl_ms })
        }
        Wide::Delete { path } => (0, TxnOp::Delete { path: path.to_string(), version: -1 }),
        Wide::SetData { path, len } => (0, TxnOp::SetData { path: path.to_string(), data: vec![1; *len], version: -1 }),
        Wide::SetAcl { path, restricted } => {
            let acl = if *restricted { restricted_acl() } else { Acl::open_unsafe() };
            (0, TxnOp::SetAcl { path: path.to_string(), acl, version: -1 })
        }
        Wide::OpenSession => (0, TxnOp::CreateSession { timeout_ms: 5000, password: vec![1, 2] }),
        Wide::CloseSession { session } => {
            (0, TxnOp::CloseSession { session_id: sessions.get(*session).copied().unwrap_or(-7) })
        }
        Wide::Multi(ops) => {
            let session = sessions.first().copied().unwrap_or(0);
            (session, TxnOp::Multi(ops.iter().map(|o| wide_op(o, sessions).1).collect()))
        }
    }
}

fn run_wide(steps: &[Wide]) -> (DataTree, Vec<Applied>) {
    let mut tree = DataTree::with_max_data_len(4);
    let mut log = Vec::new();
    let mut sessions: Vec<i64> = Vec::new();
    for (i, w) in steps.iter().enumerate() {
        let zxid = (i as u64 + 1) * 3;
        let (session_id, op) = wide_op(w, &sessions);
        let before = tree.digest();
        let applied = tree.apply(zxid, &Txn { time_ms: i as i64, session_id, auth: vec![], op });
        match &applied.result {
            Ok(OpOutcome::SessionCreated { session_id, .. }) => sessions.push(*session_id),
            Ok(OpOutcome::Multi(rs)) if rs.iter().any(Result::is_err) => {
                assert!(applied.events.is_empty());
                assert_eq!(tree.digest(), before, "failed multi changed the tree");
            }
            Err(_) => {
                assert!(applied.events.is_empty());
                assert_eq!(tree.digest(), before, "failed op changed the tree");
            }
            _ => {}
        }
        log.push(applied);
    }
    (tree, log)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_history_keeps_invariants_round_trips_and_replays_identically(
        steps in prop::collection::vec(wide(), 1..30)
    ) {
        let (a, log_a) = run_wide(&steps);
        let (b, log_b) = run_wide(&steps);
        prop_assert_eq!(&log_a, &log_b);
        prop_assert_eq!(a.to_snapshot(), b.to_snapshot());
        check_invariants(&a);
        // Ephemeral index agrees with the nodes' owners.
        for (id, _) in a.sessions() {
            for p in a.get_ephemerals(id, "/") {
                prop_assert_eq!(a.exists(&p).unwrap().map(|s| s.ephemeral_owner), Some(id));
            }
        }
        let owned: usize = a.paths().iter()
            .filter(|p| a.exists(p).unwrap().is_some_and(|s| a.session(s.ephemeral_owner).is_some()))
            .count();
        let listed: usize = a.sessions().map(|(id, _)| a.get_ephemerals(id, "/").len()).sum();
        prop_assert_eq!(owned, listed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A snapshot copied out a few nodes at a time while writes go on is the tree as it was
    /// when the snapshot began, byte for byte.
    #[test]
    fn a_snapshot_written_in_parts_is_the_tree_at_its_begin_whatever_changes_meanwhile(
        before in prop::collection::vec(wide(), 0..30),
        during in prop::collection::vec((wide(), 1..4usize), 0..30),
    ) {
        let mut tree = DataTree::with_max_data_len(4);
        let mut sessions: Vec<i64> = Vec::new();
        let mut zxid = 0;
        let mut apply = |tree: &mut DataTree, w: &Wide| {
            zxid += 1;
            let (session_id, op) = wide_op(w, &sessions);
            let applied = tree.apply(zxid, &Txn { time_ms: zxid as i64, session_id, auth: vec![], op });
            if let Ok(OpOutcome::SessionCreated { session_id, .. }) = applied.result {
                sessions.push(session_id);
            }
        };
        for w in &before {
            apply(&mut tree, w);
        }
        let expected = tree.to_snapshot();
        let mut writer = tree.begin_snapshot();
        let mut done = false;
        for (w, part) in &during {
            apply(&mut tree, w);
            if !done {
                done = tree.write_snapshot_part(&mut writer, *part).unwrap();
            }
        }
        while !done {
            done = tree.write_snapshot_part(&mut writer, 1).unwrap();
        }
        tree.end_snapshot(&writer);
        prop_assert!(tree.frozen.is_none());
        prop_assert_eq!(writer.finish(), expected);
        // The tree itself is untouched by the copying.
        check_invariants(&tree);
        prop_assert!(DataTree::from_snapshot(&tree.to_snapshot()).unwrap() == tree);
    }
}

#[test]
fn a_second_snapshot_or_a_replaced_tree_abandons_the_first() {
    let mut tree = DataTree::new();
    let mut first = tree.begin_snapshot();
    let mut second = tree.begin_snapshot();
    assert!(tree.write_snapshot_part(&mut first, 10).is_err());
    assert_eq!(tree.write_snapshot_part(&mut second, 100), Ok(true));
    // A finished writer cannot be fed again, and ending the abandoned one leaves the other be.
    tree.end_snapshot(&first);
    assert!(tree.frozen.is_some());
    tree.end_snapshot(&second);
    assert!(tree.frozen.is_none());
    assert_eq!(second.finish(), tree.to_snapshot());

    let mut writer = tree.begin_snapshot();
    let replaced = DataTree::from_snapshot(&tree.to_snapshot()).unwrap();
    assert!(replaced.write_snapshot_part(&mut writer, 10).is_err());
}
