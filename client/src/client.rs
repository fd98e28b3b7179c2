//! [`Client`]: one method per operation of the `Data` and `Cluster` services.
//!
//! Every method validates its arguments, queues the request *when called* and
//! returns a [`Reply`] to await (see `dispatch.rs` for what order that buys).
//! Shared conventions, so each method's doc only adds what differs:
//!
//! - **Errors**: ZooKeeper refusals come back as [`Error::Zk`] with the code
//!   the server gave (NoNode, BadVersion, NoAuth, ...); a malformed path is
//!   [`Error::InvalidArgument`] and is never sent.
//! - **ConnectionLoss**: reads are retried on other members and only fail with
//!   [`Error::ConnectionLoss`] when no member answers; a write fails with it
//!   (or [`Error::Timeout`]) whenever its outcome is unknown: check
//!   [`Error::is_definite`] before concluding it did not happen.
//! - **Consistency**: reads are served by whichever member the client is on
//!   (ZooKeeper's sequential consistency) but never from a state older than
//!   [`Client::last_zxid`]; use [`Client::linearizable`] or [`Client::sync`]
//!   for the latest committed state.
//! - **Sessions**: with a session (see [`Client::start_session`]) every request
//!   goes to the member the session's stream is attached to, waits while the
//!   session reconnects, and its reply is held until the watch events the
//!   member sent before it have arrived (`session.rs`). Once the session has
//!   expired, every request fails with SessionExpired.

use std::sync::Arc;

use bytes::Bytes;
use corral_proto::v1 as pb;
use corral_proto::v1::cluster_client::ClusterClient;
use corral_proto::v1::data_client::DataClient;
use corral_proto::v1::session_client::SessionClient;
use corral_proto::ErrorCode;
use parking_lot::RwLock;
use tonic::transport::{Channel, Endpoint};

use crate::builder::ClientBuilder;
use crate::connection::{Kind, Pool, Timeouts, MAX_MESSAGE_BYTES};
use crate::convert::{self, acls_to_pb, op_result, result_code, stat, version, OpKind};
use crate::dispatch::{Dispatcher, Reply};
use crate::error::Error;
use crate::path;
use crate::session::{self, End, SessionCore, SessionStates, StateHub};
use crate::types::{
    Acl, AddWatchMode, ClusterStatus, CreateOptions, Membership, Op, OpResult, SessionInfo, SessionState,
    Stat, WatcherType,
};
use crate::watch::{OneShot, PendingListener, PendingWatch, Watch, WatchStream};

/// A handle to a Corral ensemble. Cheap to clone: clones share the
/// connections, the session, the authentication and the request queue.
///
/// Build one with [`Client::connect`] or [`ClientBuilder`], inside a tokio
/// runtime (the client runs a small dispatch task on it).
#[derive(Clone)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
    /// Set on the view returned by [`Client::linearizable`]; applies to reads.
    linearizable: bool,
}

pub(crate) struct Shared {
    pub(crate) pool: Arc<Pool>,
    dispatcher: Dispatcher,
    /// The session requests carry; read when a method is called.
    pub(crate) session: RwLock<Option<Arc<SessionCore>>>,
    /// The public session state, across sessions.
    hub: Arc<StateHub>,
    /// Serialises `start_session` and `close_session`.
    session_op: tokio::sync::Mutex<()>,
    /// (scheme, credential) pairs sent with every request (and with every session attach).
    auth: Arc<RwLock<Vec<pb::AuthInfo>>>,
}

impl Drop for Shared {
    /// The last handle is gone: stop the session's task. The session itself
    /// is left to expire on the server, as when a process dies.
    fn drop(&mut self) {
        if let Some(core) = self.session.get_mut().take() {
            core.end(End::Dropped);
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.shared.pool.addrs())
            .field("session", &self.session())
            .field("session_state", &self.session_state())
            .field("last_zxid", &self.last_zxid())
            .field("linearizable", &self.linearizable)
            .finish()
    }
}

fn data(channel: Channel) -> DataClient<Channel> {
    DataClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES)
}

impl Client {
    /// Connects to the ensemble at `endpoints` (`host:port` each) with the
    /// default timeouts. Shorthand for `ClientBuilder::new(endpoints).connect()`;
    /// see [`ClientBuilder::connect`] for what is checked here.
    pub async fn connect(endpoints: Vec<String>) -> Result<Client, Error> {
        ClientBuilder::new(endpoints).connect().await
    }

    /// A builder for a client with non-default timeouts.
    pub fn builder<I, S>(endpoints: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientBuilder::new(endpoints)
    }

    pub(crate) fn start(members: Vec<(String, Endpoint)>, timeouts: Timeouts) -> Client {
        let shared = Shared {
            pool: Arc::new(Pool::new(members, timeouts)),
            dispatcher: Dispatcher::start(),
            session: RwLock::new(None),
            hub: Arc::new(StateHub::new()),
            session_op: tokio::sync::Mutex::new(()),
            auth: Arc::new(RwLock::new(Vec::new())),
        };
        Client { shared: Arc::new(shared), linearizable: false }
    }

