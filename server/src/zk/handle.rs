//! One ZooKeeper request → one reply, through the shared request path ([`crate::api::ops`]).
//! Replies follow Apache ZooKeeper 3.8 byte for byte where it can be observed: which ops carry
//! a stat, that `exists` on a missing node is a NoNode error (with the watch still set), that a
//! failed multi is a success header with per-op error results, and so on.

use corral_proto::jute::{
    op, xid, Acl as JAcl, ClientInfo, Id as JId, MultiOp, MultiResult, ReplyHeader, Request, RequestHeader, Response,
    Stat as JStat,
};
use corral_proto::ErrorCode;

use super::ZkSettings;
use crate::api::member::{Member, MemberError};
use crate::api::ops::Caller;
use crate::tree::{self, perms, Acl, CreateMode, Id, OpOutcome, ReadOp, ReadOutcome, Stat, TxnOp};
use crate::watch::{WatchKind, WatchSet};

/// The connection's view of its session.
pub struct SessionCtx {
    pub session_id: i64,
    /// The address identity plus every credential added with addauth.
    pub auth: Vec<Id>,
}

/// A reply to write once the connection has sent `after_seq` notices.
pub struct Reply {
    pub after_seq: u64,
    pub frame: Vec<u8>,
    /// Close the connection after this reply (closeSession, a failed auth).
    pub close: bool,
}

/// ZooKeeper's `DataTree.getClientEphemeralOwner`: containers and TTL nodes keep their kind in
/// ephemeralOwner internally, but clients see 0 there, as for any persistent node.
fn client_ephemeral_owner(owner: i64) -> i64 {
    if owner == tree::CONTAINER_EPHEMERAL_OWNER || owner & tree::TTL_EPHEMERAL_MASK == tree::TTL_EPHEMERAL_MASK {
        0
    } else {
        owner
    }
}

fn stat_out(s: &Stat) -> JStat {
    JStat {
        czxid: s.czxid,
        mzxid: s.mzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        ephemeral_owner: client_ephemeral_owner(s.ephemeral_owner),
        data_length: s.data_length,
        num_children: s.num_children,
        pzxid: s.pzxid,
    }
}

fn acl_in(acl: &[JAcl]) -> Vec<Acl> {
    acl.iter().map(|a| Acl { perms: a.perms, id: Id::new(a.id.scheme.clone(), a.id.id.clone()) }).collect()
}

fn acl_out(acl: &[Acl]) -> Vec<JAcl> {
    acl.iter().map(|a| JAcl { perms: a.perms, id: JId { scheme: a.id.scheme.clone(), id: a.id.id.clone() } }).collect()
}

/// The create mode an op and its flags ask for, as ZooKeeper 3.8 (with extended types enabled)
/// decides it: the op code wins over the flags. createContainer makes a container of a
/// persistent or ephemeral request (a sequential one is refused here; ZooKeeper would make a
/// sequential container, which the tree has no kind for); create and create2 with the container
/// flag make a plain persistent node; TTL modes only through createTTL, which takes nothing else.
fn create_mode(code: i32, flags: i32, ttl: i64) -> Result<(CreateMode, i64), ErrorCode> {
    let mode = CreateMode::from_flag(flags).ok_or(ErrorCode::BadArguments)?;
    match code {
        op::CREATE_CONTAINER => match mode {
            CreateMode::Persistent | CreateMode::Ephemeral | CreateMode::Container => Ok((CreateMode::Container, 0)),
            _ => Err(ErrorCode::BadArguments),
        },
        op::CREATE_TTL if mode.is_ttl() => Ok((mode, ttl)),
        op::CREATE | op::CREATE2 if mode.is_container() => Ok((CreateMode::Persistent, 0)),
        op::CREATE | op::CREATE2 if !mode.is_ttl() => Ok((mode, 0)),
        _ => Err(ErrorCode::BadArguments),
    }
}

