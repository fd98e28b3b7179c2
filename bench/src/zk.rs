//! A small asynchronous ZooKeeper client on Corral's jute codec: one session over one TCP
//! connection, any number of requests in flight (ZooKeeper answers a session's requests in
//! order, so replies are matched to a FIFO of pending xids), watch notifications on a channel,
//! and pings while the connection is idle. Enough to drive Apache ZooKeeper and Corral with the
//! very same bytes; not a general-purpose client (no reconnect: a load generator counts a lost
//! connection as errors and goes on with a new session).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use corral_proto::jute::{
    self, op, xid, ConnectRequest, ConnectResponse, Field, Reader, ReplyHeader, Request, Response, WatcherEvent, Writer,
};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Largest reply frame accepted (ZooKeeper's jute.maxbuffer default plus headroom).
const MAX_FRAME: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ZkError {
    #[error("connection: {0}")]
    Connection(String),
    /// The server answered with a ZooKeeper error code (`KeeperException.Code`).
    #[error("ZooKeeper error {0}")]
    Server(i32),
    #[error("session refused (expired or unknown)")]
    SessionRefused,
    #[error("bad reply: {0}")]
    Protocol(String),
}

impl ZkError {
    /// A short stable name for error counts in reports.
    pub fn kind(&self) -> String {
        match self {
            ZkError::Connection(_) => "ConnectionLoss".into(),
            ZkError::Server(code) => code_name(*code),
            ZkError::SessionRefused => "SessionRefused".into(),
            ZkError::Protocol(_) => "Protocol".into(),
        }
    }
}

/// ZooKeeper's name for an error code (`NodeExists`), as both protocols report it.
pub fn code_name(code: i32) -> String {
    match corral_proto::ErrorCode::from_i32(code) {
        Some(c) => c.name().to_string(),
        None => format!("error {code}"),
    }
}

type ReplyTx = oneshot::Sender<Result<(ReplyHeader, Response), ZkError>>;

struct Pending {
    xid: i32,
    op: i32,
    reply: ReplyTx,
}

struct Shared {
    next_xid: i32,
    pending: VecDeque<Pending>,
    /// Set once the connection is gone: later calls fail at once.
    dead: Option<String>,
}

/// One ZooKeeper session on one connection.
pub struct ZkConn {
    shared: Arc<Mutex<Shared>>,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    pub session_id: i64,
    pub timeout_ms: i32,
    events: Mutex<Option<mpsc::UnboundedReceiver<WatcherEvent>>>,
}

impl ZkConn {
    /// Opens a connection and a new session with the given session timeout.
    pub async fn connect(addr: &str, session_timeout_ms: i32) -> Result<ZkConn, ZkError> {
        let stream = TcpStream::connect(addr).await.map_err(|e| ZkError::Connection(format!("{addr}: {e}")))?;
        stream.set_nodelay(true).map_err(|e| ZkError::Connection(e.to_string()))?;
        let (rd, mut wr) = stream.into_split();
        let mut rd = BufReader::with_capacity(64 * 1024, rd);
        let connect = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: session_timeout_ms,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: false,
        };
        wr.write_all(&Writer::frame(|w| connect.write(w))).await.map_err(|e| ZkError::Connection(e.to_string()))?;
        let payload = read_frame(&mut rd).await?.ok_or_else(|| ZkError::Connection("closed during handshake".into()))?;
        let resp = ConnectResponse::read(&mut Reader::new(&payload)).map_err(|e| ZkError::Protocol(e.to_string()))?;
        if resp.timeout <= 0 || resp.session_id == 0 {
            return Err(ZkError::SessionRefused);
        }
        let shared = Arc::new(Mutex::new(Shared { next_xid: 1, pending: VecDeque::new(), dead: None }));
        let (frames_tx, frames_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let ping_every = Duration::from_millis((resp.timeout as u64 / 3).max(100));
        tokio::spawn(write_loop(wr, frames_rx, ping_every, shared.clone()));
        tokio::spawn(read_loop(rd, shared.clone(), events_tx));
        Ok(ZkConn {
            shared,
            frames: frames_tx,
            session_id: resp.session_id,
            timeout_ms: resp.timeout,
            events: Mutex::new(Some(events_rx)),
        })
    }

    /// Sends a request and waits for its reply; a non-zero error code is `ZkError::Server`
    /// (a multi's per-op errors come back inside its `Response::Multi`).
    pub async fn call(&self, request: &Request) -> Result<(ReplyHeader, Response), ZkError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.shared.lock();
            if let Some(why) = &s.dead {
                return Err(ZkError::Connection(why.clone()));
            }
            let xid = s.next_xid;
            s.next_xid = s.next_xid.wrapping_add(1).max(1);
            let op = request.op();
            s.pending.push_back(Pending { xid, op, reply: tx });
            // Queued under the lock so frames leave in xid order.
            if self.frames.send(request.encode(xid)).is_err() {
                s.pending.pop_back();
                return Err(ZkError::Connection("writer ended".into()));
            }
        }
        let (header, response) = rx.await.map_err(|_| ZkError::Connection("connection closed".into()))??;
        if header.err != 0 && !matches!(response, Response::Multi(_)) {
            return Err(ZkError::Server(header.err));
        }
        Ok((header, response))
    }

    /// True once the connection is gone (every later call fails).
    pub fn is_dead(&self) -> bool {
        self.shared.lock().dead.is_some()
    }

    /// The watch notifications of this session (taken once).
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<WatcherEvent>> {
        self.events.lock().take()
    }

    /// Closes the session (closeSession) and the connection.
    pub async fn close(self) -> Result<(), ZkError> {
        let r = self.call(&Request::CloseSession).await.map(|_| ());
        drop(self.frames);
        r
    }
}

