//! Applying log entries: ZooKeeper's `PrepRequestProcessor` checks (in its order)
//! followed by its `DataTree` mutations.
//!
//! Every mutation records how to undo it, so a failing multi rolls back exactly the
//! nodes it touched instead of working on a copy of the tree.

use std::sync::Arc;

use corral_proto::ErrorCode;

use super::acl::{check_acl, fixup_acl};
use super::node::{owner_kind, ttl_ephemeral_owner, Meta, Node, OwnerKind, CONTAINER_EPHEMERAL_OWNER, MAX_TTL_MS};
use super::path::{parent_of, split_parent, validate_create_path, validate_path, SPECIAL_PATHS};
use super::txn::*;
use super::{DataTree, SessionInfo};

/// How to revert one mutation.
enum Undo {
    Inserted(String),
    Removed(String, Node),
    Meta(String, Meta),
    Data(String, Box<[u8]>, Meta),
    Acl(String, Arc<[Acl]>, Meta),
}

/// What one entry is applied with.
struct Ctx<'a> {
    zxid: i64,
    time_ms: i64,
    session_id: i64,
    auth: &'a [Id],
    events: Vec<WatchEvent>,
    undo: Vec<Undo>,
}

impl Ctx<'_> {
    fn event(&mut self, kind: EventKind, path: &str, acl: &Arc<[Acl]>) {
        self.events.push(WatchEvent { kind, path: path.to_owned(), acl: acl.clone() });
    }
}

/// The session id a CreateSession entry at this zxid opens: unique per entry, high
/// byte 0x01 so it never looks like a container or TTL ephemeralOwner.
pub fn session_id_for_zxid(zxid: u64) -> i64 {
    ((zxid as i64) & 0x00FF_FFFF_FFFF_FFFF) | (1 << 56)
}

/// ZooKeeper's `checkAndIncVersion`.
fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

impl DataTree {
    /// Applies one committed log entry. `zxid` = the Raft log index of the entry (>
    /// every earlier zxid). Never panics: ZooKeeper errors are in `Applied::result`,
    /// and a failed operation changes nothing and triggers no event.
    pub fn apply(&mut self, zxid: u64, txn: &Txn) -> Applied {
        if zxid > self.last_zxid {
            self.last_zxid = zxid;
        }
        let mut ctx = Ctx {
            zxid: zxid as i64,
            time_ms: txn.time_ms,
            session_id: txn.session_id,
            auth: &txn.auth,
            events: Vec::new(),
            undo: Vec::new(),
        };
        let result = match &txn.op {
            TxnOp::Multi(ops) => Ok(self.apply_multi(&mut ctx, ops)),
            TxnOp::CreateSession { timeout_ms, password } => {
                let session_id = session_id_for_zxid(zxid);
                self.sessions.insert(session_id, SessionInfo { timeout_ms: *timeout_ms, password: password.clone() });
                Ok(OpOutcome::SessionCreated { session_id, timeout_ms: *timeout_ms })
            }
            TxnOp::CloseSession { session_id } | TxnOp::ExpireSession { session_id } => {
                self.close_session(&mut ctx, *session_id)
            }
            TxnOp::Reap { path } => self.reap(&mut ctx, path),
            op => self.apply_op(&mut ctx, op),
        };
        if result.is_err() {
            // Single operations check everything before mutating; this is a backstop.
            let undo = std::mem::take(&mut ctx.undo);
            self.rollback(undo);
            ctx.events.clear();
        }
        Applied { result, events: ctx.events }
    }

    /// One of the operations a multi may hold.
    fn apply_op(&mut self, ctx: &mut Ctx<'_>, op: &TxnOp) -> TxnResult {
        match op {
            TxnOp::Create { path, data, acl, mode, ttl_ms } => self.create(ctx, path, data, acl, *mode, *ttl_ms),
            TxnOp::Delete { path, version } => self.delete(ctx, path, *version),
            TxnOp::SetData { path, data, version } => self.set_data(ctx, path, data, *version),
            TxnOp::SetAcl { path, acl, version } => self.set_acl(ctx, path, acl, *version),
            TxnOp::Check { path, version } => self.check(ctx, path, *version),
            TxnOp::Multi(_)
            | TxnOp::CreateSession { .. }
            | TxnOp::CloseSession { .. }
            | TxnOp::ExpireSession { .. }
            | TxnOp::Reap { .. } => Err(ErrorCode::BadArguments),
        }
    }

