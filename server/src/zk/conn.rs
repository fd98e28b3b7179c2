//! One ZooKeeper protocol connection: handshake, the request loop, and the writer that keeps
//! notifications ahead of the replies that reflect them.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use corral_proto::jute::{self, ConnectRequest, ConnectResponse, JuteError, Reader, WatcherEvent, Writer};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::handle::{self, Reply, SessionCtx};
use super::{four_letter, Counters, ZkSettings};
use crate::api::member::Member;
use crate::rt;
use crate::tree::{EventKind, Id, OpOutcome, TxnOp};
use crate::watch::{Notice, SessionEnd};

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Frame(#[from] JuteError),
    #[error("{0}")]
    Refused(String),
}

/// ZooKeeper's state number for a live connection, and for an expired session.
const STATE_SYNC_CONNECTED: i32 = 3;
const STATE_EXPIRED: i32 = -112;
/// ZooKeeper's event type for a state change without a node.
const EVENT_NONE: i32 = -1;

/// The read side, buffered: one syscall reads every frame the client has sent so far.
type FrameReader = BufReader<OwnedReadHalf>;

async fn read_frame(rd: &mut FrameReader, max: usize) -> Result<Option<Vec<u8>>, ConnError> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = jute::frame_len(len, max)?;
    let mut payload = vec![0u8; len];
    rd.read_exact(&mut payload).await?;
    Ok(Some(payload))
}