    /// The endpoints this client fails over between, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.shared.pool.addrs()
    }

    /// The endpoint requests currently go to.
    pub fn current_endpoint(&self) -> Option<String> {
        self.shared.pool.current_addr()
    }

    /// The highest zxid any reply has carried. Every request asks the member
    /// to be at least this fresh, so the client never sees time go backwards
    /// after moving to another member.
    pub fn last_zxid(&self) -> u64 {
        self.shared.pool.last_zxid()
    }

    /// A view of this client whose reads are linearizable: served after the
    /// leader confirms its commit point (a read index), so they reflect every
    /// write acknowledged before the read began, to anyone. Costs a round
    /// trip to the leader. Writes are unaffected.
    ///
    /// ```no_run
    /// # async fn demo(client: corral_client::Client) -> Result<(), corral_client::Error> {
    /// let (data, _stat) = client.linearizable().get_data("/config").await?;
    /// # Ok(()) }
    /// ```
    pub fn linearizable(&self) -> Client {
        Client { shared: self.shared.clone(), linearizable: true }
    }

    /// Whether this view's reads are linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.linearizable
    }

    /// Adds an identity sent with every later request of this client and its
    /// clones, e.g. `add_auth("digest", "user:password")`. Nothing is sent
    /// now: the server checks the credential on each request and answers
    /// AuthFailed or NoAuth there.
    pub fn add_auth(&self, scheme: impl Into<String>, credential: impl Into<Vec<u8>>) {
        let info = pb::AuthInfo { scheme: scheme.into(), credential: Bytes::from(credential.into()) };
        let mut auth = self.shared.auth.write();
        if !auth.contains(&info) {
            auth.push(info);
        }
    }

    /// The id of the session this client's requests carry, 0 without one.
    pub fn session_id(&self) -> i64 {
        self.shared.session.read().as_ref().map_or(0, |s| s.info.id)
    }

    /// The session this client's requests carry, if any (an expired one
    /// included, until [`Client::close_session`] clears it).
    pub fn session(&self) -> Option<SessionInfo> {
        self.shared.session.read().as_ref().map(|s| s.info.clone())
    }

    fn session_core(&self) -> Option<Arc<SessionCore>> {
        self.shared.session.read().clone()
    }

    /// Where the session stands now (see [`SessionState`] for the states and
    /// their transitions). [`SessionState::NoSession`] before the first
    /// [`Client::start_session`].
    pub fn session_state(&self) -> SessionState {
        self.shared.hub.current()
    }

    /// Every session state from now on, starting with the current one, across
    /// sessions (a new `start_session` begins again at `Connecting`). Nothing
    /// is dropped for a slow consumer: each subscriber gets every transition.
    ///
    /// ```no_run
    /// # async fn demo(client: corral_client::Client) {
    /// use futures::StreamExt;
    /// use corral_client::SessionState;
    /// let mut states = client.session_states();
    /// while let Some(state) = states.next().await {
    ///     match state {
    ///         SessionState::Disconnected => eprintln!("suspended: not sure we still hold our locks"),
    ///         SessionState::Expired => break, // ephemerals are gone: start over
    ///         _ => {}
    ///     }
    /// }
    /// # }
    /// ```
    pub fn session_states(&self) -> SessionStates {
        self.shared.hub.subscribe()
    }

    /// Test hook: stops (`true`) or resumes the session's pings, so that the
    /// ensemble expires the session as if this client had hung. While paused
    /// the client also stops watching for a silent member.
    #[doc(hidden)]
    pub fn pause_pings_for_test(&self, paused: bool) {
        if let Some(core) = self.session_core() {
            core.pause_pings(paused);
        }
    }

    /// Opens a session (committed through the log) with the requested timeout,
    /// which the server negotiates into its [2, 20] ticks, attaches its stream
    /// to a member, and makes every later request of this client and its
    /// clones carry it. Returns once the stream is attached
    /// ([`SessionState::Connected`]). Ephemeral nodes and watches need one.
    ///
    /// From then on a background task pings the member every third of the
    /// timeout and, when the stream breaks, re-attaches to another member
    /// (the session, its ephemeral nodes and its watches move with it); see
    /// [`Client::session_states`] to follow that.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if this client already has a session;
    /// ConnectionLoss if no member took the session's stream within the
    /// request timeout (the half-made session is then closed, best effort).
    pub async fn start_session(&self, timeout_ms: i32) -> Result<SessionInfo, Error> {
        let _op = self.shared.session_op.lock().await;
        if let Some(s) = self.session() {
            return Err(Error::InvalidArgument(format!("client already has session {:#x}", s.id)));
        }
        let req = pb::CreateSessionRequest { timeout_ms };
        let info = self
            .submit(
                Kind::Write,
                req,
                |ch, r| async move { SessionClient::new(ch).create_session(r).await },
                |r| Ok(SessionInfo { id: r.session_id, password: r.password.to_vec(), timeout_ms: r.timeout_ms }),
            )
            .await?;
        // Attach where the session was created: that member has applied it.
        let pool = self.shared.pool.clone();
        let core = SessionCore::new(info.clone(), self.shared.hub.clone(), pool.current_index(), self.shared.auth.clone());
        drop(tokio::spawn(session::run(core.clone(), pool.clone(), pool.current_index())));
        let deadline = tokio::time::Instant::now() + pool.request_timeout();
        if let Err(e) = core.wait_connected(deadline).await {
            if core.end_of().is_none() {
                // Stop the task first, so it can't attach behind our back.
                core.end(End::Closed);
                let header = pb::RequestHeader { session_id: info.id, ..self.header(Kind::Write) };
                let close = pb::CloseSessionRequest { header: Some(header) };
                let closed = pool
                    .call(Kind::Write, close, |ch, r| async move { SessionClient::new(ch).close_session(r).await })
                    .await;
                tracing::debug!(?closed, "closing a session whose stream never attached");
            }
            return Err(e);
        }
        *self.shared.session.write() = Some(core);
        Ok(info)
    }

    /// Closes this client's session: its ephemeral nodes are deleted in one
    /// committed transaction, its watches fail with SessionExpired (as
    /// ZooKeeper reports a closed session), the state becomes
    /// [`SessionState::Closed`], and later requests carry no session. A
    /// client with no session has nothing to close and gets `Ok`; one whose
    /// session already expired gets `Ok` too (the session is cleared, so a new
    /// one can be started).
    ///
    /// # Errors
    /// ConnectionLoss or Timeout if the close may not have reached the
    /// ensemble: the session is kept (call again), and if it never arrived,
    /// the ensemble expires the session after its timeout.
    pub async fn close_session(&self) -> Result<(), Error> {
        let _op = self.shared.session_op.lock().await;
        let Some(core) = self.session_core() else {
            return Ok(());
        };
        if core.end_of().is_none() {
            let header = pb::RequestHeader { session_id: core.info.id, ..self.header(Kind::Write) };
            let req = pb::CloseSessionRequest { header: Some(header) };
            let closed = self
                .submit(
                    Kind::Write,
                    req,
                    |ch, r| async move { SessionClient::new(ch).close_session(r).await },
                    |_| Ok(()),
                )
                .await;
            match closed {
                // Already gone on the server: closed all the same.
                Ok(()) | Err(Error::Zk { code: ErrorCode::SessionExpired, .. }) => core.end(End::Closed),
                Err(e) => return Err(e),
            }
        }
        self.shared.hub.apply(session::Happening::Cleared);
        *self.shared.session.write() = None;
        Ok(())
    }

    pub(crate) fn header(&self, kind: Kind) -> pb::RequestHeader {
        pb::RequestHeader {
            session_id: self.session_id(),
            // Filled in per attempt, with the freshest value.
            min_zxid: 0,
            auth: self.shared.auth.read().clone(),
            linearizable: self.linearizable && kind == Kind::Read,
        }
    }

    /// Queues one request and maps its reply. `rpc` makes one attempt on a
    /// channel; the pool retries it per the failover rules.
    pub(crate) fn submit<Req, Resp, T, F, Fut, M>(
        &self,
        kind: Kind,
        req: Req,
        rpc: F,
        map: M,
    ) -> Reply<T>
    where
        Req: crate::connection::Outgoing + Clone + Send + 'static,
        Resp: crate::connection::Incoming + Send + 'static,
        T: Send + 'static,
        F: Fn(Channel, tonic::Request<Req>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>
            + Send
            + 'static,
        M: FnOnce(Resp) -> Result<T, Error> + Send + 'static,
    {
        let shared = self.shared.clone();
        // The session the request was built for; a request whose session has
        // since been replaced goes out unpinned and the server answers it.
        let session_id = req.session_id();
        let session = self.session_core().filter(|s| session_id != 0 && s.info.id == session_id);
        self.shared.dispatcher.submit(move || async move {
            let Some(session) = session else {
                let reply = shared.pool.call(kind, req, rpc).await?;
                return map(reply);
            };
            let deadline = tokio::time::Instant::now() + shared.pool.request_timeout();
            loop {
                let (reply, sent_gen) = shared.pool.call_pinned(kind, req.clone(), &rpc, &session, deadline).await?;
                if let Some(h) = reply.header() {
                    session.gate(h.member_id, h.event_seq, sent_gen, deadline).await?;
                }
                // The session re-attached while the read was out: its reply
                // can't be ordered against the new stream's events (the member
                // may have served it after the re-attach, or be ahead of the
                // new member), and a watch it set is not the one the re-attach
                // made. Read again on the new stream.
                if kind == Kind::Read && session.moved_since(sent_gen) {
                    continue;
                }
                if let Some(zxid) = reply.zxid() {
                    shared.pool.observe(zxid);
                }
                // A write is not sent again, but its reply waits until the new
                // stream has delivered the events up to its zxid.
                if session.moved_since(sent_gen) {
                    settle(&shared, &session, deadline).await?;
                }
                return map(reply);
            }
        })
    }

    /// The session a watch needs, and a header that carries exactly it.
    fn watch_context(&self, kind: Kind) -> Result<(Arc<SessionCore>, pb::RequestHeader), Error> {
        let Some(core) = self.session_core() else {
            return Err(Error::InvalidArgument(
                "watches belong to a session: call start_session first".into(),
            ));
        };
        if let Some(end) = core.end_of() {
            return Err(end.error(core.info.id));
        }
        let header = pb::RequestHeader { session_id: core.info.id, ..self.header(kind) };
        Ok((core, header))
    }

    /// [`Client::get_data`], leaving a one-shot data watch: the [`Watch`]
    /// resolves on the node's next NodeDataChanged or NodeDeleted.
    ///
    /// The watch is set in the same step as the read, so it fires for the
    /// first change after the returned data, never for one the data already
    /// shows. Needs a session; the watch is carried across reconnects.
    ///
    /// ```no_run
    /// # async fn demo(client: corral_client::Client) -> Result<(), corral_client::Error> {
    /// let (config, _stat, changed) = client.get_data_watch("/config").await?;
    /// let event = changed.await?; // NodeDataChanged /config (zxid 0x..)
    /// # let _ = (config, event); Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Client::get_data`] (on NoNode no watch is left: use
    /// [`Client::exists_watch`] to wait for a node to appear);
    /// [`Error::InvalidArgument`] without a session.
    pub fn get_data_watch(&self, path: &str) -> Reply<(Vec<u8>, Stat, Watch)> {
        let (core, header) = match path::validate(path, false).and_then(|()| self.watch_context(Kind::Read)) {
            Ok(c) => c,
            Err(e) => return Reply::ready(Err(e)),
        };
        let (pending, watch) = match PendingWatch::enter(&core.watches, path, OneShot::Data) {
            Ok(p) => p,
            Err(e) => return Reply::ready(Err(e)),
        };
        let req = pb::GetDataRequest { header: Some(header), path: path.to_string(), watch: true };
        self.submit(
            Kind::Read,
            req,
            |ch, r| async move { data(ch).get_data(r).await },
            move |r| {
                let stat = stat(r.stat);
                pending.arm(OneShot::Data, zxid_of(stat.mzxid), read_zxid(r.header.as_ref()));
                Ok((r.data.to_vec(), stat, watch))
            },
        )
    }

    /// [`Client::exists`], leaving a one-shot watch: on an existing node it
    /// resolves on NodeDataChanged or NodeDeleted, on a missing one on
    /// NodeCreated. Needs a session; carried across reconnects.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a session.
    pub fn exists_watch(&self, path: &str) -> Reply<(Option<Stat>, Watch)> {
        let (core, header) = match path::validate(path, false).and_then(|()| self.watch_context(Kind::Read)) {
            Ok(c) => c,
            Err(e) => return Reply::ready(Err(e)),
        };
        let (pending, watch) = match PendingWatch::enter(&core.watches, path, OneShot::Exist) {
            Ok(p) => p,
            Err(e) => return Reply::ready(Err(e)),
        };
        let req = pb::ExistsRequest { header: Some(header), path: path.to_string(), watch: true };
        self.submit(
            Kind::Read,
            req,
            |ch, r| async move { data(ch).exists(r).await },
            move |r| {
                let stat = r.stat.map(Stat::from);
                let read = read_zxid(r.header.as_ref());
                match stat {
                    // ZooKeeper's client files an exists watch on an existing
                    // node as a data watch: that is how a reconnect treats it.
                    Some(s) => pending.arm(OneShot::Data, zxid_of(s.mzxid), read),
                    None => pending.arm(OneShot::Exist, read, read),
                }
                Ok((stat, watch))
            },
        )
    }

    /// [`Client::get_children`], leaving a one-shot child watch: the [`Watch`]
    /// resolves on the node's next NodeChildrenChanged (a child created or
    /// deleted) or NodeDeleted. Needs a session; carried across reconnects.
    ///
    /// # Errors
    /// As [`Client::get_children`]; [`Error::InvalidArgument`] without a session.
    pub fn get_children_watch(&self, path: &str) -> Reply<(Vec<String>, Stat, Watch)> {
        let (core, header) = match path::validate(path, false).and_then(|()| self.watch_context(Kind::Read)) {
            Ok(c) => c,
            Err(e) => return Reply::ready(Err(e)),
        };
        let (pending, watch) = match PendingWatch::enter(&core.watches, path, OneShot::Child) {
            Ok(p) => p,
            Err(e) => return Reply::ready(Err(e)),
        };
        let req = pb::GetChildrenRequest { header: Some(header), path: path.to_string(), watch: true };
        self.submit(
            Kind::Read,
            req,
            |ch, r| async move { data(ch).get_children(r).await },
            move |r| {
                let stat = stat(r.stat);
                pending.arm(OneShot::Child, zxid_of(stat.pzxid), read_zxid(r.header.as_ref()));
                Ok((r.children, stat, watch))
            },
        )
    }

    /// Leaves a persistent watch on `path` (ZooKeeper's `addWatch`): every
    /// event on the node, or with [`AddWatchMode::PersistentRecursive`] on the
    /// node and all its descendants (except NodeChildrenChanged), arrives on
    /// the returned [`WatchStream`] in zxid order, from the first change after
    /// this call on, until [`Client::remove_watches`] or the end of the
    /// session. The node need not exist. Needs a session; carried across
    /// reconnects.
    ///
    /// ```no_run
    /// # async fn demo(client: corral_client::Client) -> Result<(), corral_client::Error> {
    /// use futures::StreamExt;
    /// use corral_client::AddWatchMode;
    /// let mut events = client.add_watch("/app", AddWatchMode::PersistentRecursive).await?;
    /// while let Some(event) = events.next().await {
    ///     println!("{event}"); // NodeCreated /app/job-1 (zxid 0x2a)
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a session or for a bad path.
    pub fn add_watch(&self, path: &str, mode: AddWatchMode) -> Reply<WatchStream> {
        let (core, header) = match path::validate(path, false).and_then(|()| self.watch_context(Kind::Read)) {
            Ok(c) => c,
            Err(e) => return Reply::ready(Err(e)),
        };
        let pending = match PendingListener::enter(&core.watches, path, mode) {
            Ok(p) => p,
            Err(e) => return Reply::ready(Err(e)),
        };
        let req = pb::AddWatchRequest {
            header: Some(header),
            path: path.to_string(),
            mode: pb::AddWatchMode::from(mode) as i32,
        };
        // Registering twice is harmless (the member keeps one registration),
        // so an ambiguous failure may be retried like a read.
        self.submit(
            Kind::Read,
            req,
            |ch, r| async move { SessionClient::new(ch).add_watch(r).await },
            move |r| Ok(pending.arm(r.header.map_or(0, |h| h.zxid))),
        )
    }

    /// Removes this session's watches of `kind` on `path` (ZooKeeper's
    /// `removeAllWatches`): [`WatcherType::Data`] removes data and exists
    /// watches, [`WatcherType::Any`] every kind. The removed watchers hear it:
    /// each [`Watch`] resolves to a `DataWatchRemoved` / `ChildWatchRemoved`
    /// event, each [`WatchStream`] yields `PersistentWatchRemoved` and ends.
    ///
    /// # Errors
    /// NoWatcher if the session has no such watch on `path`;
    /// [`Error::InvalidArgument`] without a session.
    pub fn remove_watches(&self, path: &str, kind: WatcherType) -> Reply<()> {
        let (core, header) = match path::validate(path, false).and_then(|()| self.watch_context(Kind::Write)) {
            Ok(c) => c,
            Err(e) => return Reply::ready(Err(e)),
        };
        let req = pb::RemoveWatchesRequest {
            header: Some(header),
            path: path.to_string(),
            kind: pb::WatcherType::from(kind) as i32,
        };
        let registry = core.watches.clone();
        let path = path.to_string();
        self.submit(
            Kind::Write,
            req,
            |ch, r| async move { SessionClient::new(ch).remove_watches(r).await },
            move |_| {
                registry.lock().removed(&path, kind);
                Ok(())
            },
        )
    }

    fn check_ephemeral_session(&self, options: &CreateOptions) -> Result<(), Error> {
        if options.mode.is_ephemeral() && self.session_id() == 0 {
            return Err(Error::InvalidArgument(
                "ephemeral nodes belong to a session: call start_session first".into(),
            ));
        }
        Ok(())
    }

    /// Creates a node and returns its actual path (with the sequence suffix
    /// for sequential modes) and its stat.
    ///
    /// # Errors
    /// NodeExists, NoNode (no parent), NoChildrenForEphemerals, InvalidAcl,
    /// NoAuth. An ephemeral mode without a session, or a TTL that doesn't
    /// match the mode, is [`Error::InvalidArgument`].
    ///
    /// # ConnectionLoss
    /// The node may exist. For a sequential node that means an unknown name:
    /// recipes embed a unique prefix and search for it.
    pub fn create(&self, path: &str, data_: &[u8], options: CreateOptions) -> Reply<(String, Stat)> {
        let checked = path::validate(path, options.mode.is_sequential())
            .and_then(|()| options.check())
            .and_then(|()| self.check_ephemeral_session(&options));
        if let Err(e) = checked {
            return Reply::ready(Err(e));
        }
        let req = pb::CreateRequest {
            header: Some(self.header(Kind::Write)),
            path: path.to_string(),
            data: Bytes::copy_from_slice(data_),
            acl: acls_to_pb(options.acl),
            mode: pb::CreateMode::from(options.mode) as i32,
            ttl_ms: options.ttl_ms.unwrap_or(0),
        };
        self.submit(
            Kind::Write,
            req,
            |ch, r| async move { data(ch).create(r).await },
            |r| Ok((r.path, stat(r.stat))),
        )
    }

    /// Deletes a node if its data version is `version` (`None`: any version).
    ///
    /// # Errors
    /// NoNode, BadVersion, NotEmpty, NoAuth.
    pub fn delete(&self, path: &str, version: Option<i32>) -> Reply<()> {
        if let Err(e) = path::validate(path, false) {
            return Reply::ready(Err(e));
        }
        let req = pb::DeleteRequest {
            header: Some(self.header(Kind::Write)),
            path: path.to_string(),
            version: convert::version(version),
        };
        self.submit(Kind::Write, req, |ch, r| async move { data(ch).delete(r).await }, |_| Ok(()))
    }

    /// Replaces a node's data if its version is `version` (`None`: any) and
    /// returns the new stat.
    ///
    /// # Errors
    /// NoNode, BadVersion, NoAuth.
    pub fn set_data(&self, path: &str, data_: &[u8], version: Option<i32>) -> Reply<Stat> {
        if let Err(e) = path::validate(path, false) {
            return Reply::ready(Err(e));
        }
        let req = pb::SetDataRequest {
            header: Some(self.header(Kind::Write)),
            path: path.to_string(),
            data: Bytes::copy_from_slice(data_),
            version: convert::version(version),
        };
        self.submit(
            Kind::Write,
            req,
            |ch, r| async move { data(ch).set_data(r).await },
            |r| Ok(stat(r.stat)),
        )
    }

    /// A node's data and stat.
    ///
    /// # Errors
    /// NoNode, NoAuth.
    pub fn get_data(&self, path: &str) -> Reply<(Vec<u8>, Stat)> {
        if let Err(e) = path::validate(path, false) {
            return Reply::ready(Err(e));
        }
        let req = pb::GetDataRequest { header: Some(self.header(Kind::Read)), path: path.to_string(), watch: false };
        self.submit(
            Kind::Read,
            req,
            |ch, r| async move { data(ch).get_data(r).await },
            |r| Ok((r.data.to_vec(), stat(r.stat))),
        )
    }

    /// A node's stat, or `None` if it doesn't exist (not an error).
    pub fn exists(&self, path: &str) -> Reply<Option<Stat>> {
        if let Err(e) = path::validate(path, false) {
            return Reply::ready(Err(e));
        }
        let req = pb::ExistsRequest { header: Some(self.header(Kind::Read)), path: path.to_string(), watch: false };
        self.submit(
            Kind::Read,
            req,
            |ch, r| async move { data(ch).exists(r).await },
            |r| Ok(r.stat.map(Stat::from)),
        )
    }

    /// A node's children's names (not full paths), unsorted, and its stat.
    ///
    /// # Errors
    /// NoNode, NoAuth.
    pub fn get_children(&self, path: &str) -> Reply<(Vec<String>, Stat)> {
        if let Err(e) = path::validate(path, false) {
            return Reply::ready(Err(e));
        }
        let req =
            pb::GetChildrenRequest { header: Some(self.header(Kind::Read)), path: path.to_string(), watch: false };
        self.submit(
            Kind::Read,
            req,
            |ch, r| async move { data(ch).get_children(r).await },
            |r| Ok((r.children, stat(r.stat))),
        )
    }

    /// The number of descendants of a node (the node itself excluded).
    ///
    /// # Errors
    /// NoNode, NoAuth.
    pub fn get_all_children_number(&self, path: &str) -> Reply<i32> {
        if let Err(e) = path::validate(path, false) {
            return Reply::ready(Err(e));
        }
        let req = pb::GetAllChildrenNumberRequest {
            header: Some(self.header(Kind::Read)),
            path: path.to_string(),
        };
        self.submit(
            Kind::Read,
            req,
            |ch, r| async move { data(ch).get_all_children_number(r).await },
            |r| Ok(r.number),
        )
    }

    /// The paths of this client's session's ephemeral nodes under
    /// `prefix_path` (`/` for all). Without a session the list is empty.
    pub fn get_ephemerals(&self, prefix_path: &str) -> Reply<Vec<String>> {
        if let Err(e) = path::validate(prefix_path, false) {
            return Reply::ready(Err(e));
        }
        let req = pb::GetEphemeralsRequest {
            header: Some(self.header(Kind::Read)),
            prefix_path: prefix_path.to_string(),
        };
        self.submit(
            Kind::Read,
            req,
            |ch, r| async move { data(ch).get_ephemerals(r).await },
            |r| Ok(r.paths),
        )
    }

    /// A node's ACL and stat.
    ///
    /// # Errors
    /// NoNode.
    pub fn get_acl(&self, path: &str) -> Reply<(Vec<Acl>, Stat)> {
        if let Err(e) = path::validate(path, false) {
            return Reply::ready(Err(e));
        }
        let req = pb::GetAclRequest { header: Some(self.header(Kind::Read)), path: path.to_string() };
        self.submit(
            Kind::Read,
            req,
            |ch, r| async move { data(ch).get_acl(r).await },
            |r| Ok((r.acl.into_iter().map(Acl::from).collect(), stat(r.stat))),
        )
    }

    /// Replaces a node's ACL if its ACL version is `aversion` (`None`: any)
    /// and returns the new stat.
    ///
    /// # Errors
    /// NoNode, BadVersion, InvalidAcl, NoAuth (ADMIN permission is needed).
    pub fn set_acl(&self, path: &str, acl: Vec<Acl>, aversion: Option<i32>) -> Reply<Stat> {
        if let Err(e) = path::validate(path, false) {
            return Reply::ready(Err(e));
        }
        let req = pb::SetAclRequest {
            header: Some(self.header(Kind::Write)),
            path: path.to_string(),
            acl: acls_to_pb(acl),
            aversion: version(aversion),
        };
        self.submit(
            Kind::Write,
            req,
            |ch, r| async move { data(ch).set_acl(r).await },
            |r| Ok(stat(r.stat)),
        )
    }

    /// Succeeds if the node's data version is `version` (ZooKeeper 3.9's
    /// standalone check). Mostly useful inside [`Client::multi`] as
    /// [`Op::check`].
    ///
    /// # Errors
    /// NoNode, BadVersion.
    pub fn check(&self, path: &str, version: i32) -> Reply<()> {
        if let Err(e) = path::validate(path, false) {
            return Reply::ready(Err(e));
        }
        let req = pb::CheckRequest {
            header: Some(self.header(Kind::Read)),
            path: path.to_string(),
            version,
        };
        self.submit(Kind::Read, req, |ch, r| async move { data(ch).check(r).await }, |_| Ok(()))
    }

    /// Applies `ops` (creates, deletes, set_datas, checks) atomically: all or
    /// none. Returns one result per op, in order.
    ///
    /// # Errors
    /// [`Error::Multi`] when the server rejected the transaction: its `code`
    /// is the failing op's code and `results` tells which op failed. A read op
    /// in `ops` is [`Error::InvalidArgument`] (use [`Client::multi_read`]).
    ///
    /// # ConnectionLoss
    /// Either every op was applied or none was.
    pub fn multi(&self, ops: Vec<Op>) -> Reply<Vec<OpResult>> {
        if let Err(e) = self.check_ops(&ops, true) {
            return Reply::ready(Err(e));
        }
        let kinds: Vec<OpKind> = ops.iter().map(OpKind::from).collect();
        let req = pb::MultiRequest {
            header: Some(self.header(Kind::Write)),
            ops: ops.into_iter().map(pb::Op::from).collect(),
        };
        self.submit(
            Kind::Write,
            req,
            |ch, r| async move { data(ch).multi(r).await },
            move |r| multi_results(&kinds, r.results),
        )
    }

    /// Runs `ops` (get_data, get_children) against one consistent view of the
    /// tree. Each op succeeds or fails on its own: a failed op is
    /// [`OpResult::Error`], not an error of the call.
    pub fn multi_read(&self, ops: Vec<Op>) -> Reply<Vec<OpResult>> {
        if let Err(e) = self.check_ops(&ops, false) {
            return Reply::ready(Err(e));
        }
        let kinds: Vec<OpKind> = ops.iter().map(OpKind::from).collect();
        let req = pb::MultiRequest {
            header: Some(self.header(Kind::Read)),
            ops: ops.into_iter().map(pb::Op::from).collect(),
        };
        self.submit(
            Kind::Read,
            req,
            |ch, r| async move { data(ch).multi_read(r).await },
            move |r| {
                check_result_count(&kinds, &r.results)?;
                Ok(kinds.iter().zip(r.results).map(|(k, r)| op_result(*k, r)).collect())
            },
        )
    }

    fn check_ops(&self, ops: &[Op], writes: bool) -> Result<(), Error> {
        for (i, op) in ops.iter().enumerate() {
            if op.is_write() != writes {
                let (call, other) =
                    if writes { ("multi", "multi_read") } else { ("multi_read", "multi") };
                return Err(Error::InvalidArgument(format!(
                    "op {i} ({op:?}) belongs in {other}, not {call}"
                )));
            }
            let sequential = matches!(op, Op::Create { options, .. } if options.mode.is_sequential());
            path::validate(op.path(), sequential)?;
            if let Op::Create { options, .. } = op {
                options.check()?;
                self.check_ephemeral_session(options)?;
            }
        }
        Ok(())
    }

    /// Makes the member this client uses catch up with the leader's commit
    /// point, so that later reads see every write committed before the sync.
    /// ZooKeeper's `sync`; `path` is validated and echoed, as there.
    pub fn sync(&self, path: &str) -> Reply<()> {
        if let Err(e) = path::validate(path, false) {
            return Reply::ready(Err(e));
        }
        let req = pb::SyncRequest { header: Some(self.header(Kind::Read)), path: path.to_string() };
        self.submit(Kind::Read, req, |ch, r| async move { data(ch).sync(r).await }, |_| Ok(()))
    }

    /// The status of the member this client is on: its role, the leader, the
    /// term, commit/applied zxids and its view of the membership.
    pub fn status(&self) -> Reply<ClusterStatus> {
        self.submit(
            Kind::Read,
            pb::StatusRequest {},
            |ch, r| async move { ClusterClient::new(ch).status(r).await },
            |r| Ok(ClusterStatus::from(r)),
        )
    }
}

