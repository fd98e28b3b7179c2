//! ZooKeeper's jute records (`zookeeper.jute`), field for field and in its order. Every record
//! reads and writes itself; a macro spells out the layouts so they can be checked against the
//! `.jute` file at a glance.

use super::wire::{Reader, Writer};
use super::JuteError;

/// A value with a jute encoding.
pub trait Field: Sized {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError>;
    fn write(&self, w: &mut Writer);
    /// The fewest bytes one encoded value takes (bounds vector counts).
    const MIN_LEN: usize;
}

impl Field for i32 {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.i32()
    }
    fn write(&self, w: &mut Writer) {
        w.i32(*self)
    }
    const MIN_LEN: usize = 4;
}

impl Field for i64 {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.i64()
    }
    fn write(&self, w: &mut Writer) {
        w.i64(*self)
    }
    const MIN_LEN: usize = 8;
}

impl Field for bool {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.bool()
    }
    fn write(&self, w: &mut Writer) {
        w.bool(*self)
    }
    const MIN_LEN: usize = 1;
}

impl Field for String {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.string()
    }
    fn write(&self, w: &mut Writer) {
        w.string(self)
    }
    const MIN_LEN: usize = 4;
}

/// A jute `buffer` (as opposed to a vector of bytes, which jute never uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buffer(pub Vec<u8>);

impl Field for Buffer {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.buffer().map(Buffer)
    }
    fn write(&self, w: &mut Writer) {
        w.buffer(&self.0)
    }
    const MIN_LEN: usize = 4;
}

impl<T: Field> Field for Vec<T> {
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.vec(T::MIN_LEN, T::read)
    }
    fn write(&self, w: &mut Writer) {
        w.i32(self.len() as i32);
        for v in self {
            v.write(w);
        }
    }
    const MIN_LEN: usize = 4;
}

macro_rules! record {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name { $($(#[$fdoc])* pub $field: $ty),* }

        impl Field for $name {
            fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
                Ok($name { $($field: <$ty as Field>::read(r)?),* })
            }
            fn write(&self, w: &mut Writer) {
                $(self.$field.write(w);)*
            }
            const MIN_LEN: usize = 0 $(+ <$ty as Field>::MIN_LEN)*;
        }
    };
}

record!(
    /// A znode's metadata.
    Stat {
        czxid: i64,
        mzxid: i64,
        ctime: i64,
        mtime: i64,
        version: i32,
        cversion: i32,
        aversion: i32,
        ephemeral_owner: i64,
        data_length: i32,
        num_children: i32,
        pzxid: i64,
    }
);

record!(Id { scheme: String, id: String });
record!(Acl { perms: i32, id: Id });

record!(
    /// Sent before every request.
    RequestHeader { xid: i32, op: i32 }
);
record!(
    /// Sent before every reply; `zxid` is the server's last zxid, `err` a ZooKeeper code.
    ReplyHeader { xid: i32, zxid: i64, err: i32 }
);

record!(CreateRequest { path: String, data: Buffer, acl: Vec<Acl>, flags: i32 });
record!(CreateTtlRequest { path: String, data: Buffer, acl: Vec<Acl>, flags: i32, ttl: i64 });
record!(CreateResponse { path: String });
record!(Create2Response { path: String, stat: Stat });
record!(DeleteRequest { path: String, version: i32 });
record!(
    /// exists, getData, getChildren and getChildren2 all send a path and a watch flag.
    PathWatchRequest { path: String, watch: bool }
);
record!(
    /// getACL, sync, getEphemerals and getAllChildrenNumber all send just a path.
    PathRequest { path: String }
);
record!(StatResponse { stat: Stat });
record!(GetDataResponse { data: Buffer, stat: Stat });
record!(SetDataRequest { path: String, data: Buffer, version: i32 });
record!(GetAclResponse { acl: Vec<Acl>, stat: Stat });
record!(SetAclRequest { path: String, acl: Vec<Acl>, version: i32 });
record!(GetChildrenResponse { children: Vec<String> });
record!(GetChildren2Response { children: Vec<String>, stat: Stat });
record!(CheckVersionRequest { path: String, version: i32 });
record!(GetEphemeralsResponse { ephemerals: Vec<String> });
record!(GetAllChildrenNumberResponse { total_number: i32 });
record!(AuthPacket { auth_type: i32, scheme: String, auth: Buffer });
record!(SetWatches { relative_zxid: i64, data_watches: Vec<String>, exist_watches: Vec<String>, child_watches: Vec<String> });
record!(SetWatches2 {
    relative_zxid: i64,
    data_watches: Vec<String>,
    exist_watches: Vec<String>,
    child_watches: Vec<String>,
    persistent_watches: Vec<String>,
    persistent_recursive_watches: Vec<String>,
});
record!(
    /// `mode`: 0 persistent, 1 persistent recursive.
    AddWatchRequest { path: String, mode: i32 }
);
record!(
    /// removeWatches and checkWatches; `watcher_type`: 1 children, 2 data, 3 any (ZooKeeper's
    /// WatcherType numbering on the wire), 4 persistent, 5 persistent recursive.
    RemoveWatchesRequest { path: String, watcher_type: i32 }
);
record!(
    /// Frames a multi: one before each op (`op` its code, `done` false) and a last one with
    /// op -1, done true, err -1.
    MultiHeader { op: i32, done: bool, err: i32 }
);
record!(ErrorResponse { err: i32 });
record!(
    /// A watch notification (reply xid -1).
    WatcherEvent { event_type: i32, state: i32, path: String }
);
record!(ClientInfo { auth_scheme: String, user: String });
record!(WhoAmIResponse { client_info: Vec<ClientInfo> });

/// The handshake a client opens with. `read_only` is absent in clients older than 3.4, so it is
/// read only when present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: bool,
}

impl ConnectRequest {
    pub fn read(r: &mut Reader<'_>) -> Result<ConnectRequest, JuteError> {
        let mut c = ConnectRequest {
            protocol_version: r.i32()?,
            last_zxid_seen: r.i64()?,
            timeout: r.i32()?,
            session_id: r.i64()?,
            passwd: r.buffer()?,
            read_only: false,
        };
        if !r.is_empty() {
            c.read_only = r.bool()?;
        }
        Ok(c)
    }

    pub fn write(&self, w: &mut Writer) {
        w.i32(self.protocol_version);
        w.i64(self.last_zxid_seen);
        w.i32(self.timeout);
        w.i64(self.session_id);
        w.buffer(&self.passwd);
        w.bool(self.read_only);
    }
}

/// The server's answer to [`ConnectRequest`]. A timeout of 0 tells the client its session has
/// expired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: bool,
}

impl ConnectResponse {
    pub fn read(r: &mut Reader<'_>) -> Result<ConnectResponse, JuteError> {
        let mut c = ConnectResponse {
            protocol_version: r.i32()?,
            timeout: r.i32()?,
            session_id: r.i64()?,
            passwd: r.buffer()?,
            read_only: false,
        };
        if !r.is_empty() {
            c.read_only = r.bool()?;
        }
        Ok(c)
    }

    pub fn write(&self, w: &mut Writer) {
        w.i32(self.protocol_version);
        w.i32(self.timeout);
        w.i64(self.session_id);
        w.buffer(&self.passwd);
        w.bool(self.read_only);
    }
}