fn create_op(code: i32, path: &str, data: &[u8], acl: &[JAcl], flags: i32, ttl: i64) -> Result<TxnOp, ErrorCode> {
    let (mode, ttl_ms) = create_mode(code, flags, ttl)?;
    Ok(TxnOp::Create { path: path.to_owned(), data: data.to_vec(), acl: acl_in(acl), mode, ttl_ms })
}

/// ZooKeeper's `WatcherType` numbers on the wire (1 children, 2 data, 3 any, 4 persistent,
/// 5 persistent recursive); `None` is any.
fn watcher_kind(n: i32) -> Result<Option<WatchKind>, ErrorCode> {
    Ok(match n {
        1 => Some(WatchKind::Child),
        2 => Some(WatchKind::Data),
        3 => None,
        4 => Some(WatchKind::Persistent),
        5 => Some(WatchKind::PersistentRecursive),
        _ => return Err(ErrorCode::BadArguments),
    })
}

/// ZooKeeper's `PrepRequestProcessor` checks a create's path only loosely at first (it must hold
/// a `/` and no NUL), then fixes up the ACL, looks the parent up (NoNode) and checks CREATE on it
/// (NoAuth), and validates the whole path only after that; a delete's path is never validated
/// beyond the loose check and "not a system node": the parent lookup, its DELETE check and the
/// node lookup answer first. The tree, shared with the native API, calls every invalid path
/// BadArguments at once; on this port the error is the one ZooKeeper gives. `None` for an op
/// whose path is valid. `earlier` are the ops before it in a multi (all of which succeeded), whose
/// creates and deletes of the parent count.
fn invalid_path_error(tree: &tree::DataTree, op: &TxnOp, auth: &[Id], earlier: &[TxnOp]) -> Option<ErrorCode> {
    let (path, create_acl) = match op {
        TxnOp::Create { path, acl, mode, ttl_ms, .. } => {
            if tree::validate_create_path(path, mode.is_sequential()).is_ok() {
                return None;
            }
            // validateCreateRequest comes first: a TTL out of range is BadArguments whatever
            // the path.
            if mode.is_ttl() && !(1..=tree::MAX_TTL_MS).contains(ttl_ms) {
                return Some(ErrorCode::BadArguments);
            }
            (path, Some(acl))
        }
        TxnOp::Delete { path, .. } => {
            if tree::validate_path(path).is_ok() {
                return None;
            }
            (path, None)
        }
        _ => return None,
    };
    let Some(slash) = path.rfind('/') else { return Some(ErrorCode::BadArguments) };
    if path.contains('\0') {
        return Some(ErrorCode::BadArguments);
    }
    if let Some(acl) = create_acl {
        if let Err(code) = tree::fixup_acl(acl, auth) {
            return Some(code);
        }
    }
    // ZooKeeper's DataTree maps "" to the root as well.
    let parent = if slash == 0 { "/" } else { &path[..slash] };
    let mut parent_acl: Option<Vec<Acl>> = tree.get_acl(parent).ok().map(|(acl, _)| acl);
    for e in earlier {
        match e {
            TxnOp::Create { path, acl, mode, .. } if path == parent && !mode.is_sequential() => {
                parent_acl = tree::fixup_acl(acl, auth).ok();
            }
            TxnOp::Delete { path, .. } if path == parent => parent_acl = None,
            _ => {}
        }
    }
    let Some(parent_acl) = parent_acl else { return Some(ErrorCode::NoNode) };
    let perm = if create_acl.is_some() { perms::CREATE } else { perms::DELETE };
    if let Err(code) = tree::check_acl(&parent_acl, perm, auth) {
        return Some(code);
    }
    // A create now fails its full path check; a delete looks up a node no valid create made.
    Some(if create_acl.is_some() { ErrorCode::BadArguments } else { ErrorCode::NoNode })
}