impl Client {
    /// Adds member `id` at `addr` (its gRPC address) to the ensemble, as a voter or, with
    /// `voter` false, as an observer that replicates and serves clients but never votes. A new
    /// voter catches up as an observer first. The member must have been started with `--join`.
    /// Returns the membership once the change is committed; adding a member that is already
    /// there at the same address changes nothing.
    ///
    /// Membership changes are for operators: `cluster_secret` is the ensemble's shared secret
    /// (`NoAuth` without the right one, as ZooKeeper answers a reconfig from anyone but its super user). Other errors: `BadArguments` (an invalid id or
    /// address, or `id` already in the ensemble elsewhere), `ReconfigInProgress`.
    pub fn add_member(&self, cluster_secret: &str, id: u64, addr: &str, voter: bool) -> Reply<Membership> {
        let req = pb::AddMemberRequest { id, addr: addr.to_string(), voter };
        self.membership_change(cluster_secret, req, |ch, r| async move { ClusterClient::new(ch).add_member(r).await })
    }

    /// Removes member `id` (a voter or an observer). Once this returns, the member gets nothing
    /// more from the leader and can be stopped. Errors: `NoNode` (not a member),
    /// `NewConfigNoQuorum` (the last voter), `ReconfigInProgress`, `NoAuth` (see
    /// [`Client::add_member`]).
    pub fn remove_member(&self, cluster_secret: &str, id: u64) -> Reply<Membership> {
        let req = pb::RemoveMemberRequest { id };
        self.membership_change(cluster_secret, req, |ch, r| async move {
            ClusterClient::new(ch).remove_member(r).await
        })
    }