    /// All or nothing. Later ops see earlier ops' effects. On failure: `Err(Ok)` for
    /// the ops before the failing one, its code, then `Err(RuntimeInconsistency)`.
    fn apply_multi(&mut self, ctx: &mut Ctx<'_>, ops: &[TxnOp]) -> OpOutcome {
        let undo_mark = ctx.undo.len();
        let event_mark = ctx.events.len();
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let result = match op {
                TxnOp::Create { .. } | TxnOp::Delete { .. } | TxnOp::SetData { .. } | TxnOp::Check { .. } => {
                    self.apply_op(ctx, op)
                }
                _ => Err(ErrorCode::BadArguments),
            };
            match result {
                Ok(outcome) => results.push(Ok(outcome)),
                Err(code) => {
                    let undo = ctx.undo.split_off(undo_mark);
                    self.rollback(undo);
                    ctx.events.truncate(event_mark);
                    let mut out = vec![Err(ErrorCode::Ok); i];
                    out.push(Err(code));
                    out.resize(ops.len(), Err(ErrorCode::RuntimeInconsistency));
                    return OpOutcome::Multi(out);
                }
            }
        }
        OpOutcome::Multi(results)
    }

    fn rollback(&mut self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            match u {
                Undo::Inserted(path) => {
                    self.remove_node(&path);
                }
                Undo::Removed(path, node) => self.insert_node(&path, node),
                Undo::Meta(path, meta) => {
                    if let Some(n) = self.node_mut(&path) {
                        n.meta = meta;
                    }
                }
                Undo::Data(path, data, meta) => {
                    if let Some(n) = self.node_mut(&path) {
                        n.data = data;
                        n.meta = meta;
                    }
                }
                Undo::Acl(path, acl, meta) => {
                    if let Some(n) = self.node_mut(&path) {
                        n.acl = acl;
                        n.meta = meta;
                    }
                }
            }
        }
    }

    fn create(
        &mut self,
        ctx: &mut Ctx<'_>,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl_ms: i64,
    ) -> TxnResult {
        // What ZooKeeper's client checks before sending.
        validate_create_path(path, mode.is_sequential())?;
        if data.len() > self.max_data_len {
            return Err(ErrorCode::BadArguments);
        }
        // validateCreateRequest. The wire's ttl_ms defaults to 0, so "no TTL" is any
        // value <= 0 (ZooKeeper's own client sends -1).
        if mode.is_ttl() {
            if ttl_ms <= 0 || ttl_ms > MAX_TTL_MS {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl_ms > 0 {
            return Err(ErrorCode::BadArguments);
        }
        if mode.is_ephemeral() && (ctx.session_id == 0 || !self.sessions.contains_key(&ctx.session_id)) {
            return Err(ErrorCode::SessionExpired);
        }
        let acl = fixup_acl(acl, ctx.auth)?;
        let (parent_path, _) = split_parent(path);
        let parent = self.node(parent_path).ok_or(ErrorCode::NoNode)?;
        check_acl(&parent.acl, perms::CREATE, ctx.auth)?;
        let parent_meta = parent.meta;
        let parent_acl = parent.acl.clone();
        let path = if mode.is_sequential() { format!("{path}{:010}", parent_meta.cversion) } else { path.to_owned() };
        if self.node(&path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(owner_kind(parent_meta.ephemeral_owner), OwnerKind::Session(_)) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }

        let ephemeral_owner = if mode.is_container() {
            CONTAINER_EPHEMERAL_OWNER
        } else if mode.is_ttl() {
            ttl_ephemeral_owner(ttl_ms)
        } else if mode.is_ephemeral() {
            ctx.session_id
        } else {
            0
        };
        let meta = Meta {
            czxid: ctx.zxid,
            mzxid: ctx.zxid,
            pzxid: ctx.zxid,
            ctime: ctx.time_ms,
            mtime: ctx.time_ms,
            ephemeral_owner,
            ..Meta::default()
        };
        let node = Node { data: data.into(), acl: self.acls.intern(&acl), meta };
        let stat = node.stat();
        let node_acl = node.acl.clone();

        let parent_path = parent_path.to_owned();
        if let Some(parent) = self.node_mut(&parent_path) {
            ctx.undo.push(Undo::Meta(parent_path.clone(), parent.meta));
            let m = &mut parent.meta;
            m.num_children = m.num_children.wrapping_add(1);
            // DataTree.createNode only moves cversion (and pzxid) forward.
            let new_cversion = m.cversion.wrapping_add(1);
            if new_cversion > m.cversion {
                m.cversion = new_cversion;
                m.pzxid = ctx.zxid;
            }
        }
        self.insert_node(&path, node);
        ctx.undo.push(Undo::Inserted(path.clone()));
        ctx.event(EventKind::NodeCreated, &path, &node_acl);
        ctx.event(EventKind::NodeChildrenChanged, &parent_path, &parent_acl);
        Ok(OpOutcome::Created { path, stat })
    }

    fn delete(&mut self, ctx: &mut Ctx<'_>, path: &str, version: i32) -> TxnResult {
        validate_path(path)?;
        if SPECIAL_PATHS.contains(&path) {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = parent_of(path);
        let parent = self.node(parent_path).ok_or(ErrorCode::NoNode)?;
        check_acl(&parent.acl, perms::DELETE, ctx.auth)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        check_version(node.meta.version, version)?;
        if node.meta.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        self.delete_unchecked(ctx, path);
        Ok(OpOutcome::Deleted)
    }

    /// DataTree.deleteNode: the parent's pzxid moves forward, its cversion does not
    /// change (ZooKeeper 3.8 bumps cversion only on create).
    fn delete_unchecked(&mut self, ctx: &mut Ctx<'_>, path: &str) {
        let parent_path = parent_of(path).to_owned();
        let Some(node) = self.remove_node(path) else {
            return;
        };
        let node_acl = node.acl.clone();
        ctx.undo.push(Undo::Removed(path.to_owned(), node));
        let mut parent_acl = None;
        if let Some(parent) = self.node_mut(&parent_path) {
            ctx.undo.push(Undo::Meta(parent_path.clone(), parent.meta));
            parent.meta.num_children = parent.meta.num_children.wrapping_sub(1);
            if ctx.zxid > parent.meta.pzxid {
                parent.meta.pzxid = ctx.zxid;
            }
            parent_acl = Some(parent.acl.clone());
        }
        ctx.event(EventKind::NodeDeleted, path, &node_acl);
        if let Some(parent_acl) = parent_acl {
            ctx.event(EventKind::NodeChildrenChanged, &parent_path, &parent_acl);
        }
    }

    fn set_data(&mut self, ctx: &mut Ctx<'_>, path: &str, data: &[u8], version: i32) -> TxnResult {
        validate_path(path)?;
        if data.len() > self.max_data_len {
            return Err(ErrorCode::BadArguments);
        }
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        check_acl(&node.acl, perms::WRITE, ctx.auth)?;
        let new_version = check_version(node.meta.version, version)?;
        let Some(node) = self.node_mut(path) else {
            return Err(ErrorCode::NoNode);
        };
        let old_data = std::mem::replace(&mut node.data, data.into());
        ctx.undo.push(Undo::Data(path.to_owned(), old_data, node.meta));
        node.meta.version = new_version;
        node.meta.mzxid = ctx.zxid;
        node.meta.mtime = ctx.time_ms;
        let stat = node.stat();
        let acl = node.acl.clone();
        ctx.event(EventKind::NodeDataChanged, path, &acl);
        Ok(OpOutcome::DataSet { stat })
    }

    fn set_acl(&mut self, ctx: &mut Ctx<'_>, path: &str, acl: &[Acl], version: i32) -> TxnResult {
        validate_path(path)?;
        let acl = fixup_acl(acl, ctx.auth)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        check_acl(&node.acl, perms::ADMIN, ctx.auth)?;
        let new_aversion = check_version(node.meta.aversion, version)?;
        let shared = self.acls.intern(&acl);
        let Some(node) = self.node_mut(path) else {
            return Err(ErrorCode::NoNode);
        };
        let old_acl = std::mem::replace(&mut node.acl, shared);
        ctx.undo.push(Undo::Acl(path.to_owned(), old_acl, node.meta));
        node.meta.aversion = new_aversion;
        Ok(OpOutcome::AclSet { stat: node.stat() })
    }

    fn check(&mut self, ctx: &mut Ctx<'_>, path: &str, version: i32) -> TxnResult {
        validate_path(path)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        check_acl(&node.acl, perms::READ, ctx.auth)?;
        check_version(node.meta.version, version)?;
        Ok(OpOutcome::Checked)
    }

    /// ZooKeeper's deleteContainer, extended to TTL nodes as its ContainerManager uses it.
    fn reap(&mut self, ctx: &mut Ctx<'_>, path: &str) -> TxnResult {
        validate_path(path)?;
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        if node.meta.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        let due = match owner_kind(node.meta.ephemeral_owner) {
            OwnerKind::Container => node.meta.cversion > 0,
            OwnerKind::Ttl(ttl) => ttl != 0 && ctx.time_ms.saturating_sub(node.meta.mtime) > ttl,
            _ => return Err(ErrorCode::BadArguments),
        };
        if !due {
            return Err(ErrorCode::BadVersion);
        }
        self.delete_unchecked(ctx, path);
        Ok(OpOutcome::Deleted)
    }

    /// Ends a session and deletes its ephemeral nodes in path order, each as a delete.
    fn close_session(&mut self, ctx: &mut Ctx<'_>, session_id: i64) -> TxnResult {
        if self.sessions.remove(&session_id).is_none() {
            return Err(ErrorCode::SessionExpired);
        }
        let paths = self.ephemerals.remove(&session_id).unwrap_or_default();
        for path in &paths {
            self.delete_unchecked(ctx, path);
        }
        Ok(OpOutcome::SessionClosed)
    }
}