pub async fn run(
    member: Arc<Member>,
    stream: TcpStream,
    peer: SocketAddr,
    settings: Arc<ZkSettings>,
    counters: Arc<Counters>,
) -> Result<(), ConnError> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(16 * 1024, rd);
    let mut first = [0u8; 4];
    rd.read_exact(&mut first).await?;
    if let Some(word) = jute::four_letter_word(first) {
        let text = four_letter::answer(word, &member, &settings, &counters);
        wr.write_all(text.as_bytes()).await?;
        wr.shutdown().await?;
        return Ok(());
    }
    let len = jute::frame_len(first, settings.max_frame)?;
    let mut payload = vec![0u8; len];
    rd.read_exact(&mut payload).await?;
    let connect = ConnectRequest::read(&mut Reader::new(&payload))?;
    counters.received.fetch_add(1, Ordering::Relaxed);
    if !member.accepts_sessions() {
        // As a ZooKeeper server outside the quorum: the client tries its next server.
        return Err(ConnError::Refused(format!(
            "member {} is out of the configuration or cut off from the leader",
            member.id
        )));
    }

    let _slot = member
        .connections
        .acquire(Some(peer.ip()))
        .map_err(|e| ConnError::Refused(format!("{}: {}", e.code, e.message)))?;
    let Some((session_id, passwd, timeout)) = handshake(&member, &settings, &connect).await? else {
        // Expired, unknown or wrong password: a zero timeout tells the client its session is gone.
        let resp = ConnectResponse { protocol_version: 0, timeout: 0, session_id: 0, passwd: vec![0; 16], read_only: false };
        wr.write_all(&Writer::frame(|w| resp.write(w))).await?;
        wr.shutdown().await?;
        return Ok(());
    };
    let identities = vec![Id::new("ip", peer.ip().to_string())];
    let (conn, notices) = {
        let _st = member.state.read();
        let mut watches = member.state.watches.lock();
        let attached = watches.attach(session_id);
        // Notifications only for nodes this connection may read, as ZooKeeper sends them.
        watches.set_identities(session_id, identities.clone());
        attached
    };
    member.sessions.touch(session_id);
    let resp = ConnectResponse { protocol_version: 0, timeout, session_id, passwd, read_only: false };
    wr.write_all(&Writer::frame(|w| resp.write(w))).await?;
    counters.sent.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%peer, session = format_args!("{session_id:#x}"), "zookeeper session connected");

    let (replies_tx, replies_rx) = mpsc::unbounded_channel::<Reply>();
    let mut writer = tokio::spawn(write_loop(wr, notices, replies_rx, counters.clone()));
    let mut ctx = SessionCtx { session_id, auth: identities };
    let result = loop {
        let frame = tokio::select! {
            biased;
            _ = &mut writer => break Ok(()),
            f = read_frame(&mut rd, settings.max_frame) => f,
        };
        let payload = match frame {
            Ok(Some(p)) => p,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        counters.received.fetch_add(1, Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        let reply = match jute::Request::decode(&payload) {
            Ok((header, request)) => handle::serve(&member, &settings, &mut ctx, header, request).await,
            Err(e) => break Err(e.into()),
        };
        counters.record_latency(started.elapsed().as_micros() as u64);
        let close = reply.close;
        if replies_tx.send(reply).is_err() || close {
            break Ok(());
        }
    };
    drop(replies_tx);
    member.state.watches.lock().detach(conn.id);
    // The writer finishes what was queued (a closeSession reply, say) and closes the socket.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
    result
}

/// Creates a session, or resumes one: `None` if the client's session is gone or the password
/// is wrong. Returns the id, password and negotiated timeout.
async fn handshake(
    member: &Member,
    settings: &ZkSettings,
    connect: &ConnectRequest,
) -> Result<Option<(i64, Vec<u8>, i32)>, ConnError> {
    if connect.session_id == 0 {
        let timeout_ms = settings.negotiate(connect.timeout);
        let password = rt::random_bytes(16);
        let op = TxnOp::CreateSession { timeout_ms, password: password.clone() };
        let (result, _) =
            member.write(0, Vec::new(), op).await.map_err(|e| ConnError::Refused(format!("creating a session: {e}")))?;
        return match result {
            Ok(OpOutcome::SessionCreated { session_id, timeout_ms }) => Ok(Some((session_id, password, timeout_ms))),
            other => Err(ConnError::Refused(format!("creating a session: {other:?}"))),
        };
    }
    // Never serve a client from an older state than it has seen (ZooKeeper refuses such a
    // connection; waiting briefly for this replica to catch up is kinder).
    member
        .read_barrier(connect.last_zxid_seen.max(0) as u64, false)
        .await
        .map_err(|e| ConnError::Refused(format!("client has seen zxid {:#x}: {e}", connect.last_zxid_seen)))?;
    let st = member.state.read();
    Ok(st
        .tree
        .session(connect.session_id)
        .filter(|s| s.password == connect.passwd)
        .map(|s| (connect.session_id, s.password.clone(), s.timeout_ms)))
}

/// Writes replies and notifications, in the order the client must see them.
async fn write_loop(
    wr: OwnedWriteHalf,
    mut notices: mpsc::UnboundedReceiver<Notice>,
    mut replies: mpsc::UnboundedReceiver<Reply>,
    counters: Arc<Counters>,
) -> Result<(), ConnError> {
    let mut w = BufWriter::new(wr);
    let mut out = NoticeWriter::default();
    let mut notices_open = true;
    loop {
        tokio::select! {
            biased;
            reply = replies.recv() => {
                let Some(reply) = reply else { break };
                // Everything queued for this session before the reply's state goes first.
                while notices_open && out.delivered < reply.after_seq {
                    match notices.recv().await {
                        Some(n) => {
                            if out.write(&mut w, n).await? {
                                return finish(w).await;
                            }
                        }
                        None => notices_open = false,
                    }
                }
                w.write_all(&reply.frame).await?;
                counters.sent.fetch_add(1, Ordering::Relaxed);
                if reply.close {
                    break;
                }
            }
            n = notices.recv(), if notices_open => match n {
                Some(n) => {
                    if out.write(&mut w, n).await? {
                        return finish(w).await;
                    }
                }
                None => {
                    notices_open = false;
                    // Detached without a close of our own: the session moved to another
                    // connection, or ended. Either way this connection is done.
                    if !out.closing {
                        break;
                    }
                }
            },
        }
        if replies.is_empty() && notices.is_empty() {
            w.flush().await?;
        }
    }
    finish(w).await
}

async fn finish(mut w: BufWriter<OwnedWriteHalf>) -> Result<(), ConnError> {
    w.flush().await?;
    let _ = w.shutdown().await;
    Ok(())
}

/// Turns notices into notification frames: one per change and connection, as ZooKeeper sends
/// (a delete that fires a data and a child watch is one notification).
#[derive(Default)]
struct NoticeWriter {
    delivered: u64,
    last: Option<(u64, EventKind, String)>,
    /// The session was closed by the client: its reply is still to come.
    closing: bool,
}

impl NoticeWriter {
    /// Writes one notice; true if the connection must close now.
    async fn write(&mut self, w: &mut BufWriter<OwnedWriteHalf>, notice: Notice) -> Result<bool, ConnError> {
        self.delivered += 1;
        match notice {
            Notice::Event(f) => {
                let key = (f.zxid, f.kind, f.path.clone());
                if f.zxid != 0 && self.last.as_ref() == Some(&key) {
                    return Ok(false);
                }
                self.last = Some(key);
                let event = WatcherEvent { event_type: f.kind as i32, state: STATE_SYNC_CONNECTED, path: f.path };
                w.write_all(&jute::notification(&event)).await?;
                Ok(false)
            }
            Notice::Ended(SessionEnd::Expired) => {
                let event = WatcherEvent { event_type: EVENT_NONE, state: STATE_EXPIRED, path: String::new() };
                w.write_all(&jute::notification(&event)).await?;
                Ok(true)
            }
            Notice::Ended(SessionEnd::Closed) => {
                self.closing = true;
                Ok(false)
            }
            Notice::Attached { .. } | Notice::Pong => Ok(false),
        }
    }
}
