//! Every conversion between the public types and the wire types, in one place.
//!
//! Conversions from the wire are total: a missing message field (a server bug
//! or an older server) becomes the type's default rather than a panic, because
//! nothing that arrives from the network may crash the client.

use bytes::Bytes;
use corral_proto::v1 as pb;
use corral_proto::ErrorCode;

use crate::types::{
    Acl, AddWatchMode, ClusterStatus, CreateMode, EventType, MemberStatus, Membership, Op, OpResult, Role,
    Stat, WatchedEvent, WatcherType,
};

impl From<pb::Stat> for Stat {
    fn from(s: pb::Stat) -> Stat {
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: s.ephemeral_owner,
            data_length: s.data_length,
            num_children: s.num_children,
            pzxid: s.pzxid,
        }
    }
}

impl From<Stat> for pb::Stat {
    fn from(s: Stat) -> pb::Stat {
        pb::Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: s.ephemeral_owner,
            data_length: s.data_length,
            num_children: s.num_children,
            pzxid: s.pzxid,
        }
    }
}

/// A stat that the wire marks optional but the operation always returns.
pub(crate) fn stat(s: Option<pb::Stat>) -> Stat {
    s.map(Stat::from).unwrap_or_default()
}

impl From<pb::Acl> for Acl {
    fn from(a: pb::Acl) -> Acl {
        Acl { perms: a.perms, scheme: a.scheme, id: a.id }
    }
}

impl From<Acl> for pb::Acl {
    fn from(a: Acl) -> pb::Acl {
        pb::Acl { perms: a.perms, scheme: a.scheme, id: a.id }
    }
}

pub(crate) fn acls_to_pb(acl: Vec<Acl>) -> Vec<pb::Acl> {
    acl.into_iter().map(pb::Acl::from).collect()
}

impl From<CreateMode> for pb::CreateMode {
    fn from(m: CreateMode) -> pb::CreateMode {
        match m {
            CreateMode::Persistent => pb::CreateMode::Persistent,
            CreateMode::Ephemeral => pb::CreateMode::Ephemeral,
            CreateMode::PersistentSequential => pb::CreateMode::PersistentSequential,
            CreateMode::EphemeralSequential => pb::CreateMode::EphemeralSequential,
            CreateMode::Container => pb::CreateMode::Container,
            CreateMode::PersistentWithTtl => pb::CreateMode::PersistentWithTtl,
            CreateMode::PersistentSequentialWithTtl => pb::CreateMode::PersistentSequentialWithTtl,
        }
    }
}

impl From<pb::CreateMode> for CreateMode {
    fn from(m: pb::CreateMode) -> CreateMode {
        match m {
            pb::CreateMode::Persistent => CreateMode::Persistent,
            pb::CreateMode::Ephemeral => CreateMode::Ephemeral,
            pb::CreateMode::PersistentSequential => CreateMode::PersistentSequential,
            pb::CreateMode::EphemeralSequential => CreateMode::EphemeralSequential,
            pb::CreateMode::Container => CreateMode::Container,
            pb::CreateMode::PersistentWithTtl => CreateMode::PersistentWithTtl,
            pb::CreateMode::PersistentSequentialWithTtl => CreateMode::PersistentSequentialWithTtl,
        }
    }
}

/// `None` means "any version" on the wire (ZooKeeper's -1).
pub(crate) fn version(v: Option<i32>) -> i32 {
    v.unwrap_or(-1)
}

