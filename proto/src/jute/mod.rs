//! ZooKeeper's client wire protocol (jute), both directions: the server decodes requests and
//! encodes replies, a load generator does the opposite.
//!
//! A connection carries length-prefixed frames. The first frame is a [`ConnectRequest`] (or
//! the connection is a four-letter word such as `ruok`, see [`four_letter_word`]); every later
//! frame is a [`RequestHeader`] and an op-specific body ([`Request`]). Replies are a
//! [`ReplyHeader`] and a body whose shape depends on the request's op ([`Response`]); watch
//! notifications are replies with xid -1.
//!
//! Decoding is total: any byte string gives a value or a [`JuteError`], never a panic, and
//! nothing is allocated beyond what the frame holds.
//!
//! - `wire.rs`: primitives ([`Reader`], [`Writer`]).
//! - `records.rs`: the records of `zookeeper.jute`.
//! - this file: op codes, [`Request`], [`Response`] and multi framing.

mod records;
mod wire;

pub use records::*;
pub use wire::{Reader, Writer};

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JuteError {
    #[error("frame ends inside a {0}")]
    Truncated(&'static str),
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("{0} trailing bytes after the record")]
    Trailing(usize),
    #[error("multi holds op {0}, which a multi may not contain")]
    BadMultiOp(i32),
    #[error("frame length {0} is negative or over the limit {1}")]
    FrameLength(i64, usize),
}

/// Special xids.
pub mod xid {
    /// A watch notification.
    pub const NOTIFICATION: i32 = -1;
    /// A ping and its reply.
    pub const PING: i32 = -2;
    /// An auth packet and its reply.
    pub const AUTH: i32 = -4;
    /// setWatches as the Java client sends it.
    pub const SET_WATCHES: i32 = -8;
}

/// ZooKeeper's op codes (`ZooDefs.OpCode`).
pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// The largest frame accepted by default: ZooKeeper's jute.maxbuffer (1 MiB of data) plus room
/// for the path, ACLs and headers.
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024 + 64 * 1024;

/// Four-letter words arrive instead of a connect request; their first four bytes, read as a
/// frame length, are what ZooKeeper matches on.
pub fn four_letter_word(first4: [u8; 4]) -> Option<&'static str> {
    const WORDS: [&str; 13] =
        ["ruok", "srvr", "stat", "mntr", "conf", "cons", "wchs", "wchc", "wchp", "isro", "envi", "dump", "crst"];
    WORDS.iter().copied().find(|w| w.as_bytes() == first4)
}

/// Reads a frame length and checks it against `max`.
pub fn frame_len(first4: [u8; 4], max: usize) -> Result<usize, JuteError> {
    let len = i32::from_be_bytes(first4);
    if len < 0 || len as usize > max {
        return Err(JuteError::FrameLength(len as i64, max));
    }
    Ok(len as usize)
}

/// One operation inside a multi or multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    /// `op` is CREATE, CREATE2, CREATE_CONTAINER (plain create body) or CREATE_TTL.
    Create { op: i32, req: CreateTtlRequest },
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
    GetData(PathWatchRequest),
    GetChildren(PathWatchRequest),
}

impl MultiOp {
    pub fn op(&self) -> i32 {
        match self {
            MultiOp::Create { op, .. } => *op,
            MultiOp::Delete(_) => op::DELETE,
            MultiOp::SetData(_) => op::SET_DATA,
            MultiOp::Check(_) => op::CHECK,
            MultiOp::GetData(_) => op::GET_DATA,
            MultiOp::GetChildren(_) => op::GET_CHILDREN,
        }
    }
}

