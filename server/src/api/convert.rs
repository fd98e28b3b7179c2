//! Conversions between the native API's protobuf messages and the tree's types,
//! and the one place where a failure becomes a gRPC status.

use corral_proto::status::to_status;
use corral_proto::v1 as pb;
use corral_proto::ErrorCode;

use super::member::MemberError;
use crate::tree::{self, Acl, CreateMode, Id, OpOutcome, ReadOp, ReadOutcome, Stat, TxnOp};

/// The single mapping from a member failure to what the client receives. An
/// unavailable leader has no typed code on purpose: the client treats it as a
/// transport failure and tries another member.
pub fn status(err: MemberError) -> tonic::Status {
    match err {
        MemberError::Zk { code, message } => to_status(code, message),
        MemberError::Unavailable(msg) | MemberError::NotLeader(msg) => tonic::Status::unavailable(msg),
    }
}

pub fn zk_status(code: ErrorCode, message: impl Into<String>) -> tonic::Status {
    to_status(code, message)
}

pub fn stat_to_pb(s: &Stat) -> pb::Stat {
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

pub fn acl_to_pb(a: &Acl) -> pb::Acl {
    pb::Acl { perms: a.perms, scheme: a.id.scheme.clone(), id: a.id.id.clone() }
}

/// An empty list means the default, OPEN_ACL_UNSAFE, as ZooKeeper clients send it.
pub fn acl_from_pb(acl: &[pb::Acl]) -> Vec<Acl> {
    if acl.is_empty() {
        return Acl::open_unsafe();
    }
    acl.iter()
        .map(|a| Acl { perms: a.perms, id: Id::new(a.scheme.clone(), a.id.clone()) })
        .collect()
}

pub fn mode_from_pb(mode: i32) -> Result<CreateMode, tonic::Status> {
    CreateMode::from_flag(mode)
        .ok_or_else(|| zk_status(ErrorCode::BadArguments, format!("unknown create mode {mode}")))
}

/// The caller's identities from the request header plus its network address.
pub fn identities(
    header: Option<&pb::RequestHeader>,
    peer_ip: Option<std::net::IpAddr>,
) -> Result<Vec<Id>, tonic::Status> {
    identities_of(header.map(|h| h.auth.as_slice()).unwrap_or_default(), peer_ip)
}

/// The identities that credentials (`AuthInfo`s) and a network address prove.
pub fn identities_of(credentials: &[pb::AuthInfo], peer_ip: Option<std::net::IpAddr>) -> Result<Vec<Id>, tonic::Status> {
    let mut ids = Vec::new();
    if let Some(ip) = peer_ip {
        ids.push(Id::new("ip", ip.to_string()));
    }
    for auth in credentials {
        match auth.scheme.as_str() {
            "digest" => {
                let cred = std::str::from_utf8(&auth.credential).map_err(|_| {
                    zk_status(ErrorCode::AuthFailed, "digest credential is not UTF-8")
                })?;
                if !cred.contains(':') {
                    return Err(zk_status(ErrorCode::AuthFailed, "digest credential must be user:password"));
                }
                ids.push(Id::new("digest", tree::digest_id(cred)));
            }
            other => {
                return Err(zk_status(ErrorCode::AuthFailed, format!("unsupported auth scheme {other:?}")))
            }
        }
    }
    Ok(ids)
}

pub fn create_op(r: &pb::CreateRequest) -> Result<TxnOp, tonic::Status> {
    Ok(TxnOp::Create {
        path: r.path.clone(),
        data: r.data.to_vec(),
        acl: acl_from_pb(&r.acl),
        mode: mode_from_pb(r.mode)?,
        ttl_ms: r.ttl_ms,
    })
}

/// A multi's ops as one atomic txn op. Reads are not allowed inside a write multi.
pub fn multi_ops(ops: &[pb::Op]) -> Result<Vec<TxnOp>, tonic::Status> {
    ops.iter()
        .map(|op| match &op.op {
            Some(pb::op::Op::Create(r)) => create_op(r),
            Some(pb::op::Op::Delete(r)) => {
                Ok(TxnOp::Delete { path: r.path.clone(), version: r.version })
            }
            Some(pb::op::Op::SetData(r)) => Ok(TxnOp::SetData {
                path: r.path.clone(),
                data: r.data.to_vec(),
                version: r.version,
            }),
            Some(pb::op::Op::Check(r)) => {
                Ok(TxnOp::Check { path: r.path.clone(), version: r.version })
            }
            Some(_) => Err(zk_status(ErrorCode::BadArguments, "read op inside a write multi")),
            None => Err(zk_status(ErrorCode::BadArguments, "empty op")),
        })
        .collect()
}

pub fn read_ops(ops: &[pb::Op]) -> Result<Vec<ReadOp>, tonic::Status> {
    ops.iter()
        .map(|op| match &op.op {
            Some(pb::op::Op::GetData(r)) => Ok(ReadOp::GetData { path: r.path.clone() }),
            Some(pb::op::Op::GetChildren(r)) => Ok(ReadOp::GetChildren { path: r.path.clone() }),
            _ => Err(zk_status(ErrorCode::BadArguments, "only reads are allowed in multiRead")),
        })
        .collect()
}

pub fn op_result_to_pb(r: &Result<OpOutcome, ErrorCode>) -> pb::OpResult {
    let mut out = pb::OpResult::default();
    match r {
        Err(code) => out.error = code.code(),
        Ok(OpOutcome::Created { path, stat }) => {
            out.path = path.clone();
            out.stat = Some(stat_to_pb(stat));
        }
        Ok(OpOutcome::DataSet { stat }) | Ok(OpOutcome::AclSet { stat }) => {
            out.stat = Some(stat_to_pb(stat))
        }
        Ok(_) => {}
    }
    out
}

pub fn read_result_to_pb(r: &Result<ReadOutcome, ErrorCode>) -> pb::OpResult {
    let mut out = pb::OpResult::default();
    match r {
        Err(code) => out.error = code.code(),
        Ok(ReadOutcome::Data { data, stat }) => {
            out.data = data.clone().into();
            out.stat = Some(stat_to_pb(stat));
        }
        Ok(ReadOutcome::Children { children, stat }) => {
            out.children = children.clone();
            out.stat = Some(stat_to_pb(stat));
        }
    }
    out
}
