//! openraft's `RaftNetwork`: AppendEntries over a link ([`super::link`]), votes
//! and snapshots over the internal `RaftPeer` gRPC service.
//!
//! Payloads are openraft's own request/response types, bincode-encoded: both
//! ends are Corral members of the same version, so a schema-free encoding is
//! enough and keeps this adapter thin. Every call carries the cluster secret.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use corral_proto::raft::raft_peer_client::RaftPeerClient;
use corral_proto::raft::RaftBytes;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::link::{AppendLink, LinkError};
use super::types::{Node, NodeId, TypeConfig};

/// Encodes a value for the peer service.
pub fn encode<T: Serialize>(value: &T) -> Result<RaftBytes, tonic::Status> {
    bincode::serialize(value)
        .map(|payload| RaftBytes { payload: payload.into() })
        .map_err(|e| tonic::Status::internal(format!("encode: {e}")))
}

/// Decodes a value received from the peer service.
pub fn decode<T: DeserializeOwned>(bytes: &RaftBytes) -> Result<T, tonic::Status> {
    bincode::deserialize(&bytes.payload)
        .map_err(|e| tonic::Status::invalid_argument(format!("decode: {e}")))
}

/// Builds a lazily connecting channel to a member's gRPC address ("host:port").
pub fn peer_channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Adds the cluster secret to an outgoing internal request.
pub fn authed<T>(secret: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Ok(v) = secret.parse() {
        req.metadata_mut().insert(corral_proto::CLUSTER_SECRET_HEADER, v);
    }
    req
}

/// Whether an incoming request carries the cluster secret.
pub fn carries_secret<T>(req: &tonic::Request<T>, secret: &str) -> bool {
    req.metadata().get(corral_proto::CLUSTER_SECRET_HEADER).and_then(|v| v.to_str().ok()) == Some(secret)
}

/// Creates one [`PeerNetwork`] per replication target.
#[derive(Clone)]
pub struct NetworkFactory {
    /// The member these connections leave from.
    id: NodeId,
    secret: String,
}

impl NetworkFactory {
    pub fn new(id: NodeId, secret: impl Into<String>) -> NetworkFactory {
        NetworkFactory { id, secret: secret.into() }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerNetwork {
        PeerNetwork {
            target,
            addr: node.addr.clone(),
            secret: self.secret.clone(),
            client: peer_channel(&node.addr).ok().map(RaftPeerClient::new),
            from: self.id,
            link: None,
        }
    }
}

/// The connection to one peer.
pub struct PeerNetwork {
    target: NodeId,
    addr: String,
    secret: String,
    /// None when the peer's address could not even be parsed: every call then
    /// reports the peer unreachable instead of panicking.
    client: Option<RaftPeerClient<Channel>>,
    from: NodeId,
    /// AppendEntries go over this ([`super::link`]); opened at the first call and after a
    /// failed or abandoned one.
    link: Option<AppendLink>,
}

/// A transport failure, carried into openraft's `Unreachable`.
#[derive(Debug)]
struct TransportError(String);

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for TransportError {}

impl PeerNetwork {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: StdError + DeserializeOwned,
    {
        let unreachable = |msg: String| RPCError::Unreachable(Unreachable::new(&TransportError(msg)));
        let Some(client) = self.client.as_mut() else {
            return Err(unreachable(format!("bad peer address {}", self.addr)));
        };
        let body = encode(req).map_err(|s| RPCError::Network(NetworkError::new(&s)))?;
        let mut request = authed(&self.secret, body);
        request.set_timeout(timeout);
        let reply = match rpc {
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = match reply {
            Ok(r) => r.into_inner(),
            Err(status) => {
                return Err(unreachable(format!("{} ({}): {}", self.target, self.addr, status)))
            }
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(&reply).map_err(|s| RPCError::Network(NetworkError::new(&s)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

enum Rpc {
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let unreachable = |e: LinkError| RPCError::Unreachable(Unreachable::new(&TransportError(e.to_string())));
        if self.link.as_ref().is_some_and(AppendLink::is_broken) {
            self.link = None;
        }
        let link = match &mut self.link {
            Some(link) => link,
            None => {
                let connect = AppendLink::connect(&self.addr, &self.secret, self.from);
                let link = tokio::time::timeout(option.hard_ttl(), connect)
                    .await
                    .map_err(|_| unreachable(LinkError::Refused(format!("connecting to {} timed out", self.addr))))?
                    .map_err(unreachable)?;
                self.link.insert(link)
            }
        };
        match link.append_entries(&rpc).await {
            Ok(reply) => reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            Err(e) => {
                self.link = None;
                Err(unreachable(e))
            }
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Rpc::Snapshot, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, option.hard_ttl()).await
    }

    /// openraft gives an AppendEntries one heartbeat interval and, when it times out, pauses
    /// replication to that member before trying again. Its default pause, half a second, stalled
    /// every write whenever one follower's fsync or a busy machine made a single call slow
    /// (p99.9 of 1-2 s in bench/RESULTS.md); peers are a LAN away, so a short pause is enough.
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(20)))
    }
}
