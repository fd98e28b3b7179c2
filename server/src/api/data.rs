//! The `Data` service: ZooKeeper's data operations over gRPC, a thin adapter over
//! [`super::ops`] (shared with the ZooKeeper wire protocol).

use std::sync::Arc;

use corral_proto::v1 as pb;
use corral_proto::v1::data_server::Data;
use corral_proto::ErrorCode;
use tonic::{Request, Response, Status};

use super::convert::{self, status, zk_status};
use super::member::Member;
use super::ops::{Caller, ReadPoint};
use crate::tree::{DataTree, OpOutcome, TxnOp};
use crate::watch::WatchKind;

pub struct DataService {
    member: Arc<Member>,
    /// Largest accepted znode payload (ZooKeeper's jute.maxbuffer), checked here
    /// so an oversized write never reaches the log.
    max_data_len: usize,
}

impl DataService {
    pub fn new(member: Arc<Member>, max_data_len: usize) -> DataService {
        DataService { member, max_data_len }
    }

    fn check_size(&self, data: &[u8]) -> Result<(), Status> {
        if data.len() > self.max_data_len {
            return Err(zk_status(
                ErrorCode::BadArguments,
                format!("data is {} bytes, the limit is {}", data.len(), self.max_data_len),
            ));
        }
        Ok(())
    }

    fn caller<T>(&self, req: &Request<T>, header: Option<&pb::RequestHeader>) -> Result<Caller, Status> {
        Ok(Caller {
            session_id: header.map_or(0, |h| h.session_id),
            auth: convert::identities(header, req.remote_addr().map(|a| a.ip()))?,
            min_zxid: header.map_or(0, |h| h.min_zxid),
            linearizable: header.is_some_and(|h| h.linearizable),
        })
    }

    fn header(&self, point: ReadPoint) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader { zxid: point.zxid, member_id: self.member.id, event_seq: point.event_seq })
    }

    /// Proposes a write; returns its outcome and the reply header.
    async fn write<T>(
        &self,
        req: &Request<T>,
        header: Option<&pb::RequestHeader>,
        op: TxnOp,
    ) -> Result<(OpOutcome, Option<pb::ResponseHeader>), Status> {
        let caller = self.caller(req, header)?;
        let (outcome, zxid) = self.member.submit(&caller, op).await.map_err(status)?;
        Ok((outcome, self.header(self.member.reply_point(zxid, caller.session_id))))
    }

    /// Serves a read from the local replica once the caller may be served here.
    async fn read<T, R>(
        &self,
        req: &Request<T>,
        header: Option<&pb::RequestHeader>,
        path: &str,
        read: impl FnOnce(&DataTree, &mut super::ops::Registrar<'_>, &Caller) -> Result<R, ErrorCode>,
    ) -> Result<(R, Option<pb::ResponseHeader>), Status> {
        let caller = self.caller(req, header)?;
        self.member.admit(&caller, true).await.map_err(status)?;
        let (value, point) = self
            .member
            .read_at(caller.session_id, |tree, reg| {
                let value = read(tree, reg, &caller)?;
                // gRPC carries credentials per request: the latest request that set a watch
                // decides which events the session hears (READ on the node, as ZooKeeper).
                if reg.registered() {
                    reg.watches().set_identities(caller.session_id, caller.auth.clone());
                }
                Ok(value)
            })
            .map_err(|c| zk_status(c, path))?;
        Ok((value, self.header(point)))
    }
}

fn unexpected(o: OpOutcome) -> Status {
    zk_status(ErrorCode::SystemError, format!("unexpected outcome {o:?}"))
}

