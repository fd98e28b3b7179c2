//! Watches and the connections they fire on: ZooKeeper's `WatchManager`, per member.
//!
//! Synchronous and without I/O. The state machine calls [`Watches::dispatch`] while it still
//! holds the tree's write lock, and reads register watches while holding its read lock, so a
//! registration and the changes it watches are totally ordered: a watch never misses a change
//! made after the read it was set with, and never fires for one the read already reflected.
//! Because events are queued (with their sequence number) before the new tree state becomes
//! readable, a reply that reflects a change can name how many notices precede it
//! ([`Watches::seq`]); the client holds the reply until it has them, which is ZooKeeper's
//! "a client sees the event before the new data".
//!
//! A connection is one session's stream on this member ([`Conn`]). Watches belong to the
//! connection, not the session: when a session moves to another member it re-registers them
//! there (with its last seen zxid, so missed changes fire, see [`Watches::reregister`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::tree::{check_acl, perms, DataTree, EventKind, Id, WatchEvent};

/// Which registration an event fired, as ZooKeeper's `WatcherType` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchKind {
    /// A one-shot data watch (getData, or exists on an existing or missing node).
    Data,
    /// A one-shot child watch (getChildren).
    Child,
    /// addWatch PERSISTENT: every event on the path, until removed.
    Persistent,
    /// addWatch PERSISTENT_RECURSIVE: every event on the path and below except
    /// NodeChildrenChanged, until removed.
    PersistentRecursive,
}

/// An event as delivered to one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub kind: EventKind,
    pub path: String,
    /// The zxid of the change; 0 for events fired by re-registration.
    pub zxid: u64,
    pub watch: WatchKind,
    /// The path the firing watch was registered on.
    pub watch_path: String,
}

/// Why a session's connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    Expired,
    Closed,
}

/// What a connection receives, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Attached { timeout_ms: i32, zxid: u64 },
    Event(Fired),
    /// The session is over; nothing follows.
    Ended(SessionEnd),
    Pong,
}

/// A connection's unique id on this member.
pub type ConnId = u64;

/// A handle on one session stream's sending side: numbered notices. Handles are weak: only
/// [`Watches`] keeps the stream open, so detaching a connection ends its stream even while
/// other tasks still hold handles.
#[derive(Clone)]
pub struct Conn {
    pub id: ConnId,
    pub session_id: i64,
    tx: mpsc::WeakUnboundedSender<Notice>,
    sent: Arc<AtomicU64>,
}

impl Conn {
    /// Queues a notice unless the connection was detached; returns its sequence number (1 for
    /// the first).
    pub fn push(&self, notice: Notice) -> u64 {
        let seq = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(tx) = self.tx.upgrade() {
            // A closed receiver means the stream is gone; its detach follows.
            let _ = tx.send(notice);
        }
        seq
    }