/// The wire form of one op. Ops inside a multi carry no header of their own:
/// the multi's header applies to all of them.
impl From<Op> for pb::Op {
    fn from(op: Op) -> pb::Op {
        use pb::op::Op as W;
        let inner = match op {
            Op::Create { path, data, options } => W::Create(pb::CreateRequest {
                header: None,
                path,
                data: Bytes::from(data),
                acl: acls_to_pb(options.acl),
                mode: pb::CreateMode::from(options.mode) as i32,
                ttl_ms: options.ttl_ms.unwrap_or(0),
            }),
            Op::Delete { path, version: v } => {
                W::Delete(pb::DeleteRequest { header: None, path, version: version(v) })
            }
            Op::SetData { path, data, version: v } => W::SetData(pb::SetDataRequest {
                header: None,
                path,
                data: Bytes::from(data),
                version: version(v),
            }),
            Op::Check { path, version } => {
                W::Check(pb::CheckRequest { header: None, path, version })
            }
            Op::GetData { path } => W::GetData(pb::GetDataRequest { header: None, path, watch: false }),
            Op::GetChildren { path } => W::GetChildren(pb::GetChildrenRequest { header: None, path, watch: false }),
        };
        pb::Op { op: Some(inner) }
    }
}

/// Which kind of result to expect at one position of a multi; the wire's
/// `OpResult` doesn't say, the request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Create,
    Delete,
    SetData,
    Check,
    GetData,
    GetChildren,
}

impl From<&Op> for OpKind {
    fn from(op: &Op) -> OpKind {
        match op {
            Op::Create { .. } => OpKind::Create,
            Op::Delete { .. } => OpKind::Delete,
            Op::SetData { .. } => OpKind::SetData,
            Op::Check { .. } => OpKind::Check,
            Op::GetData { .. } => OpKind::GetData,
            Op::GetChildren { .. } => OpKind::GetChildren,
        }
    }
}

/// The error code of a result; numbers ZooKeeper doesn't define become
/// `SystemError` so an unknown code never reads as success.
pub(crate) fn result_code(r: &pb::OpResult) -> ErrorCode {
    ErrorCode::from_i32(r.error).unwrap_or(ErrorCode::SystemError)
}

pub(crate) fn op_result(kind: OpKind, r: pb::OpResult) -> OpResult {
    let code = result_code(&r);
    if code != ErrorCode::Ok {
        return OpResult::Error { code };
    }
    match kind {
        OpKind::Create => OpResult::Create { path: r.path, stat: stat(r.stat) },
        OpKind::Delete => OpResult::Delete,
        OpKind::SetData => OpResult::SetData { stat: stat(r.stat) },
        OpKind::Check => OpResult::Check,
        OpKind::GetData => OpResult::GetData { data: r.data.to_vec(), stat: stat(r.stat) },
        OpKind::GetChildren => OpResult::GetChildren { children: r.children, stat: stat(r.stat) },
    }
}

impl From<pb::MemberStatus> for MemberStatus {
    fn from(m: pb::MemberStatus) -> MemberStatus {
        MemberStatus { id: m.id, addr: m.addr, role: Role::parse(&m.role), voter: m.voter }
    }
}

impl From<pb::MembershipResponse> for Membership {
    fn from(r: pb::MembershipResponse) -> Membership {
        let (voters, observers): (Vec<_>, Vec<_>) = r.members.into_iter().partition(|m| m.voter);
        let pairs = |ms: Vec<pb::MemberStatus>| ms.into_iter().map(|m| (m.id, m.addr)).collect();
        Membership { config_zxid: r.config_zxid, voters: pairs(voters), observers: pairs(observers) }
    }
}

impl From<pb::StatusResponse> for ClusterStatus {
    fn from(s: pb::StatusResponse) -> ClusterStatus {
        ClusterStatus {
            member_id: s.member_id,
            role: Role::parse(&s.role),
            leader_id: (s.leader_id != 0).then_some(s.leader_id),
            term: s.term,
            commit_zxid: s.commit_zxid,
            applied_zxid: s.applied_zxid,
            last_log_index: s.last_log_index,
            members: s.members.into_iter().map(MemberStatus::from).collect(),
            znode_count: s.znode_count,
            session_count: s.session_count,
        }
    }
}