async fn read_frame<R: AsyncReadExt + Unpin>(rd: &mut R) -> Result<Option<Vec<u8>>, ZkError> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(ZkError::Connection(e.to_string())),
    }
    let len = jute::frame_len(len, MAX_FRAME).map_err(|e| ZkError::Protocol(e.to_string()))?;
    let mut payload = vec![0u8; len];
    rd.read_exact(&mut payload).await.map_err(|e| ZkError::Connection(e.to_string()))?;
    Ok(Some(payload))
}

/// Writes queued frames, batching whatever is queued into one syscall, and pings when idle.
async fn write_loop(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
    ping_every: Duration,
    shared: Arc<Mutex<Shared>>,
) {
    let ping = Request::Ping.encode(xid::PING);
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let first = tokio::select! {
            biased;
            f = frames.recv() => f,
            _ = tokio::time::sleep(ping_every) => Some(ping.clone()),
        };
        let Some(first) = first else { break };
        buf.clear();
        buf.extend_from_slice(&first);
        while buf.len() < 256 * 1024 {
            match frames.try_recv() {
                Ok(f) => buf.extend_from_slice(&f),
                Err(_) => break,
            }
        }
        if let Err(e) = wr.write_all(&buf).await {
            fail_all(&shared, format!("write: {e}"));
            return;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_loop(
    mut rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
    shared: Arc<Mutex<Shared>>,
    events: mpsc::UnboundedSender<WatcherEvent>,
) {
    let why = loop {
        let payload = match read_frame(&mut rd).await {
            Ok(Some(p)) => p,
            Ok(None) => break "closed by the server".to_string(),
            Err(e) => break e.to_string(),
        };
        let mut r = Reader::new(&payload);
        let header = match ReplyHeader::read(&mut r) {
            Ok(h) => h,
            Err(e) => break format!("bad reply header: {e}"),
        };
        match header.xid {
            xid::PING => continue,
            xid::NOTIFICATION => {
                match WatcherEvent::read(&mut r) {
                    Ok(ev) => {
                        let _ = events.send(ev);
                    }
                    Err(e) => break format!("bad notification: {e}"),
                }
                continue;
            }
            _ => {}
        }
        let Some(p) = shared.lock().pending.pop_front() else {
            break format!("reply xid {} with nothing pending", header.xid);
        };
        if p.xid != header.xid {
            let _ = p.reply.send(Err(ZkError::Protocol(format!("reply xid {} for request xid {}", header.xid, p.xid))));
            break "replies out of order".to_string();
        }
        let decoded = Response::decode(p.op, &payload).map_err(|e| ZkError::Protocol(e.to_string()));
        let _ = p.reply.send(decoded);
        if p.op == op::CLOSE_SESSION {
            break "session closed".to_string();
        }
    };
    fail_all(&shared, why);
}

fn fail_all(shared: &Mutex<Shared>, why: String) {
    let mut s = shared.lock();
    for p in s.pending.drain(..) {
        let _ = p.reply.send(Err(ZkError::Connection(why.clone())));
    }
    s.dead.get_or_insert(why);
}
