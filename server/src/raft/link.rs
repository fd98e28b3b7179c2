//! Links: plain TCP connections between members, on the gRPC port, for the two calls every
//! write makes: AppendEntries from the leader to each follower ([`AppendLink`]) and writes a
//! follower forwards to the leader ([`ForwardLink`]).
//!
//! AppendEntries is the hot call of the whole ensemble: every write costs one to each follower
//! with the entry and usually one more that carries the new commit index. As a unary gRPC call
//! each went through HTTP/2 (header compression, a stream per call, a task per call on the
//! server, tonic's buffer task on the client): with one client writing one request at a time the
//! HTTP/2 and tonic code was the largest user of CPU in the ensemble, and the leader waited about
//! 250 µs longer for an answer than the follower took to produce it. Here a call is one frame
//! each way on a connection kept open per follower, written and read by the replication task
//! itself, and served in order by one task on the follower.
//!
//! Forwarded writes take a link the other way, from follower to leader: those calls overlap (a few batches in flight), so each carries an id and is answered when
//! its writes are applied, in whatever order that happens.
//!
//! A connection starts with [`MAGIC`] (which no HTTP/2 client sends: those begin with
//! `PRI * HTTP/2.0`) and a [`Hello`] frame carrying the cluster secret and the kind of link;
//! the gRPC port hands connections that start with it here (`server.rs`). On an AppendEntries
//! link each request frame is answered by one response frame, in order; on a forward link a
//! frame is an 8-byte call id followed by the caller's bytes. A frame is a big-endian u32 length
//! and that many bytes.
//!
//! Votes and snapshots stay on gRPC.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use openraft::error::RaftError;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::types::{NodeId, TypeConfig};

/// The first bytes of a link connection.
pub const MAGIC: [u8; 4] = *b"CRLK";

/// Version of the frames after the hello; a member refuses a link of another version.
const VERSION: u32 = 1;

/// The largest frame accepted: an AppendEntries carries at most 32 entries of up to 1 MiB of
/// payload each (`Config::raft_config`), well under this.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// The largest hello accepted (before the secret is checked, so it is small).
const MAX_HELLO: usize = 4096;

/// How long a new connection may take to send its hello.
pub const HELLO_WAIT: Duration = Duration::from_secs(5);

/// What a link opens with.
#[derive(Serialize, Deserialize)]
struct Hello {
    version: u32,
    secret: String,
    /// The calling member, for the log.
    from: NodeId,
    kind: LinkKind,
}

/// What a link carries.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
enum LinkKind {
    /// The leader's AppendEntries to a follower ([`AppendLink`]).
    Append,
    /// A follower's forwarded writes to the leader ([`ForwardLink`]).
    Forward,
}

/// What the links a member accepts are served by (the member itself, `api::member`).
pub trait LinkHandler: Send + Sync + 'static {
    /// Answers one AppendEntries from the leader.
    fn append_entries(&self, rpc: AppendEntriesRequest<TypeConfig>) -> Pin<Box<dyn Future<Output = AppendReply> + Send>>;

    /// Takes one forward call's bytes. Called in the order calls arrive on a link, so whatever
    /// it queues keeps that order; the future it returns gives the answer's bytes.
    fn forwarded(&self, call: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;
}

/// A follower's answer to one AppendEntries, as `Raft::append_entries` returns it.
pub type AppendReply = Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>;

/// Why a link call or a served link ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding: {0}")]
    Codec(#[from] bincode::Error),
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("the peer closed the link")]
    Closed,
    #[error("refused: {0}")]
    Refused(String),
}

/// Appends `value` as one frame to `buf`.
fn put_frame<T: Serialize>(buf: &mut Vec<u8>, value: &T) -> Result<(), LinkError> {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    bincode::serialize_into(&mut *buf, value)?;
    let len = buf.len() - at - 4;
    if len > MAX_FRAME {
        return Err(LinkError::TooLarge(len));
    }
    buf[at..at + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Reads one frame's bytes into `buf` (replacing what it held). `Ok(false)` at a clean end of
/// stream before the frame's first byte.
async fn read_frame<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut Vec<u8>, max: usize) -> Result<bool, LinkError> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(LinkError::TooLarge(len));
    }
    buf.clear();
    buf.resize(len, 0);
    rd.read_exact(buf).await?;
    Ok(true)
}