impl From<WatcherType> for pb::WatcherType {
    fn from(w: WatcherType) -> pb::WatcherType {
        match w {
            WatcherType::Children => pb::WatcherType::Children,
            WatcherType::Data => pb::WatcherType::Data,
            WatcherType::Any => pb::WatcherType::Any,
            WatcherType::Persistent => pb::WatcherType::Persistent,
            WatcherType::PersistentRecursive => pb::WatcherType::PersistentRecursive,
        }
    }
}

impl From<pb::WatcherType> for WatcherType {
    fn from(w: pb::WatcherType) -> WatcherType {
        match w {
            pb::WatcherType::Children => WatcherType::Children,
            pb::WatcherType::Data => WatcherType::Data,
            pb::WatcherType::Any => WatcherType::Any,
            pb::WatcherType::Persistent => WatcherType::Persistent,
            pb::WatcherType::PersistentRecursive => WatcherType::PersistentRecursive,
        }
    }
}

impl From<AddWatchMode> for pb::AddWatchMode {
    fn from(m: AddWatchMode) -> pb::AddWatchMode {
        match m {
            AddWatchMode::Persistent => pb::AddWatchMode::Persistent,
            AddWatchMode::PersistentRecursive => pb::AddWatchMode::PersistentRecursive,
        }
    }
}

