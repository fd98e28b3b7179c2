//! Starting and stopping one member: storage → Raft → services → listener.
//!
//! `Server::start` takes an already-bound listener so tests can use port 0 and
//! know the address before the member starts; `main` only parses flags, builds
//! a [`Config`], binds and calls it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use corral_proto::raft::raft_peer_server::RaftPeerServer;
use corral_proto::v1::cluster_server::ClusterServer;
use corral_proto::v1::data_server::DataServer;
use corral_proto::v1::session_server::SessionServer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::cluster::ClusterService;
use crate::api::data::DataService;
use crate::api::member::Member;
use crate::api::peer::PeerService;
use crate::api::session::SessionService;
use crate::config::{Config, ConfigError};
use crate::raft::log_store::LogStore;
use crate::raft::network::NetworkFactory;
use crate::raft::state_machine::StateMachine;
use crate::raft::{Node, Raft};
use crate::storage::{BackendError, LogBackend};

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("storage: {0}")]
    Storage(#[from] BackendError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// gRPC messages may carry a full znode (1 MiB by default) plus framing, and
/// AppendEntries batches of them; snapshots travel in openraft's chunks.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A running member.
pub struct Server {
    member: Arc<Member>,
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    /// The session-expiry and sweep loop (`api::sessions`).
    sessions: Option<JoinHandle<()>>,
    /// The ZooKeeper protocol listener, when configured.
    zk: Option<(std::net::SocketAddr, JoinHandle<()>)>,
    /// Changed (or dropped) when the member stops: closes the links it serves and the accept
    /// loop that routes them (`raft::link`).
    closing: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// Opens the member's storage in `config.data_dir` (see `Config::storage`) and starts it.
    #[cfg(not(madsim))]
    pub async fn start(config: Config, listener: tokio::net::TcpListener) -> Result<Server, ServerError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let backend: Arc<dyn LogBackend> = match config.storage {
            crate::config::StorageKind::File => Arc::new(crate::storage::FileBackend::open(&config.data_dir)?),
            crate::config::StorageKind::Sled => Arc::new(crate::storage::SledBackend::open(&config.data_dir)?),
        };
        Server::start_with_backend(config, backend, listener).await
    }

    /// Starts a member over any storage backend (tests use the in-memory one).
    #[cfg(not(madsim))]
    pub async fn start_with_backend(
        config: Config,
        backend: Arc<dyn LogBackend>,
        listener: tokio::net::TcpListener,
    ) -> Result<Server, ServerError> {
        config.validate()?;
        let addr = listener.local_addr()?;
        let member = Server::open_member(&config, backend).await?;
        let router = Server::router(&config, &member);
        let (stop, stopped) = oneshot::channel::<()>();
        let (closing, closed) = tokio::sync::watch::channel(false);
        let incoming = crate::raft::link::route(listener, member.clone(), config.cluster_secret.clone(), closed);
        let serving = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        }));
        let zk = if config.zk_addr.is_empty() {
            None
        } else {
            let listener = tokio::net::TcpListener::bind(&config.zk_addr).await?;
            let zk_addr = listener.local_addr()?;
            let settings = crate::zk::ZkSettings::from_config(&config);
            tracing::info!(id = config.id, %zk_addr, "zookeeper protocol serving");
            Some((zk_addr, tokio::spawn(crate::zk::serve(member.clone(), listener, settings))))
        };
        let sessions = tokio::spawn(crate::api::sessions::run(
            member.clone(),
            config.tick_ms,
            Duration::from_millis(config.container_check_ms),
        ));
        tracing::info!(id = config.id, %addr, "member serving");
        Ok(Server { member, addr, stop: Some(stop), serving: Some(serving), sessions: Some(sessions), zk, closing })
    }

    /// Starts a member inside the simulator: gRPC through madsim-tonic on `config.grpc_addr`, over
    /// the given (simulated) storage. No ZooKeeper port: the simulator's TCP has no split halves.
    /// The simulator's gRPC does not run over its TCP, so links (`raft::link`) get a TCP listener of
    /// their own on the same address (every connection to it is a link).
    #[cfg(madsim)]
    pub async fn start_simulated(config: Config, backend: Arc<dyn LogBackend>) -> Result<Server, ServerError> {
        config.validate()?;
        let addr: std::net::SocketAddr = config
            .grpc_addr
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("grpc_addr {:?}: {e}", config.grpc_addr)))?;
        let member = Server::open_member(&config, backend).await?;
        let router = Server::router(&config, &member);
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(router.serve_with_shutdown(addr, async {
            let _ = stopped.await;
        }));
        let (closing, closed) = tokio::sync::watch::channel(false);
        let links = tokio::net::TcpListener::bind(addr).await?;
        let secret = config.cluster_secret.clone();
        let handler: Arc<dyn crate::raft::link::LinkHandler> = member.clone();
        tokio::spawn(async move {
            let mut stop = closed.clone();
            loop {
                let stream = tokio::select! {
                    biased;
                    _ = stop.changed() => return,
                    accepted = links.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (handler, secret, closed) = (handler.clone(), secret.clone(), closed.clone());
                tokio::spawn(crate::raft::link::serve_connection(stream, handler, secret, closed));
            }
        });
        let sessions = tokio::spawn(crate::api::sessions::run(
            member.clone(),
            config.tick_ms,
            Duration::from_millis(config.container_check_ms),
        ));
        Ok(Server { member, addr, stop: Some(stop), serving: Some(serving), sessions: Some(sessions), zk: None, closing })
    }

    async fn open_member(config: &Config, backend: Arc<dyn LogBackend>) -> Result<Arc<Member>, ServerError> {
        Server::give_up_restored_leadership(config.id, backend.as_ref())?;
        let log_store = LogStore::new(backend.clone());
        let state_machine = StateMachine::open_with_limit(backend, config.max_data_len)?;
        let shared = state_machine.shared();
        let raft_config = Arc::new(
            config.raft_config().validate().map_err(|e| ServerError::Raft(e.to_string()))?,
        );
        let raft = Raft::new(
            config.id,
            raft_config,
            NetworkFactory::new(config.id, config.cluster_secret.clone()),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| ServerError::Raft(e.to_string()))?;
        Server::initialize_if_new(&raft, config).await?;
        Ok(Arc::new(Member::new(config.id, raft, shared, config.cluster_secret.clone(), config.max_client_cnxns)))
    }

    /// A member that led when it stopped comes back as a follower, and leadership goes through an
    /// election in a new term.
    ///
    /// openraft 0.9 restores a member whose stored vote is its own committed vote as leader of
    /// that term at once, with no new blank entry. Its read index is then the larger of the
    /// term's first entry and its commit index as recovered from disk, and the commit index is
    /// not synced on its own (`LogBackend::save_committed`): it can be older than entries this
    /// member committed and acknowledged before it stopped, so a linearizable read through it
    /// could miss an acknowledged write (found by the simulator; docs/testing.md, bugs found).
    /// The same restart could also reuse, in the same term, an index whose unsynced entry it
    /// lost but a quorum of followers kept. Keeping the vote's term and candidate while dropping
    /// `committed` votes for nobody else in that term, so it is safe.
    fn give_up_restored_leadership(id: u64, backend: &dyn LogBackend) -> Result<(), ServerError> {
        if let Some(vote) = backend.read_vote()? {
            if vote.committed && vote.leader_id.node_id == id {
                tracing::info!(id, term = vote.leader_id.term, "led before stopping: restarting as a follower");
                backend.save_vote(&openraft::Vote::new(vote.leader_id.term, id))?;
            }
        }
        Ok(())
    }

    /// A member whose log is empty proposes the initial membership. Every member
    /// of a new ensemble does this with the same list, which openraft allows.
    /// A joining member waits to be added instead (see `Config::join`).
    async fn initialize_if_new(raft: &Raft, config: &Config) -> Result<(), ServerError> {
        if config.join {
            return Ok(());
        }
        let initialized =
            raft.is_initialized().await.map_err(|e| ServerError::Raft(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        let members: BTreeMap<u64, Node> = config
            .members
            .iter()
            .map(|m| (m.id, Node { addr: m.addr.clone() }))
            .collect();
        if let Err(e) = raft.initialize(members).await {
            // Another member's initialization may have reached us first.
            tracing::info!("initialize skipped: {e}");
        }
        Ok(())
    }

    fn router(config: &Config, member: &Arc<Member>) -> tonic::transport::server::Router {
        let data = DataServer::new(DataService::new(member.clone(), config.max_data_len))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let session = SessionServer::new(SessionService::new(member.clone(), config.tick_ms as i32));
        let cluster = ClusterServer::new(ClusterService::new(member.clone()));
        let peer = RaftPeerServer::new(PeerService::new(member.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        tonic::transport::Server::builder()
            .add_service(data)
            .add_service(session)
            .add_service(cluster)
            .add_service(peer)
    }

    pub fn member(&self) -> &Arc<Member> {
        &self.member
    }

    /// Returns once this member's Raft has stopped on a fatal error (a failed fsync, corrupt
    /// storage), with the error. Such a member can neither vote nor acknowledge anything again:
    /// the caller stops it (the binary exits, the simulator kills the node) so that a restart
    /// recovers from what the disk durably holds.
    ///
    /// It waits on the server metrics (vote, leader, membership: they change rarely), whose
    /// sender goes away when Raft's core stops, rather than on the full metrics: those change
    /// several times per write (replication progress, commit, apply), and a task woken on every
    /// one of them cost more CPU than serving the writes did.
    pub async fn failed(&self) -> String {
        let mut server_metrics = self.member.raft.server_metrics();
        while server_metrics.changed().await.is_ok() {}
        match &self.member.raft.metrics().borrow().running_state {
            Err(fatal) => fatal.to_string(),
            Ok(()) => "raft stopped".to_string(),
        }
    }

    /// The address the member's ZooKeeper protocol port listens on, if it has one.
    pub fn zk_addr(&self) -> Option<std::net::SocketAddr> {
        self.zk.as_ref().map(|(a, _)| *a)
    }

    /// The address the member's gRPC API listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops serving and shuts Raft down; storage is closed when the last handle drops.
    pub async fn shutdown(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        if let Some(sessions) = self.sessions.take() {
            sessions.abort();
        }
        if let Some((_, zk)) = self.zk.take() {
            zk.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.closing.send(true);
        // Session streams end now, so their clients move to another member at once; graceful
        // shutdown would otherwise wait on them.
        self.member.state.watches.lock().drop_all();
        if let Err(e) = self.member.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
        if let Some(mut serving) = self.serving.take() {
            // Open client streams can hold graceful shutdown up; don't wait forever.
            if tokio::time::timeout(Duration::from_secs(5), &mut serving).await.is_err() {
                tracing::warn!("gRPC server did not stop within 5 s; aborting it");
                serving.abort();
            }
        }
    }
}

impl Drop for Server {
    /// A member dropped without `shutdown` (a test "kill") stops serving at once
    /// and its Raft tasks stop in the background.
    fn drop(&mut self) {
        if let Some(sessions) = self.sessions.take() {
            sessions.abort();
        }
        if let Some((_, zk)) = self.zk.take() {
            zk.abort();
        }
        self.member.state.watches.lock().drop_all();
        let _ = self.closing.send(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            let raft = self.member.raft.clone();
            tokio::spawn(async move {
                let _ = raft.shutdown().await;
            });
        }
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
    }
}