#[tonic::async_trait]
impl Data for DataService {
    async fn create(&self, req: Request<pb::CreateRequest>) -> Result<Response<pb::CreateResponse>, Status> {
        let r = req.get_ref();
        self.check_size(&r.data)?;
        let op = convert::create_op(r)?;
        match self.write(&req, r.header.as_ref(), op).await? {
            (OpOutcome::Created { path, stat }, header) => {
                Ok(Response::new(pb::CreateResponse { header, path, stat: Some(convert::stat_to_pb(&stat)) }))
            }
            (o, _) => Err(unexpected(o)),
        }
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = req.get_ref();
        let op = TxnOp::Delete { path: r.path.clone(), version: r.version };
        let (_, header) = self.write(&req, r.header.as_ref(), op).await?;
        Ok(Response::new(pb::DeleteResponse { header }))
    }

    async fn set_data(&self, req: Request<pb::SetDataRequest>) -> Result<Response<pb::SetDataResponse>, Status> {
        let r = req.get_ref();
        self.check_size(&r.data)?;
        let op = TxnOp::SetData { path: r.path.clone(), data: r.data.to_vec(), version: r.version };
        match self.write(&req, r.header.as_ref(), op).await? {
            (OpOutcome::DataSet { stat }, header) => {
                Ok(Response::new(pb::SetDataResponse { header, stat: Some(convert::stat_to_pb(&stat)) }))
            }
            (o, _) => Err(unexpected(o)),
        }
    }

    async fn get_data(&self, req: Request<pb::GetDataRequest>) -> Result<Response<pb::GetDataResponse>, Status> {
        let r = req.get_ref();
        let ((data, stat), header) = self
            .read(&req, r.header.as_ref(), &r.path, |tree, reg, caller| {
                let found = tree.get_data(&r.path, &caller.auth)?;
                if r.watch {
                    reg.watch(WatchKind::Data, &r.path)?;
                }
                Ok(found)
            })
            .await?;
        Ok(Response::new(pb::GetDataResponse { header, data: data.into(), stat: Some(convert::stat_to_pb(&stat)) }))
    }

    async fn exists(&self, req: Request<pb::ExistsRequest>) -> Result<Response<pb::ExistsResponse>, Status> {
        let r = req.get_ref();
        let (stat, header) = self
            .read(&req, r.header.as_ref(), &r.path, |tree, reg, _| {
                let stat = tree.exists(&r.path)?;
                // Set whether or not the node exists: on a missing node it waits for NodeCreated.
                if r.watch {
                    reg.watch(WatchKind::Data, &r.path)?;
                }
                Ok(stat)
            })
            .await?;
        Ok(Response::new(pb::ExistsResponse { header, stat: stat.as_ref().map(convert::stat_to_pb) }))
    }

    async fn get_children(
        &self,
        req: Request<pb::GetChildrenRequest>,
    ) -> Result<Response<pb::GetChildrenResponse>, Status> {
        let r = req.get_ref();
        let ((children, stat), header) = self
            .read(&req, r.header.as_ref(), &r.path, |tree, reg, caller| {
                let found = tree.get_children(&r.path, &caller.auth)?;
                if r.watch {
                    reg.watch(WatchKind::Child, &r.path)?;
                }
                Ok(found)
            })
            .await?;
        Ok(Response::new(pb::GetChildrenResponse { header, children, stat: Some(convert::stat_to_pb(&stat)) }))
    }

    async fn get_all_children_number(
        &self,
        req: Request<pb::GetAllChildrenNumberRequest>,
    ) -> Result<Response<pb::GetAllChildrenNumberResponse>, Status> {
        let r = req.get_ref();
        let (number, header) =
            self.read(&req, r.header.as_ref(), &r.path, |tree, _, caller| tree.get_all_children_number(&r.path, &caller.auth))
                .await?;
        Ok(Response::new(pb::GetAllChildrenNumberResponse { header, number }))
    }

    async fn get_ephemerals(
        &self,
        req: Request<pb::GetEphemeralsRequest>,
    ) -> Result<Response<pb::GetEphemeralsResponse>, Status> {
        let r = req.get_ref();
        let prefix = if r.prefix_path.is_empty() { "/" } else { r.prefix_path.as_str() };
        // The caller's own session's ephemerals, as ZooKeeper answers.
        let (paths, header) = self
            .read(&req, r.header.as_ref(), prefix, |tree, _, caller| Ok(tree.get_ephemerals(caller.session_id, prefix)))
            .await?;
        Ok(Response::new(pb::GetEphemeralsResponse { header, paths }))
    }