/// A stream event as (event, which registration fired, the path it was set
/// on). `None` for a type this client doesn't know (EVENT_TYPE_NONE or newer),
/// which is then ignored. An unknown watcher kind routes as `Any`: ZooKeeper's
/// client-side rules decide who hears it.
pub(crate) fn watch_event(e: pb::WatchEvent) -> Option<(WatchedEvent, WatcherType, String)> {
    let kind = match pb::EventType::try_from(e.r#type).ok()? {
        pb::EventType::NodeCreated => EventType::NodeCreated,
        pb::EventType::NodeDeleted => EventType::NodeDeleted,
        pb::EventType::NodeDataChanged => EventType::NodeDataChanged,
        pb::EventType::NodeChildrenChanged => EventType::NodeChildrenChanged,
        pb::EventType::None => return None,
    };
    let watcher = pb::WatcherType::try_from(e.watcher).map_or(WatcherType::Any, WatcherType::from);
    Some((WatchedEvent { kind, path: e.path, zxid: e.zxid }, watcher, e.watch_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CreateOptions;

    /// Every field distinct, so a swapped pair of fields fails the test.
    fn sample_stat() -> pb::Stat {
        pb::Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        }
    }

    #[test]
    fn stat_maps_every_field() {
        let s = Stat::from(sample_stat());
        assert_eq!(
            s,
            Stat {
                czxid: 1,
                mzxid: 2,
                ctime: 3,
                mtime: 4,
                version: 5,
                cversion: 6,
                aversion: 7,
                ephemeral_owner: 8,
                data_length: 9,
                num_children: 10,
                pzxid: 11,
            }
        );
        assert_eq!(pb::Stat::from(s), sample_stat());
        assert_eq!(stat(None), Stat::default());
    }

    #[test]
    fn acl_maps_every_field() {
        let a = Acl::new(Acl::READ | Acl::ADMIN, "digest", "bob:hash");
        let w = pb::Acl::from(a.clone());
        assert_eq!(w, pb::Acl { perms: 17, scheme: "digest".into(), id: "bob:hash".into() });
        assert_eq!(Acl::from(w), a);
    }

    #[test]
    fn create_modes_keep_zookeepers_numbers() {
        let all = [
            (CreateMode::Persistent, 0),
            (CreateMode::Ephemeral, 1),
            (CreateMode::PersistentSequential, 2),
            (CreateMode::EphemeralSequential, 3),
            (CreateMode::Container, 4),
            (CreateMode::PersistentWithTtl, 5),
            (CreateMode::PersistentSequentialWithTtl, 6),
        ];
        for (mode, n) in all {
            let w = pb::CreateMode::from(mode);
            assert_eq!(w as i32, n, "{mode:?}");
            assert_eq!(CreateMode::from(w), mode);
        }
    }

    #[test]
    fn ops_map_every_field() {
        use pb::op::Op as W;
        let opts = CreateOptions::new(CreateMode::PersistentSequentialWithTtl)
            .with_acl(vec![Acl::new(Acl::READ, "world", "anyone")])
            .with_ttl_ms(500);
        let Some(W::Create(c)) = pb::Op::from(Op::create("/a", b"x".to_vec(), opts)).op else {
            panic!("not a create")
        };
        assert_eq!(c.header, None);
        assert_eq!((c.path.as_str(), &c.data[..], c.mode, c.ttl_ms), ("/a", &b"x"[..], 6, 500));
        assert_eq!(c.acl, vec![pb::Acl { perms: 1, scheme: "world".into(), id: "anyone".into() }]);

        let Some(W::Create(c)) = pb::Op::from(Op::create("/p", vec![], CreateOptions::default())).op
        else {
            panic!("not a create")
        };
        assert_eq!((c.mode, c.ttl_ms), (0, 0));

        assert_eq!(
            pb::Op::from(Op::delete("/d", None)).op,
            Some(W::Delete(pb::DeleteRequest { header: None, path: "/d".into(), version: -1 }))
        );
        assert_eq!(
            pb::Op::from(Op::delete("/d", Some(3))).op,
            Some(W::Delete(pb::DeleteRequest { header: None, path: "/d".into(), version: 3 }))
        );
        assert_eq!(
            pb::Op::from(Op::set_data("/s", b"v".to_vec(), Some(4))).op,
            Some(W::SetData(pb::SetDataRequest {
                header: None,
                path: "/s".into(),
                data: Bytes::from_static(b"v"),
                version: 4
            }))
        );
        assert_eq!(
            pb::Op::from(Op::set_data("/s", vec![], None)).op,
            Some(W::SetData(pb::SetDataRequest {
                header: None,
                path: "/s".into(),
                data: Bytes::new(),
                version: -1
            }))
        );
        assert_eq!(
            pb::Op::from(Op::check("/c", 7)).op,
            Some(W::Check(pb::CheckRequest { header: None, path: "/c".into(), version: 7 }))
        );
        assert_eq!(
            pb::Op::from(Op::get_data("/g")).op,
            Some(W::GetData(pb::GetDataRequest { header: None, path: "/g".into(), watch: false }))
        );
        assert_eq!(
            pb::Op::from(Op::get_children("/k")).op,
            Some(W::GetChildren(pb::GetChildrenRequest { header: None, path: "/k".into(), watch: false }))
        );
    }

    #[test]
    fn op_results_follow_the_requested_kind() {
        let ok = pb::OpResult {
            error: 0,
            path: "/a0000000001".into(),
            stat: Some(sample_stat()),
            data: Bytes::from_static(b"d"),
            children: vec!["x".into(), "y".into()],
        };
        let s = Stat::from(sample_stat());
        assert_eq!(
            op_result(OpKind::Create, ok.clone()),
            OpResult::Create { path: "/a0000000001".into(), stat: s }
        );
        assert_eq!(op_result(OpKind::Delete, ok.clone()), OpResult::Delete);
        assert_eq!(op_result(OpKind::SetData, ok.clone()), OpResult::SetData { stat: s });
        assert_eq!(op_result(OpKind::Check, ok.clone()), OpResult::Check);
        assert_eq!(
            op_result(OpKind::GetData, ok.clone()),
            OpResult::GetData { data: b"d".to_vec(), stat: s }
        );
        assert_eq!(
            op_result(OpKind::GetChildren, ok.clone()),
            OpResult::GetChildren { children: vec!["x".into(), "y".into()], stat: s }
        );
        let failed = pb::OpResult { error: -101, ..Default::default() };
        assert_eq!(
            op_result(OpKind::GetData, failed),
            OpResult::Error { code: ErrorCode::NoNode }
        );
        let unknown = pb::OpResult { error: -9999, ..Default::default() };
        assert_eq!(
            op_result(OpKind::Check, unknown),
            OpResult::Error { code: ErrorCode::SystemError }
        );
        for op in [
            Op::create("/a", vec![], CreateOptions::default()),
            Op::delete("/a", None),
            Op::set_data("/a", vec![], None),
            Op::check("/a", 0),
            Op::get_data("/a"),
            Op::get_children("/a"),
        ] {
            let kind = OpKind::from(&op);
            let expected = match op {
                Op::Create { .. } => OpKind::Create,
                Op::Delete { .. } => OpKind::Delete,
                Op::SetData { .. } => OpKind::SetData,
                Op::Check { .. } => OpKind::Check,
                Op::GetData { .. } => OpKind::GetData,
                Op::GetChildren { .. } => OpKind::GetChildren,
            };
            assert_eq!(kind, expected);
        }
    }

    #[test]
    fn status_maps_every_field() {
        let w = pb::StatusResponse {
            member_id: 2,
            role: "follower".into(),
            leader_id: 1,
            term: 3,
            commit_zxid: 40,
            applied_zxid: 39,
            last_log_index: 41,
            members: vec![
                pb::MemberStatus { id: 1, addr: "h1:7001".into(), role: "leader".into(), voter: true },
                pb::MemberStatus { id: 4, addr: "h4:7004".into(), role: "learner".into(), voter: false },
            ],
            znode_count: 50,
            session_count: 6,
        };
        let s = ClusterStatus::from(w.clone());
        assert_eq!(
            s,
            ClusterStatus {
                member_id: 2,
                role: Role::Follower,
                leader_id: Some(1),
                term: 3,
                commit_zxid: 40,
                applied_zxid: 39,
                last_log_index: 41,
                members: vec![
                    MemberStatus { id: 1, addr: "h1:7001".into(), role: Role::Leader, voter: true },
                    MemberStatus { id: 4, addr: "h4:7004".into(), role: Role::Learner, voter: false },
                ],
                znode_count: 50,
                session_count: 6,
            }
        );
        let leaderless = ClusterStatus::from(pb::StatusResponse { leader_id: 0, ..w });
        assert_eq!(leaderless.leader_id, None);
    }

    #[test]
    fn watch_events_keep_zookeepers_types_and_their_registration() {
        let e = pb::WatchEvent {
            r#type: 3,
            path: "/a/b".into(),
            zxid: 31,
            watcher: pb::WatcherType::PersistentRecursive as i32,
            watch_path: "/a".into(),
        };
        assert_eq!(
            watch_event(e.clone()),
            Some((
                WatchedEvent { kind: EventType::NodeDataChanged, path: "/a/b".into(), zxid: 31 },
                WatcherType::PersistentRecursive,
                "/a".to_string()
            ))
        );
        for (n, kind) in [
            (1, EventType::NodeCreated),
            (2, EventType::NodeDeleted),
            (3, EventType::NodeDataChanged),
            (4, EventType::NodeChildrenChanged),
        ] {
            assert_eq!(kind.code(), n);
            let got = watch_event(pb::WatchEvent { r#type: n, ..e.clone() }).map(|(ev, _, _)| ev.kind);
            assert_eq!(got, Some(kind));
        }
        assert_eq!(watch_event(pb::WatchEvent { r#type: 0, ..e.clone() }), None);
        assert_eq!(watch_event(pb::WatchEvent { r#type: 99, ..e.clone() }), None);
        let unknown_watcher = watch_event(pb::WatchEvent { watcher: 77, ..e }).map(|(_, w, _)| w);
        assert_eq!(unknown_watcher, Some(WatcherType::Any));
        for w in [
            WatcherType::Children,
            WatcherType::Data,
            WatcherType::Any,
            WatcherType::Persistent,
            WatcherType::PersistentRecursive,
        ] {
            assert_eq!(WatcherType::from(pb::WatcherType::from(w)), w);
        }
        assert_eq!(pb::AddWatchMode::from(AddWatchMode::PersistentRecursive) as i32, 1);
    }
}
