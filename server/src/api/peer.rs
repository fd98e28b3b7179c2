//! The internal `RaftPeer` service: votes, snapshots, read indexes, session touches and
//! membership changes (AppendEntries and forwarded writes come over `raft::link`).
//! Only members holding the cluster secret may call it.

use std::sync::Arc;

use corral_proto::raft::raft_peer_server::RaftPeer;
use corral_proto::raft::RaftBytes;
use openraft::raft::{InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status};

use super::membership::{MembershipChange, MembershipResponse};
use super::member::{Member, MemberError, ReadIndexResponse};
use crate::raft::network::{carries_secret, decode, encode};
use crate::raft::{NodeId, TypeConfig};

pub struct PeerService {
    member: Arc<Member>,
}

impl PeerService {
    pub fn new(member: Arc<Member>) -> PeerService {
        PeerService { member }
    }

    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        if !carries_secret(req, self.member.secret()) {
            return Err(Status::unauthenticated("wrong cluster secret"));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn vote(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        self.authorize(&req)?;
        let rpc: VoteRequest<NodeId> = decode(req.get_ref())?;
        let reply = self.member.raft.vote(rpc).await;
        Ok(Response::new(encode(&reply)?))
    }

    async fn install_snapshot(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        self.authorize(&req)?;
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(req.get_ref())?;
        let reply = self.member.raft.install_snapshot(rpc).await;
        Ok(Response::new(encode(&reply)?))
    }

    async fn touch_sessions(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        self.authorize(&req)?;
        let ids: Vec<i64> = decode(req.get_ref())?;
        self.member.sessions.touch_all(ids);
        Ok(Response::new(encode(&())?))
    }

    async fn read_index(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        self.authorize(&req)?;
        let reply: ReadIndexResponse = match self.member.raft.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map_or(0, |l| crate::raft::types::zxid::of(l.index, 0))),
            Err(e) => Err(MemberError::Unavailable(e.to_string())),
        };
        Ok(Response::new(encode(&reply)?))
    }

    async fn change_membership(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        self.authorize(&req)?;
        let change: MembershipChange = decode(req.get_ref())?;
        let reply: MembershipResponse = match change.validate() {
            Ok(()) => self.member.change_membership_as_leader(change).await,
            Err(e) => Err(e),
        };
        Ok(Response::new(encode(&reply)?))
    }
}