/// A request body, by op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// create, create2 and createContainer share a body; the op decides the reply.
    Create { op: i32, req: CreateRequest },
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    Exists(PathWatchRequest),
    GetData(PathWatchRequest),
    SetData(SetDataRequest),
    GetAcl(PathRequest),
    SetAcl(SetAclRequest),
    GetChildren(PathWatchRequest),
    GetChildren2(PathWatchRequest),
    Sync(PathRequest),
    Ping,
    Check(CheckVersionRequest),
    Multi(Vec<MultiOp>),
    MultiRead(Vec<MultiOp>),
    Auth(AuthPacket),
    SetWatches(SetWatches2),
    /// setWatches2: carries persistent watches too.
    SetWatches2(SetWatches2),
    AddWatch(AddWatchRequest),
    RemoveWatches(RemoveWatchesRequest),
    CheckWatches(RemoveWatchesRequest),
    GetEphemerals(PathRequest),
    GetAllChildrenNumber(PathRequest),
    WhoAmI,
    CloseSession,
    /// An op Corral does not serve (sasl, reconfig, deleteContainer from a client, unknown
    /// codes): answered with an error, the connection stays up.
    Unsupported(i32),
}

impl Request {
    /// The op code this request is sent with.
    pub fn op(&self) -> i32 {
        match self {
            Request::Create { op, .. } => *op,
            Request::CreateTtl(_) => op::CREATE_TTL,
            Request::Delete(_) => op::DELETE,
            Request::Exists(_) => op::EXISTS,
            Request::GetData(_) => op::GET_DATA,
            Request::SetData(_) => op::SET_DATA,
            Request::GetAcl(_) => op::GET_ACL,
            Request::SetAcl(_) => op::SET_ACL,
            Request::GetChildren(_) => op::GET_CHILDREN,
            Request::GetChildren2(_) => op::GET_CHILDREN2,
            Request::Sync(_) => op::SYNC,
            Request::Ping => op::PING,
            Request::Check(_) => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::Auth(_) => op::AUTH,
            Request::SetWatches(_) => op::SET_WATCHES,
            Request::SetWatches2(_) => op::SET_WATCHES2,
            Request::AddWatch(_) => op::ADD_WATCH,
            Request::RemoveWatches(_) => op::REMOVE_WATCHES,
            Request::CheckWatches(_) => op::CHECK_WATCHES,
            Request::GetEphemerals(_) => op::GET_EPHEMERALS,
            Request::GetAllChildrenNumber(_) => op::GET_ALL_CHILDREN_NUMBER,
            Request::WhoAmI => op::WHO_AM_I,
            Request::CloseSession => op::CLOSE_SESSION,
            Request::Unsupported(op) => *op,
        }
    }

    /// Decodes one request frame's payload (without the length prefix).
    pub fn decode(payload: &[u8]) -> Result<(RequestHeader, Request), JuteError> {
        let mut r = Reader::new(payload);
        let header = RequestHeader::read(&mut r)?;
        let req = Request::read_body(header.op, &mut r)?;
        Ok((header, req))
    }

    fn read_body(code: i32, r: &mut Reader<'_>) -> Result<Request, JuteError> {
        let req = match code {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER => Request::Create { op: code, req: CreateRequest::read(r)? },
            op::CREATE_TTL => Request::CreateTtl(CreateTtlRequest::read(r)?),
            op::DELETE => Request::Delete(DeleteRequest::read(r)?),
            op::EXISTS => Request::Exists(PathWatchRequest::read(r)?),
            op::GET_DATA => Request::GetData(PathWatchRequest::read(r)?),
            op::SET_DATA => Request::SetData(SetDataRequest::read(r)?),
            op::GET_ACL => Request::GetAcl(PathRequest::read(r)?),
            op::SET_ACL => Request::SetAcl(SetAclRequest::read(r)?),
            op::GET_CHILDREN => Request::GetChildren(PathWatchRequest::read(r)?),
            op::GET_CHILDREN2 => Request::GetChildren2(PathWatchRequest::read(r)?),
            op::SYNC => Request::Sync(PathRequest::read(r)?),
            op::PING => Request::Ping,
            op::CHECK => Request::Check(CheckVersionRequest::read(r)?),
            op::MULTI => Request::Multi(read_multi(r, false)?),
            op::MULTI_READ => Request::MultiRead(read_multi(r, true)?),
            op::AUTH => Request::Auth(AuthPacket::read(r)?),
            op::SET_WATCHES => {
                let w = SetWatches::read(r)?;
                Request::SetWatches(SetWatches2 {
                    relative_zxid: w.relative_zxid,
                    data_watches: w.data_watches,
                    exist_watches: w.exist_watches,
                    child_watches: w.child_watches,
                    ..SetWatches2::default()
                })
            }
            op::SET_WATCHES2 => Request::SetWatches2(SetWatches2::read(r)?),
            op::ADD_WATCH => Request::AddWatch(AddWatchRequest::read(r)?),
            op::REMOVE_WATCHES => Request::RemoveWatches(RemoveWatchesRequest::read(r)?),
            op::CHECK_WATCHES => Request::CheckWatches(RemoveWatchesRequest::read(r)?),
            op::GET_EPHEMERALS => Request::GetEphemerals(PathRequest::read(r)?),
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber(PathRequest::read(r)?),
            op::WHO_AM_I => Request::WhoAmI,
            op::CLOSE_SESSION => Request::CloseSession,
            other => return Ok(Request::Unsupported(other)),
        };
        Ok(req)
    }

