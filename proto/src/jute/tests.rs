use proptest::prelude::*;

use super::*;

fn stat(n: i64) -> Stat {
    Stat {
        czxid: n,
        mzxid: n + 1,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_001,
        version: 2,
        cversion: 3,
        aversion: 4,
        ephemeral_owner: 0x0100_0000_0000_0007,
        data_length: 5,
        num_children: 6,
        pzxid: n + 2,
    }
}

fn acl() -> Vec<Acl> {
    vec![Acl { perms: 31, id: Id { scheme: "world".into(), id: "anyone".into() } }]
}

fn every_request() -> Vec<Request> {
    let create = CreateRequest { path: "/a".into(), data: Buffer(b"x".to_vec()), acl: acl(), flags: 1 };
    let ttl = CreateTtlRequest { path: "/t".into(), data: Buffer(vec![]), acl: acl(), flags: 5, ttl: 1000 };
    let pw = PathWatchRequest { path: "/p".into(), watch: true };
    let watches = SetWatches2 {
        relative_zxid: 42,
        data_watches: vec!["/d".into()],
        exist_watches: vec!["/e".into()],
        child_watches: vec!["/c".into()],
        persistent_watches: vec!["/p".into()],
        persistent_recursive_watches: vec!["/r".into()],
    };
    vec![
        Request::Create { op: op::CREATE, req: create.clone() },
        Request::Create { op: op::CREATE2, req: create.clone() },
        Request::Create { op: op::CREATE_CONTAINER, req: create.clone() },
        Request::CreateTtl(ttl.clone()),
        Request::Delete(DeleteRequest { path: "/a".into(), version: -1 }),
        Request::Exists(pw.clone()),
        Request::GetData(pw.clone()),
        Request::SetData(SetDataRequest { path: "/a".into(), data: Buffer(vec![0, 255]), version: 3 }),
        Request::GetAcl(PathRequest { path: "/a".into() }),
        Request::SetAcl(SetAclRequest { path: "/a".into(), acl: acl(), version: 0 }),
        Request::GetChildren(pw.clone()),
        Request::GetChildren2(pw.clone()),
        Request::Sync(PathRequest { path: "/".into() }),
        Request::Ping,
        Request::Check(CheckVersionRequest { path: "/a".into(), version: 7 }),
        Request::Multi(vec![
            MultiOp::Create { op: op::CREATE, req: CreateTtlRequest { ttl: 0, ..ttl.clone() } },
            MultiOp::Create { op: op::CREATE_TTL, req: ttl },
            MultiOp::Delete(DeleteRequest { path: "/b".into(), version: 1 }),
            MultiOp::SetData(SetDataRequest { path: "/c".into(), data: Buffer(b"d".to_vec()), version: -1 }),
            MultiOp::Check(CheckVersionRequest { path: "/e".into(), version: 0 }),
        ]),
        Request::MultiRead(vec![MultiOp::GetData(pw.clone()), MultiOp::GetChildren(pw)]),
        Request::Auth(AuthPacket { auth_type: 0, scheme: "digest".into(), auth: Buffer(b"u:p".to_vec()) }),
        Request::SetWatches(SetWatches2 { persistent_watches: vec![], persistent_recursive_watches: vec![], ..watches.clone() }),
        Request::SetWatches2(watches),
        Request::AddWatch(AddWatchRequest { path: "/w".into(), mode: 1 }),
        Request::RemoveWatches(RemoveWatchesRequest { path: "/w".into(), watcher_type: 3 }),
        Request::CheckWatches(RemoveWatchesRequest { path: "/w".into(), watcher_type: 2 }),
        Request::GetEphemerals(PathRequest { path: "/".into() }),
        Request::GetAllChildrenNumber(PathRequest { path: "/".into() }),
        Request::WhoAmI,
        Request::CloseSession,
        Request::Unsupported(op::SASL),
    ]
}

