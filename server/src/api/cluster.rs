//! The `Cluster` service: who the members are and where the log stands, and membership
//! changes (for operators holding the cluster secret).

use std::sync::Arc;

use corral_proto::v1 as pb;
use corral_proto::v1::cluster_server::Cluster;
use corral_proto::ErrorCode;
use openraft::ServerState;
use tonic::{Request, Response, Status};

use super::convert::{status, zk_status};
use super::member::Member;
use super::membership::{MembershipChange, MembershipView};
use crate::raft::network::carries_secret;

pub struct ClusterService {
    member: Arc<Member>,
}

impl ClusterService {
    pub fn new(member: Arc<Member>) -> ClusterService {
        ClusterService { member }
    }

    /// Membership changes are for operators: they must present the cluster secret, as members do
    /// to each other (ZooKeeper answers NoAuth to a reconfig from anyone but its super user).
    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        if !carries_secret(req, self.member.secret()) {
            return Err(zk_status(
                ErrorCode::NoAuth,
                format!(
                    "membership changes need the cluster secret in the {} metadata entry",
                    corral_proto::CLUSTER_SECRET_HEADER
                ),
            ));
        }
        Ok(())
    }

    async fn change(&self, change: MembershipChange) -> Result<Response<pb::MembershipResponse>, Status> {
        let view = self.member.change_membership(change).await.map_err(status)?;
        Ok(Response::new(membership_to_pb(&view)))
    }
}

fn membership_to_pb(view: &MembershipView) -> pb::MembershipResponse {
    let voters = view.voters.iter().map(|(id, addr)| (id, addr, true));
    let observers = view.observers.iter().map(|(id, addr)| (id, addr, false));
    pb::MembershipResponse {
        config_zxid: view.config_zxid,
        members: voters
            .chain(observers)
            .map(|(id, addr, voter)| pb::MemberStatus {
                id: *id,
                addr: addr.clone(),
                role: if voter { "voter" } else { "observer" }.into(),
                voter,
            })
            .collect(),
    }
}

pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Learner => "learner",
        ServerState::Candidate => "candidate",
        ServerState::Shutdown => "shutdown",
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(&self, _req: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let m = self.member.raft.metrics().borrow().clone();
        let committed = self
            .member
            .raft
            .with_raft_state(|st| st.committed.map(|c| crate::raft::types::zxid::end(c.index)))
            .await
            .ok()
            .flatten()
            .unwrap_or(0);
        let membership = m.membership_config.membership();
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let voter = membership.voter_ids().any(|v| v == *id);
                let role = if Some(*id) == m.current_leader {
                    "leader"
                } else if *id == self.member.id {
                    role_name(m.state)
                } else if voter {
                    "follower"
                } else {
                    "learner"
                };
                pb::MemberStatus { id: *id, addr: node.addr.clone(), role: role.into(), voter }
            })
            .collect();
        let (znode_count, session_count) = {
            let st = self.member.state.read();
            (st.tree.node_count() as u64, st.tree.sessions().count() as u64)
        };
        Ok(Response::new(pb::StatusResponse {
            member_id: self.member.id,
            role: role_name(m.state).into(),
            leader_id: m.current_leader.unwrap_or(0),
            term: m.current_term,
            commit_zxid: committed,
            applied_zxid: self.member.applied_zxid(),
            last_log_index: m.last_log_index.unwrap_or(0),
            members,
            znode_count,
            session_count,
        }))
    }

    async fn add_member(&self, req: Request<pb::AddMemberRequest>) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&req)?;
        let pb::AddMemberRequest { id, addr, voter } = req.into_inner();
        self.change(if voter { MembershipChange::AddVoter { id, addr } } else { MembershipChange::AddObserver { id, addr } })
            .await
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&req)?;
        self.change(MembershipChange::Remove { id: req.into_inner().id }).await
    }
}