    /// Encodes a whole request frame (length prefix included).
    pub fn encode(&self, xid: i32) -> Vec<u8> {
        Writer::frame(|w| {
            RequestHeader { xid, op: self.op() }.write(w);
            self.write_body(w);
        })
    }

    fn write_body(&self, w: &mut Writer) {
        match self {
            Request::Create { req, .. } => req.write(w),
            Request::CreateTtl(req) => req.write(w),
            Request::Delete(req) => req.write(w),
            Request::Exists(req) | Request::GetData(req) | Request::GetChildren(req) | Request::GetChildren2(req) => {
                req.write(w)
            }
            Request::SetData(req) => req.write(w),
            Request::GetAcl(req) | Request::Sync(req) | Request::GetEphemerals(req) | Request::GetAllChildrenNumber(req) => {
                req.write(w)
            }
            Request::SetAcl(req) => req.write(w),
            Request::Check(req) => req.write(w),
            Request::Multi(ops) | Request::MultiRead(ops) => write_multi(ops, w),
            Request::Auth(req) => req.write(w),
            Request::SetWatches(req) => SetWatches {
                relative_zxid: req.relative_zxid,
                data_watches: req.data_watches.clone(),
                exist_watches: req.exist_watches.clone(),
                child_watches: req.child_watches.clone(),
            }
            .write(w),
            Request::SetWatches2(req) => req.write(w),
            Request::AddWatch(req) => req.write(w),
            Request::RemoveWatches(req) | Request::CheckWatches(req) => req.write(w),
            Request::Ping | Request::WhoAmI | Request::CloseSession | Request::Unsupported(_) => {}
        }
    }
}

fn read_multi(r: &mut Reader<'_>, reads: bool) -> Result<Vec<MultiOp>, JuteError> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(ops);
        }
        let op = match (h.op, reads) {
            (op::CREATE | op::CREATE2 | op::CREATE_CONTAINER, false) => {
                let c = CreateRequest::read(r)?;
                MultiOp::Create {
                    op: h.op,
                    req: CreateTtlRequest { path: c.path, data: c.data, acl: c.acl, flags: c.flags, ttl: 0 },
                }
            }
            (op::CREATE_TTL, false) => MultiOp::Create { op: h.op, req: CreateTtlRequest::read(r)? },
            (op::DELETE, false) => MultiOp::Delete(DeleteRequest::read(r)?),
            (op::SET_DATA, false) => MultiOp::SetData(SetDataRequest::read(r)?),
            (op::CHECK, false) => MultiOp::Check(CheckVersionRequest::read(r)?),
            (op::GET_DATA, true) => MultiOp::GetData(PathWatchRequest::read(r)?),
            (op::GET_CHILDREN, true) => MultiOp::GetChildren(PathWatchRequest::read(r)?),
            (other, _) => return Err(JuteError::BadMultiOp(other)),
        };
        ops.push(op);
    }
}