    /// How many notices were queued so far.
    pub fn seq(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// The registrations of one member.
#[derive(Default)]
pub struct Watches {
    next_conn: ConnId,
    conns: BTreeMap<ConnId, Conn>,
    /// The strong senders: a connection's stream stays open while it is here.
    senders: BTreeMap<ConnId, mpsc::UnboundedSender<Notice>>,
    /// The connection each attached session uses on this member.
    by_session: BTreeMap<i64, ConnId>,
    /// (kind, path) → connections. BTree keeps dispatch order deterministic.
    table: BTreeMap<(WatchKind, String), BTreeSet<ConnId>>,
    /// The reverse index, for detaching a connection.
    of_conn: BTreeMap<ConnId, BTreeSet<(WatchKind, String)>>,
    /// The identities of connections that hear only about nodes they may READ (ZooKeeper
    /// protocol connections: their address and addauth credentials). Connections without an
    /// entry hear every event they watch.
    identities: BTreeMap<ConnId, Vec<Id>>,
}

impl Watches {
    /// Attaches `session_id` on this member, replacing (and ending) any earlier connection of
    /// the same session here. Returns the new connection and the receiver for its stream.
    pub fn attach(&mut self, session_id: i64) -> (Conn, mpsc::UnboundedReceiver<Notice>) {
        if let Some(old) = self.by_session.get(&session_id).copied() {
            self.detach(old);
        }
        self.next_conn += 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = Conn { id: self.next_conn, session_id, tx: tx.downgrade(), sent: Arc::new(AtomicU64::new(0)) };
        self.conns.insert(conn.id, conn.clone());
        self.senders.insert(conn.id, tx);
        self.by_session.insert(session_id, conn.id);
        (conn, rx)
    }

    /// Forgets a connection and its watches. Dropping its sender ends its stream.
    pub fn detach(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.senders.remove(&conn);
        self.identities.remove(&conn);
        if self.by_session.get(&c.session_id) == Some(&conn) {
            self.by_session.remove(&c.session_id);
        }
        for key in self.of_conn.remove(&conn).unwrap_or_default() {
            self.unregister(conn, &key);
        }
    }

    /// The connection of a session attached here.
    pub fn conn_of(&self, session_id: i64) -> Option<&Conn> {
        self.by_session.get(&session_id).and_then(|id| self.conns.get(id))
    }

    /// How many notices the session's connection here has been sent (0 if not attached).
    pub fn seq(&self, session_id: i64) -> u64 {
        self.conn_of(session_id).map_or(0, Conn::seq)
    }

    /// The sessions connected here, by id.
    pub fn sessions(&self) -> impl Iterator<Item = i64> + '_ {
        self.by_session.keys().copied()
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// The number of (connection, watch) registrations: `wchs`'s total.
    pub fn watch_count(&self) -> usize {
        self.of_conn.values().map(BTreeSet::len).sum()
    }

    /// The registrations as `wchp` lists them: path → sessions watching it.
    pub fn by_path(&self) -> BTreeMap<String, BTreeSet<i64>> {
        let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        for ((_, path), conns) in &self.table {
            for c in conns {
                if let Some(conn) = self.conns.get(c) {
                    out.entry(path.clone()).or_default().insert(conn.session_id);
                }
            }
        }
        out
    }

    /// From now on the session's connection here hears only about nodes whose ACL grants READ
    /// to one of `ids`, as ZooKeeper (3.8.4, 3.9.2 and later) checks before it sends a
    /// notification. A one-shot watch whose event is withheld is spent all the same.
    pub fn set_identities(&mut self, session_id: i64, ids: Vec<Id>) {
        if let Some(conn) = self.by_session.get(&session_id).copied() {
            self.identities.insert(conn, ids);
        }
    }

    /// Registers a watch of `session_id`'s connection here. False if it has none.
    pub fn register(&mut self, session_id: i64, kind: WatchKind, path: &str) -> bool {
        let Some(conn) = self.by_session.get(&session_id).copied() else {
            return false;
        };
        let key = (kind, path.to_owned());
        self.table.entry(key.clone()).or_default().insert(conn);
        self.of_conn.entry(conn).or_default().insert(key);
        true
    }

    /// ZooKeeper's removeWatches for one kind (`None`: every kind) on `path`. Returns whether
    /// anything was removed (ZooKeeper answers NoWatcher otherwise).
    pub fn remove(&mut self, session_id: i64, kind: Option<WatchKind>, path: &str) -> bool {
        let Some(conn) = self.by_session.get(&session_id).copied() else {
            return false;
        };
        let kinds = match kind {
            Some(k) => vec![k],
            None => vec![WatchKind::Data, WatchKind::Child, WatchKind::Persistent, WatchKind::PersistentRecursive],
        };
        let mut removed = false;
        for k in kinds {
            let key = (k, path.to_owned());
            if self.of_conn.get_mut(&conn).is_some_and(|set| set.remove(&key)) {
                self.unregister(conn, &key);
                removed = true;
            }
        }
        removed
    }

    /// Whether the session's connection here has a watch of `kind` (`None`: any) on `path`.
    pub fn has(&self, session_id: i64, kind: Option<WatchKind>, path: &str) -> bool {
        let Some(conn) = self.by_session.get(&session_id) else {
            return false;
        };
        self.of_conn.get(conn).is_some_and(|set| {
            set.iter().any(|(k, p)| p == path && kind.is_none_or(|want| want == *k))
        })
    }

    fn unregister(&mut self, conn: ConnId, key: &(WatchKind, String)) {
        if let Some(set) = self.table.get_mut(key) {
            set.remove(&conn);
            if set.is_empty() {
                self.table.remove(key);
            }
        }
    }

    /// Fires the watches one applied entry's events trigger, in event order. One-shot watches
    /// are removed as they fire.
    pub fn dispatch(&mut self, zxid: u64, events: &[WatchEvent]) {
        if self.table.is_empty() {
            return;
        }
        for event in events {
            for (kind, watch_path) in triggered(event) {
                self.fire(kind, &watch_path, event, zxid);
            }
        }
    }

    fn fire(&mut self, kind: WatchKind, watch_path: &str, event: &WatchEvent, zxid: u64) {
        let key = (kind, watch_path.to_owned());
        let Some(conns) = self.table.get(&key) else {
            return;
        };
        let conns: Vec<ConnId> = conns.iter().copied().collect();
        for id in &conns {
            if let Some(ids) = self.identities.get(id) {
                if check_acl(&event.acl, perms::READ, ids).is_err() {
                    continue;
                }
            }
            if let Some(conn) = self.conns.get(id) {
                conn.push(Notice::Event(Fired {
                    kind: event.kind,
                    path: event.path.clone(),
                    zxid,
                    watch: kind,
                    watch_path: watch_path.to_owned(),
                }));
            }
        }
        if matches!(kind, WatchKind::Data | WatchKind::Child) {
            self.table.remove(&key);
            for id in conns {
                if let Some(set) = self.of_conn.get_mut(&id) {
                    set.remove(&key);
                }
            }
        }
    }

    /// A session ended (its close or expiry was applied): its connection here hears why and
    /// is detached.
    pub fn session_ended(&mut self, session_id: i64, why: SessionEnd) {
        if let Some(conn) = self.by_session.get(&session_id).copied() {
            if let Some(c) = self.conns.get(&conn) {
                c.push(Notice::Ended(why));
            }
            self.detach(conn);
        }
    }

    /// The tree was replaced by a snapshot: which changes happened is unknown, so every
    /// connection is dropped, as a ZooKeeper follower does when it resyncs by SNAP. Clients
    /// reconnect and re-register with their last zxid, and what they missed fires then.
    pub fn drop_all(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.detach(id);
        }
    }

    /// ZooKeeper's setWatches: re-registers a reconnecting session's watches against the
    /// current tree, firing at once what changed after `last_zxid` (with zxid 0, as ZooKeeper).
    pub fn reregister(&mut self, tree: &DataTree, session_id: i64, last_zxid: u64, set: &WatchSet) {
        let Some(conn) = self.conn_of(session_id).cloned() else {
            return;
        };
        let last = last_zxid as i64;
        let fire = |kind: EventKind, path: &str, watch: WatchKind| {
            conn.push(Notice::Event(Fired {
                kind,
                path: path.to_owned(),
                zxid: 0,
                watch,
                watch_path: path.to_owned(),
            }));
        };
        for path in &set.data {
            match tree.exists(path).ok().flatten() {
                None => fire(EventKind::NodeDeleted, path, WatchKind::Data),
                Some(stat) if stat.mzxid > last => fire(EventKind::NodeDataChanged, path, WatchKind::Data),
                Some(_) => {
                    self.register(session_id, WatchKind::Data, path);
                }
            }
        }
        for path in &set.exist {
            match tree.exists(path).ok().flatten() {
                Some(_) => fire(EventKind::NodeCreated, path, WatchKind::Data),
                None => {
                    self.register(session_id, WatchKind::Data, path);
                }
            }
        }
        for path in &set.child {
            match tree.exists(path).ok().flatten() {
                None => fire(EventKind::NodeDeleted, path, WatchKind::Child),
                Some(stat) if stat.pzxid > last => fire(EventKind::NodeChildrenChanged, path, WatchKind::Child),
                Some(_) => {
                    self.register(session_id, WatchKind::Child, path);
                }
            }
        }
        for path in &set.persistent {
            self.register(session_id, WatchKind::Persistent, path);
        }
        for path in &set.persistent_recursive {
            self.register(session_id, WatchKind::PersistentRecursive, path);
        }
    }
}

/// The watches a reconnecting session brings along.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchSet {
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// The registrations (kind, path) an event may fire, ZooKeeper's rules: NodeCreated and
/// NodeDataChanged fire data watches, NodeChildrenChanged child watches, NodeDeleted both;
/// persistent watches on the path fire for every type; recursive ones on the path or any
/// ancestor fire for everything but NodeChildrenChanged.
fn triggered(event: &WatchEvent) -> Vec<(WatchKind, String)> {
    let path = &event.path;
    let mut out = Vec::new();
    match event.kind {
        EventKind::NodeCreated | EventKind::NodeDataChanged => out.push((WatchKind::Data, path.clone())),
        EventKind::NodeChildrenChanged => out.push((WatchKind::Child, path.clone())),
        EventKind::NodeDeleted => {
            out.push((WatchKind::Data, path.clone()));
            out.push((WatchKind::Child, path.clone()));
        }
    }
    out.push((WatchKind::Persistent, path.clone()));
    if event.kind != EventKind::NodeChildrenChanged {
        for p in ancestors_and_self(path) {
            out.push((WatchKind::PersistentRecursive, p));
        }
    }
    out
}

/// `/a/b` → `/a/b`, `/a`, `/`.
fn ancestors_and_self(path: &str) -> Vec<String> {
    let mut out = vec![path.to_owned()];
    let mut p = path;
    while p != "/" {
        p = match p.rfind('/') {
            Some(0) => "/",
            Some(i) => &p[..i],
            None => break,
        };
        out.push(p.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, path: &str) -> WatchEvent {
        WatchEvent { kind, path: path.into(), acl: crate::tree::Acl::open_unsafe().into() }
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<Notice>) -> Vec<(EventKind, String, WatchKind)> {
        let mut out = Vec::new();
        while let Ok(n) = rx.try_recv() {
            if let Notice::Event(f) = n {
                out.push((f.kind, f.path, f.watch));
            }
        }
        out
    }

    #[test]
    fn one_shot_watches_fire_once_and_persistent_ones_keep_firing() {
        let mut w = Watches::default();
        let (conn, mut rx) = w.attach(7);
        assert!(w.register(7, WatchKind::Data, "/a"));
        assert!(w.register(7, WatchKind::Child, "/a"));
        assert!(w.register(7, WatchKind::Persistent, "/a"));
        w.dispatch(10, &[ev(EventKind::NodeDataChanged, "/a")]);
        w.dispatch(11, &[ev(EventKind::NodeDataChanged, "/a")]);
        assert_eq!(
            drain(&mut rx),
            vec![
                (EventKind::NodeDataChanged, "/a".into(), WatchKind::Data),
                (EventKind::NodeDataChanged, "/a".into(), WatchKind::Persistent),
                (EventKind::NodeDataChanged, "/a".into(), WatchKind::Persistent),
            ]
        );
        w.dispatch(12, &[ev(EventKind::NodeDeleted, "/a")]);
        assert_eq!(
            drain(&mut rx),
            vec![
                (EventKind::NodeDeleted, "/a".into(), WatchKind::Child),
                (EventKind::NodeDeleted, "/a".into(), WatchKind::Persistent),
            ]
        );
        assert_eq!(conn.seq(), 5);
        assert_eq!(w.watch_count(), 1, "only the persistent watch is left");
    }

    #[test]
    fn connections_with_identities_hear_only_about_nodes_they_may_read() {
        use crate::tree::{Acl, Id};
        let alice = Id::new("digest", "alice:hash");
        let private: std::sync::Arc<[Acl]> = vec![Acl { perms: perms::READ, id: alice.clone() }].into();
        let event = |kind, path: &str| WatchEvent { kind, path: path.into(), acl: private.clone() };
        let mut w = Watches::default();
        let (_a, mut rx_a) = w.attach(1);
        let (_b, mut rx_b) = w.attach(2);
        let (_g, mut rx_g) = w.attach(3);
        w.set_identities(1, vec![Id::new("ip", "127.0.0.1"), alice]);
        w.set_identities(2, vec![Id::new("ip", "127.0.0.1")]);
        for s in [1, 2, 3] {
            w.register(s, WatchKind::Data, "/p");
            w.register(s, WatchKind::PersistentRecursive, "/");
        }
        w.dispatch(4, &[event(EventKind::NodeDataChanged, "/p")]);
        assert_eq!(
            drain(&mut rx_a),
            vec![
                (EventKind::NodeDataChanged, "/p".into(), WatchKind::Data),
                (EventKind::NodeDataChanged, "/p".into(), WatchKind::PersistentRecursive),
            ]
        );
        assert!(drain(&mut rx_b).is_empty(), "no READ: nothing is sent");
        assert_eq!(drain(&mut rx_g).len(), 2, "no identities set (gRPC streams): every event");
        assert!(!w.has(2, Some(WatchKind::Data), "/p"), "the withheld one-shot watch is spent");
        w.dispatch(5, &[ev(EventKind::NodeDataChanged, "/p")]);
        assert_eq!(drain(&mut rx_b), vec![(EventKind::NodeDataChanged, "/p".into(), WatchKind::PersistentRecursive)]);
    }

    #[test]
    fn recursive_watches_see_descendants_but_not_child_events() {
        let mut w = Watches::default();
        let (_c, mut rx) = w.attach(1);
        w.register(1, WatchKind::PersistentRecursive, "/r");
        w.dispatch(
            5,
            &[
                ev(EventKind::NodeCreated, "/r/x/y"),
                ev(EventKind::NodeChildrenChanged, "/r/x"),
                ev(EventKind::NodeDataChanged, "/other"),
                ev(EventKind::NodeDataChanged, "/rr"),
            ],
        );
        assert_eq!(drain(&mut rx), vec![(EventKind::NodeCreated, "/r/x/y".into(), WatchKind::PersistentRecursive)]);
        assert_eq!(ancestors_and_self("/a/b"), vec!["/a/b", "/a", "/"]);
        assert_eq!(ancestors_and_self("/"), vec!["/"]);
    }

    #[test]
    fn remove_and_detach_forget_registrations() {
        let mut w = Watches::default();
        let (_c, mut rx) = w.attach(1);
        w.register(1, WatchKind::Data, "/a");
        w.register(1, WatchKind::Child, "/a");
        assert!(w.has(1, Some(WatchKind::Child), "/a"));
        assert!(w.remove(1, Some(WatchKind::Data), "/a"));
        assert!(!w.remove(1, Some(WatchKind::Data), "/a"), "nothing left to remove");
        w.dispatch(3, &[ev(EventKind::NodeDataChanged, "/a")]);
        assert!(drain(&mut rx).is_empty());
        assert!(w.remove(1, None, "/a"));
        assert_eq!(w.watch_count(), 0);
        // A second attach of the same session replaces the first connection.
        w.register(1, WatchKind::Persistent, "/p");
        let (_c2, _rx2) = w.attach(1);
        assert_eq!(w.watch_count(), 0);
        assert_eq!(w.connection_count(), 1);
        assert!(rx.try_recv().is_err(), "the replaced stream ended");
    }

    #[test]
    fn a_session_end_is_the_last_notice() {
        let mut w = Watches::default();
        let (_c, mut rx) = w.attach(9);
        w.register(9, WatchKind::Data, "/a");
        w.session_ended(9, SessionEnd::Expired);
        assert_eq!(rx.try_recv().unwrap(), Notice::Ended(SessionEnd::Expired));
        assert!(matches!(rx.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)));
        assert!(!w.register(9, WatchKind::Data, "/a"));
    }

    #[test]
    fn reregistration_fires_what_was_missed() {
        let mut tree = DataTree::new();
        let txn = |op| crate::tree::Txn { time_ms: 0, session_id: 0, auth: vec![], op };
        let create = |p: &str| crate::tree::TxnOp::Create {
            path: p.into(),
            data: vec![],
            acl: crate::tree::Acl::open_unsafe(),
            mode: crate::tree::CreateMode::Persistent,
            ttl_ms: 0,
        };
        tree.apply(1, &txn(create("/same")));
        tree.apply(2, &txn(create("/changed")));
        tree.apply(3, &txn(create("/parent")));
        tree.apply(5, &txn(create("/born")));
        tree.apply(6, &txn(create("/parent/kid")));
        tree.apply(7, &txn(crate::tree::TxnOp::SetData { path: "/changed".into(), data: b"x".to_vec(), version: -1 }));
        let mut w = Watches::default();
        let (_c, mut rx) = w.attach(1);
        let set = WatchSet {
            data: vec!["/same".into(), "/changed".into(), "/gone".into()],
            exist: vec!["/born".into(), "/unborn".into()],
            child: vec!["/parent".into(), "/same".into()],
            persistent: vec!["/p".into()],
            persistent_recursive: vec![],
        };
        w.reregister(&tree, 1, 4, &set);
        assert_eq!(
            drain(&mut rx),
            vec![
                (EventKind::NodeDataChanged, "/changed".into(), WatchKind::Data),
                (EventKind::NodeDeleted, "/gone".into(), WatchKind::Data),
                (EventKind::NodeCreated, "/born".into(), WatchKind::Data),
                (EventKind::NodeChildrenChanged, "/parent".into(), WatchKind::Child),
            ]
        );
        assert!(w.has(1, Some(WatchKind::Data), "/same"));
        assert!(w.has(1, Some(WatchKind::Data), "/unborn"));
        assert!(w.has(1, Some(WatchKind::Child), "/same"));
        assert!(w.has(1, Some(WatchKind::Persistent), "/p"));
        assert_eq!(w.watch_count(), 4);
    }
}
