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
use crate::types::{Acl, ClusterStatus, CreateOptions, Op, OpResult, SessionInfo, Stat};

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
    pub(crate) pool: Pool,
    dispatcher: Dispatcher,
    /// The session requests carry; read when a method is called.
    pub(crate) session: RwLock<Option<SessionInfo>>,
    /// (scheme, credential) pairs sent with every request.
    auth: RwLock<Vec<pb::AuthInfo>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.shared.pool.addrs())
            .field("session", &*self.shared.session.read())
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
            pool: Pool::new(members, timeouts),
            dispatcher: Dispatcher::start(),
            session: RwLock::new(None),
            auth: RwLock::new(Vec::new()),
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
        self.shared.session.read().as_ref().map_or(0, |s| s.id)
    }

    /// The session this client's requests carry, if any.
    pub fn session(&self) -> Option<SessionInfo> {
        self.shared.session.read().clone()
    }

    /// Opens a session (committed through the log) with the requested timeout,
    /// which the server negotiates into its [2, 20] ticks, and makes every later
    /// request of this client and its clones carry it. Ephemeral nodes need one.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if this client already has a session.
    pub async fn start_session(&self, timeout_ms: i32) -> Result<SessionInfo, Error> {
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
        *self.shared.session.write() = Some(info.clone());
        Ok(info)
    }

    /// Closes this client's session: its ephemeral nodes are deleted in one
    /// committed transaction. Later requests carry no session. A client with
    /// no session has nothing to close and gets `Ok`.
    pub async fn close_session(&self) -> Result<(), Error> {
        if self.session().is_none() {
            return Ok(());
        }
        let req = pb::CloseSessionRequest { header: Some(self.header(Kind::Write)) };
        self.submit(
            Kind::Write,
            req,
            |ch, r| async move { SessionClient::new(ch).close_session(r).await },
            |_| Ok(()),
        )
        .await?;
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
        self.shared.dispatcher.submit(move || async move {
            let reply = shared.pool.call(kind, req, rpc).await?;
            map(reply)
        })
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
        *c.shared.session.write() =
            Some(SessionInfo { id: 77, password: vec![1], timeout_ms: 1000 });
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
}