#[test]
fn every_request_round_trips() {
    for req in every_request() {
        let frame = req.encode(17);
        let len = frame_len(frame[..4].try_into().unwrap(), DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(len, frame.len() - 4);
        let (header, back) = Request::decode(&frame[4..]).unwrap();
        assert_eq!(header, RequestHeader { xid: 17, op: req.op() });
        assert_eq!(back, req);
    }
}

#[test]
fn every_response_round_trips() {
    let cases = vec![
        (op::DELETE, Response::Empty),
        (op::CREATE, Response::Create { path: "/a".into() }),
        (op::CREATE2, Response::Create2 { path: "/a".into(), stat: stat(1) }),
        (op::CREATE_TTL, Response::Create2 { path: "/t".into(), stat: stat(2) }),
        (op::EXISTS, Response::Stat(stat(3))),
        (op::GET_DATA, Response::GetData { data: b"hello".to_vec(), stat: stat(4) }),
        (op::GET_ACL, Response::GetAcl { acl: acl(), stat: stat(5) }),
        (op::GET_CHILDREN, Response::GetChildren { children: vec!["a".into(), "b".into()] }),
        (op::GET_CHILDREN2, Response::GetChildren2 { children: vec![], stat: stat(6) }),
        (op::SYNC, Response::Sync { path: "/".into() }),
        (
            op::MULTI,
            Response::Multi(vec![
                MultiResult::Create { path: "/a".into() },
                MultiResult::Create2 { path: "/b".into(), stat: stat(7) },
                MultiResult::Delete,
                MultiResult::SetData { stat: stat(8) },
                MultiResult::Check,
                MultiResult::Error { err: -101 },
            ]),
        ),
        (
            op::MULTI_READ,
            Response::Multi(vec![
                MultiResult::GetData { data: vec![1], stat: stat(9) },
                MultiResult::GetChildren { children: vec!["x".into()] },
                MultiResult::Error { err: -101 },
            ]),
        ),
        (op::GET_EPHEMERALS, Response::GetEphemerals(vec!["/e1".into()])),
        (op::GET_ALL_CHILDREN_NUMBER, Response::GetAllChildrenNumber(12)),
        (op::WHO_AM_I, Response::WhoAmI(vec![ClientInfo { auth_scheme: "ip".into(), user: "127.0.0.1".into() }])),
        (op::ADD_WATCH, Response::AddWatch),
    ];
    for (code, resp) in cases {
        let header = ReplyHeader { xid: 5, zxid: 99, err: 0 };
        let frame = resp.encode(&header);
        let (h, back) = Response::decode(code, &frame[4..]).unwrap();
        assert_eq!(h, header);
        assert_eq!(back, resp, "op {code}");
    }
}

#[test]
fn add_watch_reply_carries_an_error_response_body() {
    // ZooKeeper 3.8 answers addWatch with ErrorResponse(0): header then a zero int, 20 bytes.
    let frame = Response::AddWatch.encode(&ReplyHeader { xid: 1, zxid: 0x18, err: 0 });
    assert_eq!(frame[4..], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn connect_request_matches_the_java_client_bytes() {
    // What ZooKeeper 3.8's Java client sends for a new session with a 30 s timeout.
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0i32.to_be_bytes()); // protocolVersion
    bytes.extend_from_slice(&0i64.to_be_bytes()); // lastZxidSeen
    bytes.extend_from_slice(&30_000i32.to_be_bytes()); // timeOut
    bytes.extend_from_slice(&0i64.to_be_bytes()); // sessionId
    bytes.extend_from_slice(&16i32.to_be_bytes()); // passwd length
    bytes.extend_from_slice(&[0u8; 16]);
    bytes.push(0); // readOnly
    let c = ConnectRequest::read(&mut Reader::new(&bytes)).unwrap();
    assert_eq!(c.timeout, 30_000);
    assert_eq!(c.passwd, vec![0u8; 16]);
    let mut w = Writer::new();
    c.write(&mut w);
    assert_eq!(w.buf, bytes);
    // Clients before 3.4 leave out readOnly.
    let old = ConnectRequest::read(&mut Reader::new(&bytes[..bytes.len() - 1])).unwrap();
    assert!(!old.read_only);
}

#[test]
fn four_letter_words_and_frame_limits() {
    assert_eq!(four_letter_word(*b"ruok"), Some("ruok"));
    assert_eq!(four_letter_word(*b"mntr"), Some("mntr"));
    assert_eq!(four_letter_word([0, 0, 0, 44]), None);
    assert!(frame_len((-1i32).to_be_bytes(), 100).is_err());
    assert!(frame_len(101i32.to_be_bytes(), 100).is_err());
    assert_eq!(frame_len(100i32.to_be_bytes(), 100), Ok(100));
}

#[test]
fn hostile_lengths_fail_without_allocating() {
    // A vector that claims two billion strings in a 12-byte frame.
    let mut bytes = RequestHeader { xid: 1, op: op::SET_WATCHES }.to_vec();
    bytes.extend_from_slice(&0i64.to_be_bytes());
    bytes.extend_from_slice(&i32::MAX.to_be_bytes());
    assert_eq!(Request::decode(&bytes), Err(JuteError::Truncated("vector")));
    // A buffer longer than the frame.
    let mut bytes = RequestHeader { xid: 1, op: op::GET_DATA }.to_vec();
    bytes.extend_from_slice(&1000i32.to_be_bytes());
    assert!(Request::decode(&bytes).is_err());
    // A multi with an op a multi may not hold.
    let mut bytes = RequestHeader { xid: 1, op: op::MULTI }.to_vec();
    bytes.extend_from_slice(&op::GET_DATA.to_be_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(Request::decode(&bytes), Err(JuteError::BadMultiOp(op::GET_DATA)));
    // Invalid UTF-8 in a path.
    let mut bytes = RequestHeader { xid: 1, op: op::DELETE }.to_vec();
    bytes.extend_from_slice(&2i32.to_be_bytes());
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(&0i32.to_be_bytes());
    assert_eq!(Request::decode(&bytes), Err(JuteError::InvalidUtf8));
}

impl RequestHeader {
    fn to_vec(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.buf
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// The decoder's contract: any bytes give a value or an error, never a panic.
    #[test]
    fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Request::decode(&bytes);
        let _ = ConnectRequest::read(&mut Reader::new(&bytes));
        for code in [op::CREATE, op::GET_DATA, op::MULTI, op::MULTI_READ, op::GET_ACL, op::WHO_AM_I] {
            let _ = Response::decode(code, &bytes);
        }
    }

    /// Valid frames with random bytes spliced in: decoding goes deeper before failing.
    #[test]
    fn mutated_frames_never_panic(pick in 0usize..28, pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let reqs = every_request();
        let mut frame = reqs[pick % reqs.len()].encode(1)[4..].to_vec();
        let i = pos.index(frame.len());
        frame[i] = byte;
        let end = cut.index(frame.len() + 1);
        let _ = Request::decode(&frame[..end]);
    }
}
