//! Membership changes: adding voters and observers and removing members while the ensemble
//! serves.
//!
//! Every change goes through openraft's joint consensus on the leader (a follower forwards it
//! over the peer service), so there is never a moment when two disjoint majorities could each
//! elect a leader. A new voter first joins as an observer (an openraft learner) and is promoted
//! only once it has caught up with the leader's log: a voter that is far behind would count
//! toward quorums it cannot help form. Observers replicate and serve clients but never vote,
//! as ZooKeeper's observers.
//!
//! A member being added must have been started with `join = true` (`--join`), so that it waits
//! for the leader instead of initializing an ensemble of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use corral_proto::ErrorCode;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};

use super::member::{ForwardFailure, Member, MemberError};
use crate::raft::types::{zxid, Node};
use crate::raft::NodeId;

/// How long a change may take on the leader, a new voter's catch-up included: longer and the
/// caller gets OperationTimeout (the change may still complete).
pub const MEMBERSHIP_WAIT: Duration = Duration::from_secs(60);
/// How long a request waits for a leader before it gives up.
const LEADER_WAIT: Duration = Duration::from_secs(5);

/// One change to the ensemble's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Adds a voting member at `addr` (its gRPC address). It catches up as an observer first.
    /// An observer of the same id and address is promoted.
    AddVoter { id: NodeId, addr: String },
    /// Adds an observer: it replicates and serves clients, and never votes.
    AddObserver { id: NodeId, addr: String },
    /// Removes a voter or an observer. Once the change is committed, the removed member gets
    /// nothing more from the leader and can be stopped.
    Remove { id: NodeId },
}

/// The membership in force, as one member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipView {
    /// The first zxid of the log entry that holds this configuration (ZooKeeper's config
    /// version); 0 before the ensemble is initialized.
    pub config_zxid: u64,
    /// Voting members and their gRPC addresses: of the configuration a change under way
    /// leads to, when one is (`joint`).
    pub voters: BTreeMap<NodeId, String>,
    /// Every other member (openraft learners, and voters on their way out) and its address.
    pub observers: BTreeMap<NodeId, String>,
    /// Whether this is a joint configuration: a change is half way, and the old voters still
    /// count too.
    pub joint: bool,
}

/// The leader's answer to a membership change: the membership once the change is committed.
pub type MembershipResponse = Result<MembershipView, MemberError>;

fn bad(message: impl Into<String>) -> MemberError {
    MemberError::zk(ErrorCode::BadArguments, message)
}

impl MembershipChange {
    /// Rejects a change that no ensemble could accept, before it goes anywhere.
    pub fn validate(&self) -> Result<(), MemberError> {
        let (id, addr) = match self {
            MembershipChange::AddVoter { id, addr } | MembershipChange::AddObserver { id, addr } => {
                (*id, Some(addr))
            }
            MembershipChange::Remove { id } => (*id, None),
        };
        if id == 0 {
            return Err(bad("member ids start at 1"));
        }
        if let Some(addr) = addr {
            let valid = addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
            if !valid || addr.chars().any(|c| c.is_whitespace() || c == '/') {
                return Err(bad(format!("member address {addr:?} is not HOST:PORT")));
            }
        }
        Ok(())
    }
}

impl MembershipView {
    fn of(membership: &crate::raft::types::StoredMembership) -> MembershipView {
        let config = membership.membership();
        let voter_ids: BTreeSet<NodeId> = config.get_joint_config().last().cloned().unwrap_or_default();
        let mut view = MembershipView {
            config_zxid: membership.log_id().map_or(0, |l| zxid::of(l.index, 0)),
            voters: BTreeMap::new(),
            observers: BTreeMap::new(),
            joint: config.get_joint_config().len() > 1,
        };
        for (id, node) in config.nodes() {
            let side = if voter_ids.contains(id) { &mut view.voters } else { &mut view.observers };
            side.insert(*id, node.addr.clone());
        }
        view
    }
}

impl Member {
    /// The membership in force as this member sees it.
    pub fn membership(&self) -> MembershipView {
        MembershipView::of(&self.raft.metrics().borrow().membership_config)
    }