fn write_multi(ops: &[MultiOp], w: &mut Writer) {
    for op in ops {
        MultiHeader { op: op.op(), done: false, err: -1 }.write(w);
        match op {
            MultiOp::Create { op: code, req } if *code == op::CREATE_TTL => req.write(w),
            MultiOp::Create { req, .. } => {
                CreateRequest { path: req.path.clone(), data: req.data.clone(), acl: req.acl.clone(), flags: req.flags }
                    .write(w)
            }
            MultiOp::Delete(req) => req.write(w),
            MultiOp::SetData(req) => req.write(w),
            MultiOp::Check(req) => req.write(w),
            MultiOp::GetData(req) | MultiOp::GetChildren(req) => req.write(w),
        }
    }
    MultiHeader { op: -1, done: true, err: -1 }.write(w);
}

/// The result of one op in a multi reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    Create { path: String },
    Create2 { path: String, stat: Stat },
    Delete,
    SetData { stat: Stat },
    Check,
    GetData { data: Vec<u8>, stat: Stat },
    GetChildren { children: Vec<String> },
    /// ZooKeeper's ErrorResult: 0 for ops before a failing one, -2 after it.
    Error { err: i32 },
}

/// A reply body, by the op it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// No body: errors, delete, check, setWatches, ping, auth, closeSession, removeWatches...
    Empty,
    Create { path: String },
    Create2 { path: String, stat: Stat },
    /// exists, setData, setACL.
    Stat(Stat),
    GetData { data: Vec<u8>, stat: Stat },
    GetAcl { acl: Vec<Acl>, stat: Stat },
    GetChildren { children: Vec<String> },
    GetChildren2 { children: Vec<String>, stat: Stat },
    Sync { path: String },
    Multi(Vec<MultiResult>),
    GetEphemerals(Vec<String>),
    GetAllChildrenNumber(i32),
    WhoAmI(Vec<ClientInfo>),
    /// addWatch: ZooKeeper answers with an `ErrorResponse` body (always 0 on success), and
    /// the Java client reads it; an empty body makes it drop the connection.
    AddWatch,
}

impl Response {
    /// Encodes a whole reply frame (length prefix included).
    pub fn encode(&self, header: &ReplyHeader) -> Vec<u8> {
        Writer::frame(|w| {
            header.write(w);
            self.write_body(w);
        })
    }

    fn write_body(&self, w: &mut Writer) {
        match self {
            Response::Empty => {}
            Response::Create { path } | Response::Sync { path } => w.string(path),
            Response::Create2 { path, stat } => {
                w.string(path);
                stat.write(w);
            }
            Response::Stat(stat) => stat.write(w),
            Response::GetData { data, stat } => {
                w.buffer(data);
                stat.write(w);
            }
            Response::GetAcl { acl, stat } => {
                acl.write(w);
                stat.write(w);
            }
            Response::GetChildren { children } | Response::GetEphemerals(children) => w.strings(children),
            Response::GetChildren2 { children, stat } => {
                w.strings(children);
                stat.write(w);
            }
            Response::Multi(results) => {
                for r in results {
                    let (code, err) = match r {
                        MultiResult::Create { .. } => (op::CREATE, 0),
                        MultiResult::Create2 { .. } => (op::CREATE2, 0),
                        MultiResult::Delete => (op::DELETE, 0),
                        MultiResult::SetData { .. } => (op::SET_DATA, 0),
                        MultiResult::Check => (op::CHECK, 0),
                        MultiResult::GetData { .. } => (op::GET_DATA, 0),
                        MultiResult::GetChildren { .. } => (op::GET_CHILDREN, 0),
                        MultiResult::Error { err } => (op::ERROR, *err),
                    };
                    MultiHeader { op: code, done: false, err }.write(w);
                    match r {
                        MultiResult::Create { path } => w.string(path),
                        MultiResult::Create2 { path, stat } => {
                            w.string(path);
                            stat.write(w);
                        }
                        MultiResult::SetData { stat } => stat.write(w),
                        MultiResult::GetData { data, stat } => {
                            w.buffer(data);
                            stat.write(w);
                        }
                        MultiResult::GetChildren { children } => w.strings(children),
                        MultiResult::Error { err } => w.i32(*err),
                        MultiResult::Delete | MultiResult::Check => {}
                    }
                }
                MultiHeader { op: -1, done: true, err: -1 }.write(w);
            }
            Response::GetAllChildrenNumber(n) => w.i32(*n),
            Response::WhoAmI(info) => info.write(w),
            Response::AddWatch => w.i32(0),
        }
    }