/// Serves one request.
pub async fn serve(
    member: &Member,
    settings: &ZkSettings,
    ctx: &mut SessionCtx,
    header: RequestHeader,
    request: Request,
) -> Reply {
    let code = request.op();
    let caller = Caller { session_id: ctx.session_id, auth: ctx.auth.clone(), min_zxid: 0, linearizable: false };
    member.sessions.touch(ctx.session_id);
    let result: Result<(Response, u64, u64, bool), (ErrorCode, u64)> = match request {
        Request::Ping => {
            let zxid = member.applied_zxid();
            Ok((Response::Empty, zxid, 0, false))
        }
        Request::Auth(auth) => match auth.scheme.as_str() {
            // ZooKeeper's DigestAuthenticationProvider takes any bytes: the user is what precedes
            // the first ':' (all of it if there is none), the hash covers the whole string.
            "digest" => {
                let cred = String::from_utf8_lossy(&auth.auth.0);
                let id = Id::new("digest", tree::digest_id(&cred));
                if !ctx.auth.contains(&id) {
                    ctx.auth.push(id);
                    member.state.watches.lock().set_identities(ctx.session_id, ctx.auth.clone());
                }
                Ok((Response::Empty, 0, 0, false))
            }
            // The ip provider authenticates the connection's own address, which it already has.
            "ip" => Ok((Response::Empty, 0, 0, false)),
            _ => Err((ErrorCode::AuthFailed, 0)),
        },
        Request::CloseSession => {
            let r = member.submit(&caller, TxnOp::CloseSession { session_id: ctx.session_id }).await;
            match r {
                Ok((_, zxid)) => Ok((Response::Empty, zxid, 0, true)),
                Err(e) => Err((member_code(&e), member.applied_zxid())),
            }
        }
        other => serve_op(member, settings, &caller, other).await,
    };
    let (reply_xid, close_on_error) = match code {
        op::PING => (xid::PING, false),
        op::AUTH => (xid::AUTH, true),
        _ => (header.xid, false),
    };
    match result {
        Ok((response, zxid, after_seq, close)) => {
            let zxid = if code == op::AUTH { 0 } else { zxid as i64 };
            Reply {
                after_seq,
                frame: response.encode(&ReplyHeader { xid: reply_xid, zxid, err: 0 }),
                close,
            }
        }
        Err((err, zxid)) => {
            let zxid = if code == op::AUTH { 0 } else { zxid as i64 };
            let after_seq = member.reply_point(zxid as u64, ctx.session_id).event_seq;
            Reply {
                after_seq,
                frame: Response::Empty.encode(&ReplyHeader { xid: reply_xid, zxid, err: err.code() }),
                // ZooKeeper drops a connection whose authentication failed.
                close: close_on_error,
            }
        }
    }
}

fn member_code(e: &MemberError) -> ErrorCode {
    match e {
        MemberError::Zk { code, .. } => *code,
        MemberError::Unavailable(_) | MemberError::NotLeader(_) => ErrorCode::ConnectionLoss,
    }
}

type Served = Result<(Response, u64, u64, bool), (ErrorCode, u64)>;