    /// Makes `change` through the leader and returns the membership once it is committed.
    pub async fn change_membership(&self, change: MembershipChange) -> MembershipResponse {
        change.validate()?;
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            let leader = self.leader();
            match leader {
                Some(leader) if leader == self.id => match self.change_membership_as_leader(change.clone()).await {
                    Err(MemberError::NotLeader(_)) => {}
                    answer => return answer,
                },
                Some(leader) => match self.forward_membership_change(leader, &change).await {
                    Ok(Err(MemberError::NotLeader(_))) | Err(ForwardFailure::NotSent(_)) => {}
                    Ok(answer) => return answer,
                    Err(ForwardFailure::Lost(e)) => return Err(MemberError::Unavailable(e)),
                },
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(MemberError::Unavailable(format!("member {} found no leader within {LEADER_WAIT:?}", self.id)));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Makes `change` on this member, which believes it leads.
    pub async fn change_membership_as_leader(&self, change: MembershipChange) -> MembershipResponse {
        match tokio::time::timeout(MEMBERSHIP_WAIT, self.apply_change(change)).await {
            Ok(answer) => answer,
            Err(_) => Err(MemberError::zk(
                ErrorCode::OperationTimeout,
                format!("the membership change did not complete within {MEMBERSHIP_WAIT:?}; it may still complete"),
            )),
        }
    }

    /// Makes `change`. A joint configuration left half way (its leader lost leadership before it
    /// proposed the final one) is not an obstacle: openraft computes every change from the
    /// configuration the joint one leads to, and the next change finishes it. A change while
    /// another is still uncommitted gets ReconfigInProgress from openraft.
    async fn apply_change(&self, change: MembershipChange) -> MembershipResponse {
        // Asked inside Raft, not of the metrics, which lag: a leader that committed its own
        // removal keeps its leader state until its next tick, and openraft 0.9 must not be asked
        // to change the membership then (a debug assertion; in release the removed leader would
        // re-add itself as it went).
        let id = self.id;
        let leads = self
            .raft
            .with_raft_state(move |st| {
                st.server_state == ServerState::Leader && st.membership_state.effective().membership().get_node(&id).is_some()
            })
            .await
            .unwrap_or(false);
        if !leads {
            return Err(MemberError::NotLeader(format!("member {id} does not lead a configuration it is in")));
        }
        // A quorum confirms the leadership first: a deposed leader cut off from the others still
        // believes it leads, and would answer from its stale membership (an "already a voter"
        // for a member the others removed meanwhile; found by the simulator).
        if let Err(e) = self.raft.ensure_linearizable().await {
            return Err(match e {
                RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(_)) => {
                    MemberError::NotLeader(format!("member {id} lost the leadership: {e}"))
                }
                e => MemberError::Unavailable(format!("member {id} could not confirm its leadership: {e}")),
            });
        }
        let current = self.membership();
        let address = |id: &NodeId| current.voters.get(id).or_else(|| current.observers.get(id));
        let commit = match change {
            MembershipChange::AddVoter { id, addr } => {
                if let Some(old) = address(&id).filter(|old| **old != addr) {
                    return Err(moved(id, old, &addr));
                }
                if current.voters.contains_key(&id) {
                    if !current.joint {
                        return Ok(current);
                    }
                } else {
                    // Blocking: returns once the leader has replicated to the learner everything
                    // up to the entry that added it (for an observer already there, again), so
                    // it is promoted only once it has caught up.
                    raft_answer(self.raft.add_learner(id, Node { addr }, true).await)?;
                }
                self.raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false).await
            }
            MembershipChange::AddObserver { id, addr } => {
                if let Some(old) = address(&id).filter(|old| **old != addr) {
                    return Err(moved(id, old, &addr));
                }
                if current.voters.contains_key(&id) {
                    return Err(bad(format!("member {id} is a voter: remove it first to make it an observer")));
                }
                if current.observers.contains_key(&id) && !current.joint {
                    return Ok(current);
                }
                self.raft.add_learner(id, Node { addr }, false).await
            }
            MembershipChange::Remove { id } => {
                let ids = BTreeSet::from([id]);
                if current.voters.contains_key(&id) {
                    if current.voters.len() == 1 {
                        return Err(MemberError::zk(
                            ErrorCode::NewConfigNoQuorum,
                            format!("member {id} is the only voter: an ensemble needs at least one"),
                        ));
                    }
                    self.raft.change_membership(ChangeMembers::RemoveVoters(ids), false).await
                } else if current.observers.contains_key(&id) {
                    // A voter on its way out of a joint configuration leaves with the change
                    // that finishes it; an observer simply goes.
                    let change = if current.joint { ChangeMembers::RemoveVoters(ids) } else { ChangeMembers::RemoveNodes(ids) };
                    self.raft.change_membership(change, false).await
                } else {
                    return Err(MemberError::zk(ErrorCode::NoNode, format!("member {id} is not in the ensemble")));
                }
            }
        };
        let response = raft_answer(commit)?;
        Ok(match response.membership {
            Some(m) => MembershipView::of(&crate::raft::types::StoredMembership::new(Some(response.log_id), m)),
            None => self.membership(),
        })
    }
}

fn moved(id: NodeId, old: &str, new: &str) -> MemberError {
    bad(format!("member {id} is already in the ensemble at {old}, not {new}: remove it first"))
}

/// openraft's answer to a membership change, as a member error.
fn raft_answer<T>(
    r: Result<T, RaftError<NodeId, ClientWriteError<NodeId, Node>>>,
) -> Result<T, MemberError> {
    r.map_err(|e| match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            MemberError::NotLeader(format!("leadership moved to {:?}", f.leader_id))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(p))) => {
            MemberError::zk(ErrorCode::ReconfigInProgress, p.to_string())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::EmptyMembership(e))) => {
            MemberError::zk(ErrorCode::NewConfigNoQuorum, e.to_string())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => bad(e.to_string()),
        RaftError::Fatal(f) => MemberError::Unavailable(f.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_validated_before_they_go_anywhere() {
        let add = |id, addr: &str| MembershipChange::AddVoter { id, addr: addr.into() };
        assert!(add(4, "127.0.0.1:7004").validate().is_ok());
        assert!(add(4, "member-4.corral.svc:7001").validate().is_ok());
        assert!(add(4, "[::1]:7004").validate().is_ok());
        for wrong in ["", "127.0.0.1", ":7004", "127.0.0.1:0", "127.0.0.1:99999", "http://h:1", "a b:1"] {
            assert!(add(4, wrong).validate().is_err(), "{wrong:?}");
        }
        assert!(add(0, "127.0.0.1:7004").validate().is_err());
        assert!(MembershipChange::Remove { id: 0 }.validate().is_err());
        assert!(MembershipChange::Remove { id: 2 }.validate().is_ok());
    }
}