/// The leader's end of a link to one follower.
pub struct AppendLink {
    /// Only ever reached through `&mut self` (`get_mut`, never locked): the mutex is there because
    /// openraft wants its network handles `Sync` and the simulator's TCP stream is not.
    stream: std::sync::Mutex<BufReader<TcpStream>>,
    /// Reused for every request's frame.
    out: Vec<u8>,
    /// Reused for every response's frame.
    input: Vec<u8>,
    /// Set while a call is under way. openraft drops a call that outlives its timeout; a link
    /// found busy at the next call may hold half a request or an unread answer, so it is closed.
    busy: bool,
}

/// Connects to a member's gRPC address and opens a link of `kind` (magic and hello).
async fn open(addr: &str, secret: &str, from: NodeId, kind: LinkKind) -> Result<TcpStream, LinkError> {
    let mut stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let mut hello = MAGIC.to_vec();
    put_frame(&mut hello, &Hello { version: VERSION, secret: secret.to_string(), from, kind })?;
    stream.write_all(&hello).await?;
    // A no-op on a real socket; the simulator's TCP sends what was written only here.
    stream.flush().await?;
    Ok(stream)
}

impl AppendLink {
    /// Connects to a follower's gRPC address and says hello.
    pub async fn connect(addr: &str, secret: &str, from: NodeId) -> Result<AppendLink, LinkError> {
        let stream = open(addr, secret, from, LinkKind::Append).await?;
        let stream = BufReader::with_capacity(64 * 1024, stream);
        Ok(AppendLink { stream: std::sync::Mutex::new(stream), out: Vec::new(), input: Vec::new(), busy: false })
    }

    /// Whether a previous call was abandoned half-way (see `busy`).
    pub fn is_broken(&self) -> bool {
        self.busy
    }

    /// Sends one AppendEntries and waits for its answer.
    pub async fn append_entries(&mut self, rpc: &AppendEntriesRequest<TypeConfig>) -> Result<AppendReply, LinkError> {
        self.busy = true;
        self.out.clear();
        put_frame(&mut self.out, rpc)?;
        let stream = self.stream.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        stream.get_mut().write_all(&self.out).await?;
        stream.get_mut().flush().await?;
        if !read_frame(stream, &mut self.input, MAX_FRAME).await? {
            return Err(LinkError::Closed);
        }
        let reply: Result<AppendReply, String> = bincode::deserialize(&self.input)?;
        self.busy = false;
        reply.map_err(LinkError::Refused)
    }
}

/// Serves one link connection whose [`MAGIC`] was already read: checks the hello, then serves
/// the link's calls until the other end closes it.
async fn serve<S>(stream: S, handler: Arc<dyn LinkHandler>, secret: &str) -> Result<(), LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut stream = BufReader::with_capacity(64 * 1024, stream);
    let mut input = Vec::new();
    let hello = tokio::time::timeout(HELLO_WAIT, read_frame(&mut stream, &mut input, MAX_HELLO))
        .await
        .map_err(|_| LinkError::Refused("no hello in time".into()))??;
    if !hello {
        return Ok(());
    }
    let hello: Hello = bincode::deserialize(&input)?;
    if hello.version != VERSION {
        return Err(LinkError::Refused(format!("link version {} from member {}, this member speaks {VERSION}", hello.version, hello.from)));
    }
    if hello.secret != secret {
        return Err(LinkError::Refused(format!("wrong cluster secret from a caller claiming to be member {}", hello.from)));
    }
    match hello.kind {
        LinkKind::Append => serve_append(stream, handler).await,
        LinkKind::Forward => serve_forward(stream, handler).await,
    }
}

/// Answers AppendEntries in order.
async fn serve_append<S>(mut stream: BufReader<S>, handler: Arc<dyn LinkHandler>) -> Result<(), LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut input = Vec::new();
    let mut out = Vec::new();
    while read_frame(&mut stream, &mut input, MAX_FRAME).await? {
        // A request this member cannot decode is answered, not dropped: the leader then reports
        // the follower unreachable and backs off instead of waiting for its timeout.
        let reply: Result<AppendReply, String> = match bincode::deserialize::<AppendEntriesRequest<TypeConfig>>(&input) {
            Ok(rpc) => Ok(handler.append_entries(rpc).await),
            Err(e) => Err(format!("undecodable AppendEntries: {e}")),
        };
        out.clear();
        put_frame(&mut out, &reply)?;
        stream.get_mut().write_all(&out).await?;
        stream.get_mut().flush().await?;
    }
    Ok(())
}