    fn membership_change<Req, F, Fut>(&self, cluster_secret: &str, req: Req, rpc: F) -> Reply<Membership>
    where
        Req: crate::connection::Outgoing + Clone + Send + 'static,
        F: Fn(Channel, tonic::Request<Req>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<tonic::Response<pb::MembershipResponse>, tonic::Status>>
            + Send
            + 'static,
    {
        let Ok(secret) = tonic::metadata::MetadataValue::try_from(cluster_secret) else {
            return Reply::ready(Err(Error::InvalidArgument("the cluster secret is not a valid header value".into())));
        };
        self.submit(
            Kind::Write,
            req,
            move |ch, mut r| {
                r.metadata_mut().insert(corral_proto::CLUSTER_SECRET_HEADER, secret.clone());
                rpc(ch, r)
            },
            |r| Ok(Membership::from(r)),
        )
    }
}

/// A stat zxid as the unsigned zxid the wire uses elsewhere.
fn zxid_of(z: i64) -> u64 {
    u64::try_from(z).unwrap_or(0)
}

/// Waits until the session's current stream has delivered every watch event up
/// to the client's last seen zxid: a read on that stream, which its member
/// serves at or after that zxid, gated like any reply (again if the stream
/// moves meanwhile). Fails like a read (ConnectionLoss when time runs out).
async fn settle(shared: &Shared, session: &SessionCore, deadline: tokio::time::Instant) -> Result<(), Error> {
    loop {
        let header = pb::RequestHeader {
            session_id: session.info.id,
            min_zxid: 0,
            auth: shared.auth.read().clone(),
            linearizable: false,
        };
        let req = pb::ExistsRequest { header: Some(header), path: "/".into(), watch: false };
        let rpc = |ch, r| async move { data(ch).exists(r).await };
        let (reply, gen) = shared.pool.call_pinned(Kind::Read, req, rpc, session, deadline).await?;
        if let Some(h) = reply.header.as_ref() {
            session.gate(h.member_id, h.event_seq, gen, deadline).await?;
        }
        if !session.moved_since(gen) {
            return Ok(());
        }
    }
}

/// The zxid of the state a reply was read at (0 if it doesn't say).
fn read_zxid(header: Option<&pb::ResponseHeader>) -> u64 {
    header.map_or(0, |h| h.zxid)
}

fn check_result_count(kinds: &[OpKind], results: &[pb::OpResult]) -> Result<(), Error> {
    if kinds.len() != results.len() {
        return Err(Error::Zk {
            code: ErrorCode::MarshallingError,
            message: format!("{} ops but {} results in the reply", kinds.len(), results.len()),
        });
    }
    Ok(())
}

/// A multi's results, or `Error::Multi` if any op carries an error code.
fn multi_results(kinds: &[OpKind], results: Vec<pb::OpResult>) -> Result<Vec<OpResult>, Error> {
    let codes: Vec<ErrorCode> = results.iter().map(result_code).collect();
    // The code to report is the failing op's, not the Ok before it or the
    // RuntimeInconsistency after it.
    let failed = codes
        .iter()
        .find(|c| **c != ErrorCode::Ok && **c != ErrorCode::RuntimeInconsistency)
        .or_else(|| codes.iter().find(|c| **c != ErrorCode::Ok))
        .copied();
    if let Some(code) = failed {
        let results = codes.into_iter().map(|code| OpResult::Error { code }).collect();
        return Err(Error::Multi { code, results });
    }
    check_result_count(kinds, &results)?;
    Ok(kinds.iter().zip(results).map(|(k, r)| op_result(*k, r)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CreateMode;

    fn res(error: i32) -> pb::OpResult {
        pb::OpResult { error, ..Default::default() }
    }

    #[test]
    fn a_failed_multi_reports_the_failing_code() {
        let kinds = [OpKind::Create, OpKind::SetData, OpKind::Delete];
        let err = multi_results(&kinds, vec![res(0), res(-103), res(-2)]);
        assert_eq!(
            err,
            Err(Error::Multi {
                code: ErrorCode::BadVersion,
                results: vec![
                    OpResult::Error { code: ErrorCode::Ok },
                    OpResult::Error { code: ErrorCode::BadVersion },
                    OpResult::Error { code: ErrorCode::RuntimeInconsistency },
                ],
            })
        );
        // Only RuntimeInconsistency: still a failure, reported as such.
        let err = multi_results(&kinds[..1], vec![res(-2)]);
        assert!(matches!(err, Err(Error::Multi { code: ErrorCode::RuntimeInconsistency, .. })));
    }

    #[test]
    fn a_successful_multi_maps_each_result() {
        let kinds = [OpKind::Create, OpKind::Check];
        let ok = multi_results(
            &kinds,
            vec![pb::OpResult { path: "/a1".into(), ..res(0) }, res(0)],
        );
        assert_eq!(
            ok,
            Ok(vec![OpResult::Create { path: "/a1".into(), stat: Stat::default() }, OpResult::Check])
        );
        let short = multi_results(&kinds, vec![res(0)]);
        assert!(matches!(short, Err(Error::Zk { code: ErrorCode::MarshallingError, .. })));
    }

    #[tokio::test]
    async fn bad_arguments_fail_before_sending() {
        // Nothing listens on port 1; these must fail without trying.
        let c = Client::connect(vec!["127.0.0.1:1".into()]).await.expect("valid endpoint");
        let bad = |r: Result<_, Error>| matches!(r, Err(Error::InvalidArgument(_)));
        assert!(bad(c.get_data("no-slash").await.map(drop)));
        assert!(bad(c.create("/e", b"", CreateOptions::new(CreateMode::Ephemeral)).await.map(drop)));
        assert!(bad(c.create("/t", b"", CreateOptions::new(CreateMode::PersistentWithTtl)).await.map(drop)));
        assert!(bad(c.multi(vec![Op::get_data("/a")]).await.map(drop)));
        assert!(bad(c.multi_read(vec![Op::delete("/a", None)]).await.map(drop)));
        assert!(bad(c.multi(vec![Op::delete("/a/", None)]).await.map(drop)));
        assert!(c.create("/q/", b"", CreateOptions::new(CreateMode::PersistentSequential)).await.is_err());
    }

    #[tokio::test]
    async fn headers_carry_session_auth_and_the_read_flag() {
        let c = Client::connect(vec!["127.0.0.1:1".into()]).await.expect("valid endpoint");
        c.add_auth("digest", "u:p");
        c.add_auth("digest", "u:p");
        let info = SessionInfo { id: 77, password: vec![1], timeout_ms: 1000 };
        *c.shared.session.write() = Some(SessionCore::new(info, c.shared.hub.clone(), 0, c.shared.auth.clone()));
        let h = c.header(Kind::Read);
        assert_eq!(h.session_id, 77);
        assert_eq!(h.auth.len(), 1);
        assert_eq!(h.auth[0].scheme, "digest");
        assert_eq!(&h.auth[0].credential[..], b"u:p");
        assert!(!h.linearizable);
        let lin = c.linearizable();
        assert!(lin.header(Kind::Read).linearizable);
        assert!(!lin.header(Kind::Write).linearizable);
        // Clones share the auth list.
        lin.add_auth("ip", "");
        assert_eq!(c.header(Kind::Write).auth.len(), 2);
    }

    #[tokio::test]
    async fn an_unreachable_ensemble_is_a_connection_loss_for_reads_and_writes() {
        let c = Client::builder(["127.0.0.1:1", "127.0.0.1:2"])
            .connect_timeout(std::time::Duration::from_millis(200))
            .connect()
            .await
            .expect("valid endpoints");
        let read = c.get_data("/a").await;
        assert!(matches!(read, Err(Error::ConnectionLoss(_))), "{read:?}");
        let write = c.set_data("/a", b"x", None).await;
        assert!(matches!(write, Err(Error::ConnectionLoss(_))), "{write:?}");
    }

    /// A client on an unreachable ensemble with a session installed by hand,
    /// no task running: what requests do in each phase of the session.
    async fn with_session() -> (Client, Arc<SessionCore>) {
        let c = Client::builder(["127.0.0.1:1", "127.0.0.1:2"])
            .request_timeout(std::time::Duration::from_millis(300))
            .connect_timeout(std::time::Duration::from_millis(100))
            .connect()
            .await
            .expect("valid endpoints");
        let info = SessionInfo { id: 0x77, password: vec![1], timeout_ms: 3000 };
        let core = SessionCore::new(info, c.shared.hub.clone(), 0, c.shared.auth.clone());
        *c.shared.session.write() = Some(core.clone());
        (c, core)
    }

    #[tokio::test]
    async fn session_requests_wait_for_the_stream_and_then_give_up() {
        let (c, _core) = with_session().await;
        assert_eq!(c.session_state(), SessionState::Connecting);
        let started = tokio::time::Instant::now();
        let r = c.get_data("/a").await;
        assert!(matches!(&r, Err(Error::ConnectionLoss(m)) if m.contains("disconnected")), "{r:?}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(250), "it waited for a reconnect");
    }

    #[tokio::test]
    async fn session_requests_stay_on_the_streams_member_and_give_it_up_when_unreachable() {
        let (c, core) = with_session().await;
        core.attached(1, 2);
        assert_eq!(core.abandoned(), 0);
        let r = c.exists("/a").await;
        assert!(matches!(r, Err(Error::ConnectionLoss(_))), "{r:?}");
        assert_eq!(core.abandoned(), 1, "the task is told to move the session");
        assert_eq!(c.current_endpoint().as_deref(), Some("127.0.0.1:1"), "no failover of its own");
        // Writes too: a connection that never opened proves nothing was sent.
        let w = c.set_data("/a", b"x", None).await;
        assert!(matches!(w, Err(Error::ConnectionLoss(_))), "{w:?}");
    }

    #[tokio::test]
    async fn an_ended_session_fails_requests_and_watches_at_once() {
        let (c, core) = with_session().await;
        core.end(End::Expired);
        assert_eq!(c.session_state(), SessionState::Expired);
        let expired = |r: Result<(), Error>| matches!(r, Err(Error::Zk { code: ErrorCode::SessionExpired, .. }));
        assert!(expired(c.get_data("/a").await.map(drop)));
        assert!(expired(c.get_data_watch("/a").await.map(drop)));
        assert!(expired(c.add_watch("/a", AddWatchMode::Persistent).await.map(drop)));
        // Clearing it needs no server, and leaves a client without a session.
        c.close_session().await.unwrap();
        assert_eq!((c.session_state(), c.session_id()), (SessionState::Closed, 0));
        let bare = c.get_data_watch("/a").await.map(drop);
        assert!(matches!(bare, Err(Error::InvalidArgument(_))), "{bare:?}");
    }
}