/// Data operations: writes through [`Member::submit`], reads through [`Member::read_at`].
async fn serve_op(member: &Member, settings: &ZkSettings, caller: &Caller, request: Request) -> Served {
    let fail = |code: ErrorCode| Err((code, member.applied_zxid()));
    let write = |op: TxnOp| async move {
        match member.submit(caller, op).await {
            Ok((outcome, zxid)) => Ok((outcome, zxid, member.reply_point(zxid, caller.session_id).event_seq)),
            Err(e) => Err((member_code(&e), member.applied_zxid())),
        }
    };
    if let Err(e) = member.admit(caller, true).await {
        return fail(member_code(&e));
    }
    let path_error = |op: &TxnOp, earlier: &[TxnOp]| {
        let st = member.state.read();
        invalid_path_error(&st.tree, op, &caller.auth, earlier)
    };
    let session = caller.session_id;
    let too_big = |data: &[u8]| data.len() > settings.max_data_len;
    match request {
        Request::Create { op: code, req } => {
            if too_big(&req.data.0) {
                return fail(ErrorCode::BadArguments);
            }
            let txn = match create_op(code, &req.path, &req.data.0, &req.acl, req.flags, 0) {
                Ok(t) => t,
                Err(c) => return fail(c),
            };
            if let Some(c) = path_error(&txn, &[]) {
                return fail(c);
            }
            let (outcome, zxid, seq) = write(txn).await?;
            match outcome {
                OpOutcome::Created { path, .. } if code == op::CREATE => Ok((Response::Create { path }, zxid, seq, false)),
                OpOutcome::Created { path, stat } => Ok((Response::Create2 { path, stat: stat_out(&stat) }, zxid, seq, false)),
                _ => fail(ErrorCode::SystemError),
            }
        }
        Request::CreateTtl(req) => {
            if too_big(&req.data.0) {
                return fail(ErrorCode::BadArguments);
            }
            let txn = match create_op(op::CREATE_TTL, &req.path, &req.data.0, &req.acl, req.flags, req.ttl) {
                Ok(t) => t,
                Err(c) => return fail(c),
            };
            if let Some(c) = path_error(&txn, &[]) {
                return fail(c);
            }
            match write(txn).await? {
                (OpOutcome::Created { path, stat }, zxid, seq) => {
                    Ok((Response::Create2 { path, stat: stat_out(&stat) }, zxid, seq, false))
                }
                _ => fail(ErrorCode::SystemError),
            }
        }
        Request::Delete(req) => {
            let txn = TxnOp::Delete { path: req.path, version: req.version };
            if let Some(c) = path_error(&txn, &[]) {
                return fail(c);
            }
            let (_, zxid, seq) = write(txn).await?;
            Ok((Response::Empty, zxid, seq, false))
        }
        Request::SetData(req) => {
            if too_big(&req.data.0) {
                return fail(ErrorCode::BadArguments);
            }
            match write(TxnOp::SetData { path: req.path, data: req.data.0, version: req.version }).await? {
                (OpOutcome::DataSet { stat }, zxid, seq) => Ok((Response::Stat(stat_out(&stat)), zxid, seq, false)),
                _ => fail(ErrorCode::SystemError),
            }
        }
        Request::SetAcl(req) => {
            match write(TxnOp::SetAcl { path: req.path, acl: acl_in(&req.acl), version: req.version }).await? {
                (OpOutcome::AclSet { stat }, zxid, seq) => Ok((Response::Stat(stat_out(&stat)), zxid, seq, false)),
                _ => fail(ErrorCode::SystemError),
            }
        }
        Request::Check(req) => {
            let (_, zxid, seq) = write(TxnOp::Check { path: req.path, version: req.version }).await?;
            Ok((Response::Empty, zxid, seq, false))
        }
        Request::Multi(ops) => {
            let mut txns = Vec::with_capacity(ops.len());
            let mut codes = Vec::with_capacity(ops.len());
            for o in ops {
                codes.push(o.op());
                let t = match o {
                    MultiOp::Create { op: code, req } => {
                        if too_big(&req.data.0) {
                            return fail(ErrorCode::BadArguments);
                        }
                        create_op(code, &req.path, &req.data.0, &req.acl, req.flags, req.ttl)
                    }
                    MultiOp::Delete(r) => Ok(TxnOp::Delete { path: r.path, version: r.version }),
                    MultiOp::SetData(r) => {
                        if too_big(&r.data.0) {
                            return fail(ErrorCode::BadArguments);
                        }
                        Ok(TxnOp::SetData { path: r.path, data: r.data.0, version: r.version })
                    }
                    MultiOp::Check(r) => Ok(TxnOp::Check { path: r.path, version: r.version }),
                    MultiOp::GetData(_) | MultiOp::GetChildren(_) => Err(ErrorCode::BadArguments),
                };
                match t {
                    Ok(t) => txns.push(t),
                    Err(c) => return fail(c),
                }
            }
            let (outcome, zxid, seq) = write(TxnOp::Multi(txns.clone())).await?;
            let OpOutcome::Multi(mut results) = outcome else { return fail(ErrorCode::SystemError) };
            // The failing op's error as ZooKeeper would name it (see invalid_path_error).
            if let Some(i) = results.iter().position(|r| r == &Err(ErrorCode::BadArguments)) {
                if let Some(c) = path_error(&txns[i], &txns[..i]) {
                    results[i] = Err(c);
                }
            }
            let results = results
                .into_iter()
                .zip(codes)
                .map(|(r, code)| match r {
                    Err(e) => MultiResult::Error { err: e.code() },
                    Ok(OpOutcome::Created { path, .. }) if code == op::CREATE => MultiResult::Create { path },
                    Ok(OpOutcome::Created { path, stat }) => MultiResult::Create2 { path, stat: stat_out(&stat) },
                    Ok(OpOutcome::Deleted) => MultiResult::Delete,
                    Ok(OpOutcome::DataSet { stat }) => MultiResult::SetData { stat: stat_out(&stat) },
                    Ok(_) => MultiResult::Check,
                })
                .collect();
            Ok((Response::Multi(results), zxid, seq, false))
        }
        Request::Sync(req) => {
            let index = match member.read_index().await {
                Ok(i) => i,
                Err(e) => return fail(member_code(&e)),
            };
            if let Err(e) = member.read_barrier(index, false).await {
                return fail(member_code(&e));
            }
            read(member, session, |_, _| Ok(Response::Sync { path: req.path.clone() }))
        }
        Request::Exists(req) => read(member, session, |tree, reg| {
            // ZooKeeper refuses only a NUL here; any other path that names no node is NoNode.
            if req.path.contains('\0') {
                return Err(ErrorCode::BadArguments);
            }
            let stat = match lookup_path(&req.path) {
                Ok(path) => tree.exists(path)?,
                Err(_) => None,
            };
            if req.watch {
                reg.watch(WatchKind::Data, &req.path)?;
            }
            // ZooKeeper answers a missing node with NoNode, the watch set all the same.
            stat.map(|s| Response::Stat(stat_out(&s))).ok_or(ErrorCode::NoNode)
        }),
        Request::GetData(req) => read(member, session, |tree, reg| {
            let (data, stat) = tree.get_data(lookup_path(&req.path)?, &caller.auth)?;
            if req.watch {
                reg.watch(WatchKind::Data, &req.path)?;
            }
            Ok(Response::GetData { data, stat: stat_out(&stat) })
        }),
        Request::GetChildren(req) => read(member, session, |tree, reg| {
            let (children, _) = tree.get_children(lookup_path(&req.path)?, &caller.auth)?;
            if req.watch {
                reg.watch(WatchKind::Child, &req.path)?;
            }
            Ok(Response::GetChildren { children })
        }),
        Request::GetChildren2(req) => read(member, session, |tree, reg| {
            let (children, stat) = tree.get_children(lookup_path(&req.path)?, &caller.auth)?;
            if req.watch {
                reg.watch(WatchKind::Child, &req.path)?;
            }
            Ok(Response::GetChildren2 { children, stat: stat_out(&stat) })
        }),
        Request::GetAcl(req) => read(member, session, |tree, _| {
            let (acl, stat) = tree.read_acl(lookup_path(&req.path)?, &caller.auth)?;
            Ok(Response::GetAcl { acl: acl_out(&acl), stat: stat_out(&stat) })
        }),
        Request::GetAllChildrenNumber(req) => read(member, session, |tree, _| {
            tree.get_all_children_number(lookup_path(&req.path)?, &caller.auth).map(Response::GetAllChildrenNumber)
        }),
        Request::GetEphemerals(req) => read(member, session, |tree, _| {
            let prefix = if req.path.is_empty() { "/" } else { req.path.as_str() };
            Ok(Response::GetEphemerals(tree.get_ephemerals(session, prefix)))
        }),
        Request::MultiRead(ops) => read(member, session, |tree, _| {
            let mut results = Vec::with_capacity(ops.len());
            for o in &ops {
                // Each read fails on its own; a path that names no node is NoNode, as in the
                // single ops.
                let read = match o {
                    MultiOp::GetData(r) => lookup_path(&r.path).map(|p| ReadOp::GetData { path: p.to_owned() }),
                    MultiOp::GetChildren(r) => {
                        lookup_path(&r.path).map(|p| ReadOp::GetChildren { path: p.to_owned() })
                    }
                    _ => return Err(ErrorCode::BadArguments),
                };
                let result = match read {
                    Ok(read) => tree.multi_read(std::slice::from_ref(&read), &caller.auth).remove(0),
                    Err(code) => Err(code),
                };
                results.push(match result {
                    Ok(ReadOutcome::Data { data, stat }) => MultiResult::GetData { data, stat: stat_out(&stat) },
                    Ok(ReadOutcome::Children { children, .. }) => MultiResult::GetChildren { children },
                    Err(e) => MultiResult::Error { err: e.code() },
                });
            }
            Ok(Response::Multi(results))
        }),
        Request::SetWatches(w) | Request::SetWatches2(w) => {
            let set = WatchSet {
                data: w.data_watches,
                exist: w.exist_watches,
                child: w.child_watches,
                persistent: w.persistent_watches,
                persistent_recursive: w.persistent_recursive_watches,
            };
            for path in set.data.iter().chain(&set.exist).chain(&set.child).chain(&set.persistent).chain(&set.persistent_recursive) {
                if tree::validate_path(path).is_err() {
                    return fail(ErrorCode::BadArguments);
                }
            }
            let relative = w.relative_zxid.max(0) as u64;
            read(member, session, |tree, reg| {
                reg.watches().reregister(tree, session, relative, &set);
                Ok(Response::Empty)
            })
        }
        Request::AddWatch(req) => read(member, session, |_, reg| {
            tree::validate_path(&req.path)?;
            let kind = match req.mode {
                0 => WatchKind::Persistent,
                1 => WatchKind::PersistentRecursive,
                _ => return Err(ErrorCode::BadArguments),
            };
            reg.watch(kind, &req.path)?;
            Ok(Response::AddWatch)
        }),
        Request::RemoveWatches(req) => read(member, session, |_, reg| {
            let kind = watcher_kind(req.watcher_type)?;
            if reg.watches().remove(session, kind, &req.path) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }),
        Request::CheckWatches(req) => read(member, session, |_, reg| {
            let kind = watcher_kind(req.watcher_type)?;
            if reg.watches().has(session, kind, &req.path) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }),
        Request::WhoAmI => {
            let info = caller
                .auth
                .iter()
                .map(|id| ClientInfo {
                    auth_scheme: id.scheme.clone(),
                    // A digest identity shows its user, not the hash.
                    user: if id.scheme == "digest" {
                        id.id.split(':').next().unwrap_or_default().to_owned()
                    } else {
                        id.id.clone()
                    },
                })
                .collect();
            read(member, session, |_, _| Ok(Response::WhoAmI(info)))
        }
        // ZooKeeper refuses a client's deleteContainer (containers are its sweeper's business).
        Request::Unsupported(op::DELETE_CONTAINER) => fail(ErrorCode::BadArguments),
        // SASL, reconfig and unknown codes.
        Request::Unsupported(_) => fail(ErrorCode::Unimplemented),
        Request::Ping | Request::Auth(_) | Request::CloseSession => fail(ErrorCode::SystemError),
    }
}

/// The path a read looks up. ZooKeeper's reads do not validate paths: they look the string up,
/// so any path that names no node is NoNode (not BadArguments), and `""` is the root (its
/// DataTree maps both `""` and `"/"` to it).
fn lookup_path(path: &str) -> Result<&str, ErrorCode> {
    if path.is_empty() {
        return Ok("/");
    }
    tree::validate_path(path).map_err(|_| ErrorCode::NoNode)?;
    Ok(path)
}

/// A read under the tree lock, as a reply.
fn read(
    member: &Member,
    session: i64,
    f: impl FnOnce(&tree::DataTree, &mut crate::api::ops::Registrar<'_>) -> Result<Response, ErrorCode>,
) -> Served {
    match member.read_at(session, f) {
        Ok((response, point)) => Ok((response, point.zxid, point.event_seq, false)),
        Err(code) => {
            let point = member.reply_point(member.applied_zxid(), session);
            Err((code, point.zxid))
        }
    }
}