/// Serves a connection to the gRPC port that starts with [`MAGIC`] (not yet read), until the
/// leader closes it or `closing` changes (the member is stopping: its links must close so the
/// leader reconnects to whatever serves the address next).
pub async fn serve_connection<S>(
    mut stream: S,
    handler: Arc<dyn LinkHandler>,
    secret: String,
    mut closing: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let result = tokio::select! {
        biased;
        _ = closing.changed() => Ok(()),
        r = async {
            let mut magic = [0u8; 4];
            stream.read_exact(&mut magic).await?;
            if magic != MAGIC {
                return Err(LinkError::Refused("not a link".into()));
            }
            serve(stream, handler, &secret).await
        } => r,
    };
    if let Err(e) = result {
        tracing::info!("link closed: {e}");
    }
}

/// Accepts the connections of the gRPC port: links are served here and every other
/// connection is passed on, through the returned stream, to the gRPC server. The accept task
/// ends (closing the port) when `closing` changes.
#[cfg(not(madsim))]
pub fn route(
    listener: tokio::net::TcpListener,
    handler: Arc<dyn LinkHandler>,
    secret: String,
    mut closing: watch::Receiver<bool>,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TcpStream>> {
    let (grpc, incoming) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                biased;
                _ = closing.changed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("grpc port accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let (grpc, handler, secret, closing) = (grpc.clone(), handler.clone(), secret.clone(), closing.clone());
            tokio::spawn(async move {
                if starts_with_magic(&stream).await {
                    serve_connection(stream, handler, secret, closing).await;
                } else {
                    let _ = grpc.send(Ok(stream)).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(incoming)
}

/// Whether a new connection opens with [`MAGIC`]. A client that sends nothing within
/// [`HELLO_WAIT`], or whose first bytes differ, goes to the gRPC server (which then deals
/// with it as it would have).
#[cfg(not(madsim))]
async fn starts_with_magic(stream: &TcpStream) -> bool {
    let deadline = tokio::time::Instant::now() + HELLO_WAIT;
    let mut first = [0u8; 4];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(n)) => n,
            _ => return false,
        };
        if n == 0 || first[..n] != MAGIC[..n] {
            return false;
        }
        if n == MAGIC.len() {
            return true;
        }
        // A prefix of the magic so far: the rest is on its way.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Appends a forward link frame (call id, then the bytes) to `buf`.
fn put_call(buf: &mut Vec<u8>, id: u64, bytes: &[u8]) -> Result<(), LinkError> {
    let len = 8 + bytes.len();
    if len > MAX_FRAME {
        return Err(LinkError::TooLarge(len));
    }
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    buf.extend_from_slice(&id.to_be_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

/// Splits a forward link frame into its call id and bytes.
fn take_call(mut frame: Vec<u8>) -> Result<(u64, Vec<u8>), LinkError> {
    if frame.len() < 8 {
        return Err(LinkError::Refused(format!("a forward frame of {} bytes has no call id", frame.len())));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&frame[..8]);
    frame.drain(..8);
    Ok((u64::from_be_bytes(id), frame))
}

/// The leader's side of a forward link: every call goes to the handler in arrival order, and
/// its answer is written back when ready.
async fn serve_forward<S>(stream: BufReader<S>, handler: Arc<dyn LinkHandler>) -> Result<(), LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let (answers, mut ready) = mpsc::unbounded_channel::<(u64, Vec<u8>)>();
    let reading = async move {
        let mut rd = rd;
        let mut input = Vec::new();
        while read_frame(&mut rd, &mut input, MAX_FRAME).await? {
            let (id, call) = take_call(std::mem::take(&mut input))?;
            let answer = handler.forwarded(call);
            let answers = answers.clone();
            tokio::spawn(async move {
                let _ = answers.send((id, answer.await));
            });
        }
        Ok::<(), LinkError>(())
    };
    // Ends once the caller has closed its side and every answer is written.
    let writing = async move {
        let mut out = Vec::new();
        while let Some((id, answer)) = ready.recv().await {
            out.clear();
            put_call(&mut out, id, &answer)?;
            wr.write_all(&out).await?;
            wr.flush().await?;
        }
        Ok::<(), LinkError>(())
    };
    tokio::try_join!(reading, writing)?;
    Ok(())
}

/// Calls waiting for their answer on a [`ForwardLink`], by id.
type Pending = Arc<parking_lot::Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>;

/// A follower's link to the leader for forwarded writes. Calls overlap; each is answered on
/// its own. Once the connection fails the link is dead ([`ForwardLink::is_dead`]) and every
/// call still waiting learns that its outcome is unknown.
pub struct ForwardLink {
    calls: mpsc::UnboundedSender<(Vec<u8>, oneshot::Sender<Vec<u8>>)>,
    dead: Arc<AtomicBool>,
}

/// Why a forward call failed.
#[derive(Debug)]
pub enum CallError {
    /// The call never left (the link was already dead).
    NotSent,
    /// The link failed with the call written or being written: it may have been carried out.
    Lost,
}

impl ForwardLink {
    /// Connects to the leader's gRPC address and says hello.
    pub async fn connect(addr: &str, secret: &str, from: NodeId) -> Result<ForwardLink, LinkError> {
        let stream = open(addr, secret, from, LinkKind::Forward).await?;
        let (rd, mut wr) = tokio::io::split(stream);
        let (calls, mut queued) = mpsc::unbounded_channel::<(Vec<u8>, oneshot::Sender<Vec<u8>>)>();
        let dead = Arc::new(AtomicBool::new(false));
        let pending: Pending = Arc::default();
        // Dropping a waiter's sender tells it the outcome is unknown.
        let fail_all = {
            let (dead, pending) = (dead.clone(), pending.clone());
            move || {
                dead.store(true, Ordering::Release);
                pending.lock().clear();
            }
        };
        let fail = fail_all.clone();
        let (waiting, failed) = (pending.clone(), dead.clone());
        tokio::spawn(async move {
            let mut next_id = 0u64;
            let mut out = Vec::new();
            while let Some((call, answer)) = queued.recv().await {
                next_id += 1;
                waiting.lock().insert(next_id, answer);
                // Registered after the reader gave up and cleared the waiters: nobody would
                // answer it.
                if failed.load(Ordering::Acquire) {
                    waiting.lock().clear();
                    return;
                }
                out.clear();
                let sent = match put_call(&mut out, next_id, &call) {
                    Ok(()) => match wr.write_all(&out).await {
                        Ok(()) => wr.flush().await.map_err(LinkError::from),
                        Err(e) => Err(e.into()),
                    },
                    Err(e) => Err(e),
                };
                if let Err(e) = sent {
                    tracing::info!("forward link: {e}");
                    fail();
                    return;
                }
            }
            // The member let go of the link: closing our side lets the leader finish and close.
            let _ = wr.shutdown().await;
        });
        tokio::spawn(async move {
            let mut rd = BufReader::with_capacity(64 * 1024, rd);
            let mut input = Vec::new();
            let end = loop {
                match read_frame(&mut rd, &mut input, MAX_FRAME).await {
                    Ok(true) => {}
                    Ok(false) => break LinkError::Closed,
                    Err(e) => break e,
                }
                match take_call(std::mem::take(&mut input)) {
                    Ok((id, answer)) => {
                        if let Some(waiter) = pending.lock().remove(&id) {
                            let _ = waiter.send(answer);
                        }
                    }
                    Err(e) => break e,
                }
            };
            tracing::info!("forward link: {end}");
            fail_all();
        });
        Ok(ForwardLink { calls, dead })
    }

    /// Whether the connection has failed; a new link is needed.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Sends one call and waits for its answer.
    pub async fn call(&self, bytes: Vec<u8>) -> Result<Vec<u8>, CallError> {
        if self.is_dead() {
            return Err(CallError::NotSent);
        }
        let (answer, answered) = oneshot::channel();
        self.calls.send((bytes, answer)).map_err(|_| CallError::NotSent)?;
        answered.await.map_err(|_| CallError::Lost)
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    const SECRET: &str = "test-secret";

    /// Answers a forward call with its own bytes after as many milliseconds as its first byte
    /// says (255: never); AppendEntries with `Success` after `leader_commit`'s index in ms.
    struct Echo;

    impl LinkHandler for Echo {
        fn append_entries(&self, rpc: AppendEntriesRequest<TypeConfig>) -> Pin<Box<dyn Future<Output = AppendReply> + Send>> {
            let wait = rpc.leader_commit.map_or(0, |c| c.index);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                Ok(AppendEntriesResponse::Success)
            })
        }

        fn forwarded(&self, call: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> {
            Box::pin(async move {
                match call.first() {
                    Some(255) => std::future::pending().await,
                    Some(&ms) => tokio::time::sleep(Duration::from_millis(ms as u64)).await,
                    None => {}
                }
                call
            })
        }
    }

    /// A member's port serving links only; dropping the sender closes them.
    async fn serving() -> (String, watch::Sender<bool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (closing, closed) = watch::channel(false);
        let incoming = route(listener, Arc::new(Echo), SECRET.into(), closed);
        // Nothing but links is expected here; anything else is dropped.
        tokio::spawn(async move {
            use tokio_stream::StreamExt;
            let mut incoming = incoming;
            while incoming.next().await.is_some() {}
        });
        (addr, closing)
    }

    fn append(commit_index: Option<u64>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: openraft::Vote::new_committed(1, 1),
            prev_log_id: None,
            leader_commit: commit_index.map(|i| openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), i)),
            entries: vec![],
        }
    }

    #[tokio::test]
    async fn overlapping_forward_calls_each_get_their_own_answer() {
        let (addr, _closing) = serving().await;
        let link = Arc::new(ForwardLink::connect(&addr, SECRET, 2).await.unwrap());
        // The first calls take longest: answers come back in the other order.
        let calls: Vec<_> = (0..8u8)
            .map(|i| {
                let link = link.clone();
                tokio::spawn(async move { (i, link.call(vec![80 - i * 10, i]).await.unwrap()) })
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.unwrap();
            assert_eq!(answer, vec![80 - i * 10, i]);
        }
        assert!(!link.is_dead());
    }

    #[tokio::test]
    async fn a_call_waiting_when_the_link_fails_learns_its_outcome_is_unknown() {
        let (addr, closing) = serving().await;
        let link = Arc::new(ForwardLink::connect(&addr, SECRET, 2).await.unwrap());
        assert_eq!(link.call(vec![0, 7]).await.unwrap(), vec![0, 7]);
        let waiting = tokio::spawn({
            let link = link.clone();
            async move { link.call(vec![255]).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        closing.send(true).unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert!(matches!(outcome, Err(CallError::Lost)), "{outcome:?}");
        assert!(link.is_dead());
        assert!(matches!(link.call(vec![0]).await, Err(CallError::NotSent)));
    }

    #[tokio::test]
    async fn a_link_without_the_cluster_secret_is_refused() {
        let (addr, _closing) = serving().await;
        let forward = ForwardLink::connect(&addr, "wrong", 2).await.unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(5), forward.call(vec![0])).await.unwrap();
        assert!(matches!(outcome, Err(CallError::Lost)), "{outcome:?}");
        let mut append_link = AppendLink::connect(&addr, "wrong", 2).await.unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(5), append_link.append_entries(&append(None))).await.unwrap();
        assert!(outcome.is_err(), "{outcome:?}");
    }

    #[tokio::test]
    async fn append_entries_are_answered_and_an_abandoned_call_breaks_the_link() {
        let (addr, _closing) = serving().await;
        let mut link = AppendLink::connect(&addr, SECRET, 1).await.unwrap();
        for _ in 0..3 {
            assert!(matches!(link.append_entries(&append(None)).await.unwrap(), Ok(AppendEntriesResponse::Success)));
        }
        // openraft drops a call that outlives its timeout: its answer would be read by the next.
        let abandoned = tokio::time::timeout(Duration::from_millis(20), link.append_entries(&append(Some(500)))).await;
        assert!(abandoned.is_err());
        assert!(link.is_broken());
        let mut fresh = AppendLink::connect(&addr, SECRET, 1).await.unwrap();
        assert!(matches!(fresh.append_entries(&append(None)).await.unwrap(), Ok(AppendEntriesResponse::Success)));
    }

    #[tokio::test]
    async fn an_oversized_frame_closes_only_its_own_link() {
        let (addr, _closing) = serving().await;
        let good = ForwardLink::connect(&addr, SECRET, 2).await.unwrap();
        let mut bad = TcpStream::connect(&addr).await.unwrap();
        let mut opening = MAGIC.to_vec();
        put_frame(&mut opening, &Hello { version: VERSION, secret: SECRET.into(), from: 3, kind: LinkKind::Forward }).unwrap();
        opening.extend_from_slice(&u32::MAX.to_be_bytes());
        bad.write_all(&opening).await.unwrap();
        let mut rest = Vec::new();
        // The member ends that connection (an end of stream or a reset, either will do) ...
        let ended = tokio::time::timeout(Duration::from_secs(5), bad.read_to_end(&mut rest)).await;
        assert!(ended.is_ok(), "the member kept a link with an oversized frame open");
        assert!(rest.is_empty(), "an oversized frame was answered: {rest:?}");
        // ... and goes on serving the others.
        assert_eq!(good.call(vec![0, 1]).await.unwrap(), vec![0, 1]);
    }
}