    async fn get_acl(&self, req: Request<pb::GetAclRequest>) -> Result<Response<pb::GetAclResponse>, Status> {
        let r = req.get_ref();
        let ((acl, stat), header) =
            self.read(&req, r.header.as_ref(), &r.path, |tree, _, caller| tree.read_acl(&r.path, &caller.auth)).await?;
        Ok(Response::new(pb::GetAclResponse {
            header,
            acl: acl.iter().map(convert::acl_to_pb).collect(),
            stat: Some(convert::stat_to_pb(&stat)),
        }))
    }

    async fn set_acl(&self, req: Request<pb::SetAclRequest>) -> Result<Response<pb::SetAclResponse>, Status> {
        let r = req.get_ref();
        let op = TxnOp::SetAcl { path: r.path.clone(), acl: convert::acl_from_pb(&r.acl), version: r.aversion };
        match self.write(&req, r.header.as_ref(), op).await? {
            (OpOutcome::AclSet { stat }, header) => {
                Ok(Response::new(pb::SetAclResponse { header, stat: Some(convert::stat_to_pb(&stat)) }))
            }
            (o, _) => Err(unexpected(o)),
        }
    }

    async fn check(&self, req: Request<pb::CheckRequest>) -> Result<Response<pb::CheckResponse>, Status> {
        let r = req.get_ref();
        let op = TxnOp::Check { path: r.path.clone(), version: r.version };
        let (_, header) = self.write(&req, r.header.as_ref(), op).await?;
        Ok(Response::new(pb::CheckResponse { header }))
    }

    async fn multi(&self, req: Request<pb::MultiRequest>) -> Result<Response<pb::MultiResponse>, Status> {
        let r = req.get_ref();
        let ops = convert::multi_ops(&r.ops)?;
        for op in &ops {
            if let TxnOp::Create { data, .. } | TxnOp::SetData { data, .. } = op {
                self.check_size(data)?;
            }
        }
        // A failed multi is still a reply with per-op results, as in ZooKeeper.
        let (outcome, header) = self.write(&req, r.header.as_ref(), TxnOp::Multi(ops)).await?;
        let results = match outcome {
            OpOutcome::Multi(results) => results.iter().map(convert::op_result_to_pb).collect(),
            o => return Err(unexpected(o)),
        };
        Ok(Response::new(pb::MultiResponse { header, results }))
    }

    async fn multi_read(&self, req: Request<pb::MultiRequest>) -> Result<Response<pb::MultiResponse>, Status> {
        let r = req.get_ref();
        let ops = convert::read_ops(&r.ops)?;
        let (results, header) = self
            .read(&req, r.header.as_ref(), "multiRead", |tree, _, caller| Ok(tree.multi_read(&ops, &caller.auth)))
            .await?;
        Ok(Response::new(pb::MultiResponse { header, results: results.iter().map(convert::read_result_to_pb).collect() }))
    }

    async fn sync(&self, req: Request<pb::SyncRequest>) -> Result<Response<pb::SyncResponse>, Status> {
        let r = req.get_ref();
        // Catch up with the leader's commit point, then answer like a read.
        let index = self.member.read_index().await.map_err(status)?;
        let mut caller = self.caller(&req, r.header.as_ref())?;
        caller.min_zxid = caller.min_zxid.max(index);
        caller.linearizable = false;
        self.member.admit(&caller, true).await.map_err(status)?;
        let ((), point) = self.member.read_at(caller.session_id, |_, _| Ok(())).map_err(|c| zk_status(c, &r.path))?;
        Ok(Response::new(pb::SyncResponse { header: self.header(point), path: r.path.clone() }))
    }
}
