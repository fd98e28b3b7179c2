//! The `Cluster` service: who the members are and where the log stands.

use std::sync::Arc;

use corral_proto::v1 as pb;
use corral_proto::v1::cluster_server::Cluster;
use openraft::ServerState;
use tonic::{Request, Response, Status};

use super::member::Member;

pub struct ClusterService {
    member: Arc<Member>,
}

impl ClusterService {
    pub fn new(member: Arc<Member>) -> ClusterService {
        ClusterService { member }
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
}