    /// Decodes a reply frame's payload, given the op of the request it answers. An error reply
    /// (err != 0) has no body, except for multi, whose results say what failed.
    pub fn decode(request_op: i32, payload: &[u8]) -> Result<(ReplyHeader, Response), JuteError> {
        let mut r = Reader::new(payload);
        let header = ReplyHeader::read(&mut r)?;
        if header.xid == xid::NOTIFICATION || (header.err != 0 && request_op != op::MULTI && request_op != op::MULTI_READ) {
            return Ok((header, Response::Empty));
        }
        let body = match request_op {
            op::CREATE => Response::Create { path: r.string()? },
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                Response::Create2 { path: r.string()?, stat: Stat::read(&mut r)? }
            }
            op::EXISTS | op::SET_DATA | op::SET_ACL => Response::Stat(Stat::read(&mut r)?),
            op::GET_DATA => Response::GetData { data: r.buffer()?, stat: Stat::read(&mut r)? },
            op::GET_ACL => Response::GetAcl { acl: Vec::<Acl>::read(&mut r)?, stat: Stat::read(&mut r)? },
            op::GET_CHILDREN => Response::GetChildren { children: r.strings()? },
            op::GET_CHILDREN2 => Response::GetChildren2 { children: r.strings()?, stat: Stat::read(&mut r)? },
            op::SYNC => Response::Sync { path: r.string()? },
            op::MULTI | op::MULTI_READ => Response::Multi(read_multi_results(&mut r)?),
            op::GET_EPHEMERALS => Response::GetEphemerals(r.strings()?),
            op::GET_ALL_CHILDREN_NUMBER => Response::GetAllChildrenNumber(r.i32()?),
            op::WHO_AM_I => Response::WhoAmI(Vec::<ClientInfo>::read(&mut r)?),
            op::ADD_WATCH => {
                r.i32()?;
                Response::AddWatch
            }
            _ => Response::Empty,
        };
        Ok((header, body))
    }
}

fn read_multi_results(r: &mut Reader<'_>) -> Result<Vec<MultiResult>, JuteError> {
    let mut out = Vec::new();
    // A failed multiRead-less error reply may carry no results at all.
    if r.is_empty() {
        return Ok(out);
    }
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(out);
        }
        let result = match h.op {
            op::CREATE => MultiResult::Create { path: r.string()? },
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                MultiResult::Create2 { path: r.string()?, stat: Stat::read(r)? }
            }
            op::DELETE => MultiResult::Delete,
            op::SET_DATA => MultiResult::SetData { stat: Stat::read(r)? },
            op::CHECK => MultiResult::Check,
            op::GET_DATA => MultiResult::GetData { data: r.buffer()?, stat: Stat::read(r)? },
            op::GET_CHILDREN => MultiResult::GetChildren { children: r.strings()? },
            op::ERROR => MultiResult::Error { err: r.i32()? },
            other => return Err(JuteError::BadMultiOp(other)),
        };
        out.push(result);
    }
}

/// Encodes a watch notification frame.
pub fn notification(event: &WatcherEvent) -> Vec<u8> {
    Writer::frame(|w| {
        ReplyHeader { xid: xid::NOTIFICATION, zxid: -1, err: 0 }.write(w);
        event.write(w);
    })
}

#[cfg(test)]
mod tests;
