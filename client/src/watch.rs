//! Client-side watch bookkeeping: which [`Watch`] futures and [`WatchStream`]s
//! wait for which server registration, routing stream events to them, and the
//! lists a reconnect re-registers.
//!
//! Why the client keeps its own table when the server already has one:
//!
//! - **Sharing.** The server keeps at most one registration per (session, kind,
//!   path), as ZooKeeper does. A client may hold many `Watch`es on one path; the
//!   one server event that registration fires completes every one of them.
//! - **Routing.** Events name the registration that fired (`watcher`, and the
//!   `watch_path` it was set on), so a persistent-recursive watch on `/app` and a
//!   data watch on `/app/x` each get their own event for one change of `/app/x`.
//! - **Reconnects.** Registrations live on the member the session's stream is
//!   attached to. When the session moves, the client sends every path it still
//!   waits on in `Attach`, with its last seen zxid, and the new member fires what
//!   was missed (ZooKeeper's setWatches).
//!
//! A registration is entered here *before* its request is sent, because the
//! reply and the event travel on different HTTP/2 streams and the event may
//! well arrive first. Until the reply is in, the waiter is *pending*: events
//! for its key are buffered, not delivered. The reply then tells which of them
//! belong to the new registration: the server registers a watch under the same
//! read lock as the read, so an event belongs to it exactly when its zxid is
//! newer than the state the reply shows (the node's `mzxid` for data watches,
//! `pzxid` for child watches, the reply's zxid for a missing node or a
//! persistent watch). Older events were fired by an earlier registration on the
//! same key and are not delivered again: a watcher never gets a notification
//! for a change its own read already reflected.
//!
//! Events fired on reconnect carry zxid 0: they report a change the client
//! missed, made after the last zxid it sent and no later than the state the
//! member attached at (`Attached.zxid`), which the registry notes for each one.
//! An armed waiter always gets them. A pending one gets them only if its reply
//! read an older state than that: otherwise the read already shows the change
//! (the pending waiter was re-registered on reconnect, and its request, sent
//! after the reconnect, read a state at least as new as the attach). One such
//! event reaches only the kind of waiter it was fired for: a NodeCreated only
//! exists waiters on a missing node, a NodeDataChanged or NodeDeleted only data
//! waiters, although both kinds are one data registration on the server (a
//! missing node's exists waiter must not hear that an existing one was deleted).
//!
//! Everything here is synchronous and behind one mutex (in `session.rs`), so
//! routing, arming and the reconnect lists see one consistent table.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures::Stream;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::types::{AddWatchMode, EventType, WatchedEvent, WatcherType};

/// The one-shot watch kinds a client distinguishes. The server has only data
/// and child registrations; `Exist` is a data registration set on a node that
/// did not exist, which a reconnect re-registers differently (it fires
/// NodeCreated if the node appeared meanwhile), as in ZooKeeper's client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum OneShot {
    Data,
    Exist,
    Child,
}

type Outcome = Result<WatchedEvent, Error>;

struct Waiter {
    id: u64,
    tx: oneshot::Sender<Outcome>,
    /// `Some` while pending: the events seen for this key since the waiter was
    /// entered, each with the zxid its stream attached at, to be sorted out
    /// when the reply arrives.
    buffered: Option<Vec<(WatchedEvent, u64)>>,
}

struct Listener {
    id: u64,
    tx: mpsc::UnboundedSender<WatchedEvent>,
    buffered: Option<Vec<WatchedEvent>>,
}

/// Identifies a pending one-shot waiter until its reply arms or cancels it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OneShotTicket {
    path: String,
    kind: OneShot,
    id: u64,
}

/// Identifies a persistent listener (its [`WatchStream`] holds one too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerTicket {
    path: String,
    mode: AddWatchMode,
    id: u64,
}

/// The paths a reconnect re-registers, one list per kind, as `Attach` wants them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WatchLists {
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// One session's watchers.
#[derive(Default)]
pub(crate) struct Registry {
    next_id: u64,
    one_shot: BTreeMap<(String, OneShot), Vec<Waiter>>,
    persistent: BTreeMap<(String, AddWatchMode), Vec<Listener>>,
    /// Set when the session ended: every later registration fails with it.
    ended: Option<Error>,
    /// The zxid the session's current stream attached at.
    attach_zxid: u64,
}

/// Whether an event belongs to a registration whose reply showed the state at
/// `seen_zxid` (see the module doc).
fn newer(event: &WatchedEvent, seen_zxid: u64) -> bool {
    event.zxid == 0 || event.zxid > seen_zxid
}

/// Whether a buffered event, which arrived on a stream attached at
/// `attach_zxid`, is news to a waiter whose reply read the state at
/// `read_zxid` and showed the watched change at `seen_zxid` (see the module doc).
fn news(event: &WatchedEvent, attach_zxid: u64, seen_zxid: u64, read_zxid: u64) -> bool {
    match event.zxid {
        0 => attach_zxid > read_zxid,
        zxid => zxid > seen_zxid,
    }
}

impl Registry {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn check_open(&self) -> Result<(), Error> {
        match &self.ended {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Enters a pending one-shot waiter. `kind` is a guess for exists watches
    /// (`Exist`), settled by [`Registry::arm`].
    pub(crate) fn watch(&mut self, path: &str, kind: OneShot) -> Result<(OneShotTicket, Watch), Error> {
        self.check_open()?;
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        self.one_shot.entry((path.to_owned(), kind)).or_default().push(Waiter {
            id,
            tx,
            buffered: Some(Vec::new()),
        });
        Ok((OneShotTicket { path: path.to_owned(), kind, id }, Watch { rx: Some(rx) }))
    }

    /// The session's stream attached (again) at `zxid`: events fired on
    /// reconnect report changes at or before it.
    pub(crate) fn attached(&mut self, zxid: u64) {
        self.attach_zxid = zxid;
    }

    /// The reply arrived: the waiter now waits under `kind`, for changes after
    /// `seen_zxid`; the reply read the state at `read_zxid`. A buffered event
    /// that is news to it (see [`news`]) completes it at once.
    pub(crate) fn arm(&mut self, ticket: &OneShotTicket, kind: OneShot, seen_zxid: u64, read_zxid: u64) {
        let Some(mut waiter) = self.take_waiter(ticket) else {
            // Already completed (removed, or the session ended).
            return;
        };
        let buffered = waiter.buffered.take().unwrap_or_default();
        let mut news = buffered.into_iter().filter(|(e, at)| news(e, *at, seen_zxid, read_zxid));
        if let Some((event, _)) = news.next() {
            let _ = waiter.tx.send(Ok(event));
            return;
        }
        self.one_shot.entry((ticket.path.clone(), kind)).or_default().push(waiter);
    }

    /// The request failed: forget the waiter. Its `Watch` is dropped with the
    /// failed reply, so nobody hears of it.
    pub(crate) fn cancel(&mut self, ticket: &OneShotTicket) {
        let _ = self.take_waiter(ticket);
    }

    fn take_waiter(&mut self, ticket: &OneShotTicket) -> Option<Waiter> {
        let key = (ticket.path.clone(), ticket.kind);
        let waiters = self.one_shot.get_mut(&key)?;
        let at = waiters.iter().position(|w| w.id == ticket.id)?;
        let waiter = waiters.remove(at);
        if waiters.is_empty() {
            self.one_shot.remove(&key);
        }
        Some(waiter)
    }

    /// Enters a pending persistent listener.
    pub(crate) fn listen(
        &mut self,
        path: &str,
        mode: AddWatchMode,
    ) -> Result<(ListenerTicket, mpsc::UnboundedReceiver<WatchedEvent>), Error> {
        self.check_open()?;
        let id = self.next_id();
        let (tx, rx) = mpsc::unbounded_channel();
        self.persistent.entry((path.to_owned(), mode)).or_default().push(Listener {
            id,
            tx,
            buffered: Some(Vec::new()),
        });
        Ok((ListenerTicket { path: path.to_owned(), mode, id }, rx))
    }

    /// The AddWatch reply arrived: deliver the buffered events newer than
    /// `seen_zxid`, then everything as it comes.
    pub(crate) fn arm_listener(&mut self, ticket: &ListenerTicket, seen_zxid: u64) {
        let key = (ticket.path.clone(), ticket.mode);
        let Some(listener) =
            self.persistent.get_mut(&key).and_then(|ls| ls.iter_mut().find(|l| l.id == ticket.id))
        else {
            return;
        };
        for event in listener.buffered.take().unwrap_or_default() {
            if newer(&event, seen_zxid) {
                let _ = listener.tx.send(event);
            }
        }
    }

    /// Forgets a listener (its stream was dropped, or its AddWatch failed).
    pub(crate) fn unlisten(&mut self, ticket: &ListenerTicket) {
        let key = (ticket.path.clone(), ticket.mode);
        if let Some(ls) = self.persistent.get_mut(&key) {
            ls.retain(|l| l.id != ticket.id);
            if ls.is_empty() {
                self.persistent.remove(&key);
            }
        }
    }

    /// Delivers one event from the stream to the watchers of the registration
    /// that fired it.
    pub(crate) fn route(&mut self, event: &WatchedEvent, watcher: WatcherType, watch_path: &str) {
        let watch_path = if watch_path.is_empty() { event.path.as_str() } else { watch_path };
        match watcher {
            // Fired on reconnect: for the kind of waiter that was listed.
            WatcherType::Data if event.zxid == 0 => {
                let kind = if event.kind == EventType::NodeCreated { OneShot::Exist } else { OneShot::Data };
                self.fire_one_shot(watch_path, kind, event);
            }
            WatcherType::Data => {
                self.fire_one_shot(watch_path, OneShot::Data, event);
                self.fire_one_shot(watch_path, OneShot::Exist, event);
            }
            WatcherType::Children => self.fire_one_shot(watch_path, OneShot::Child, event),
            WatcherType::Persistent => self.fire_listeners(watch_path, AddWatchMode::Persistent, event),
            WatcherType::PersistentRecursive => {
                self.fire_listeners(watch_path, AddWatchMode::PersistentRecursive, event)
            }
            // A server that doesn't say which registration fired: ZooKeeper's
            // client-side rules decide who hears it.
            WatcherType::Any => {
                let path = event.path.as_str();
                match event.kind {
                    EventType::NodeCreated | EventType::NodeDataChanged => {
                        self.fire_one_shot(path, OneShot::Data, event);
                        self.fire_one_shot(path, OneShot::Exist, event);
                    }
                    EventType::NodeChildrenChanged => self.fire_one_shot(path, OneShot::Child, event),
                    EventType::NodeDeleted => {
                        self.fire_one_shot(path, OneShot::Data, event);
                        self.fire_one_shot(path, OneShot::Exist, event);
                        self.fire_one_shot(path, OneShot::Child, event);
                    }
                    _ => {}
                }
                self.fire_listeners(path, AddWatchMode::Persistent, event);
                if event.kind != EventType::NodeChildrenChanged {
                    for p in ancestors_and_self(path) {
                        self.fire_listeners(&p, AddWatchMode::PersistentRecursive, event);
                    }
                }
            }
        }
    }

    /// Completes the armed waiters of a key (the server's one-shot
    /// registration is gone once it fired) and buffers for the pending ones.
    fn fire_one_shot(&mut self, path: &str, kind: OneShot, event: &WatchedEvent) {
        let key = (path.to_owned(), kind);
        let Some(waiters) = self.one_shot.remove(&key) else {
            return;
        };
        let mut pending = Vec::new();
        for mut w in waiters {
            match w.buffered.as_mut() {
                Some(buf) => {
                    buf.push((event.clone(), self.attach_zxid));
                    pending.push(w);
                }
                None => {
                    let _ = w.tx.send(Ok(event.clone()));
                }
            }
        }
        if !pending.is_empty() {
            self.one_shot.insert(key, pending);
        }
    }

    fn fire_listeners(&mut self, path: &str, mode: AddWatchMode, event: &WatchedEvent) {
        let key = (path.to_owned(), mode);
        let Some(listeners) = self.persistent.get_mut(&key) else {
            return;
        };
        listeners.retain_mut(|l| match l.buffered.as_mut() {
            Some(buf) => {
                buf.push(event.clone());
                true
            }
            // A receiver that is gone stops counting as a watcher.
            None => l.tx.send(event.clone()).is_ok(),
        });
        if listeners.is_empty() {
            self.persistent.remove(&key);
        }
    }

    /// `remove_watches` succeeded on the server: the removed watchers hear
    /// ZooKeeper's `*WatchRemoved` event; persistent streams then end.
    pub(crate) fn removed(&mut self, path: &str, which: WatcherType) {
        let removed = |kind| WatchedEvent { kind, path: path.to_owned(), zxid: 0 };
        let one_shot: &[(OneShot, EventType)] = match which {
            WatcherType::Data => {
                &[(OneShot::Data, EventType::DataWatchRemoved), (OneShot::Exist, EventType::DataWatchRemoved)]
            }
            WatcherType::Children => &[(OneShot::Child, EventType::ChildWatchRemoved)],
            WatcherType::Any => &[
                (OneShot::Data, EventType::DataWatchRemoved),
                (OneShot::Exist, EventType::DataWatchRemoved),
                (OneShot::Child, EventType::ChildWatchRemoved),
            ],
            WatcherType::Persistent | WatcherType::PersistentRecursive => &[],
        };
        for (kind, event) in one_shot {
            for w in self.one_shot.remove(&(path.to_owned(), *kind)).unwrap_or_default() {
                let _ = w.tx.send(Ok(removed(*event)));
            }
        }
        let modes: &[AddWatchMode] = match which {
            WatcherType::Persistent => &[AddWatchMode::Persistent],
            WatcherType::PersistentRecursive => &[AddWatchMode::PersistentRecursive],
            WatcherType::Any => &[AddWatchMode::Persistent, AddWatchMode::PersistentRecursive],
            WatcherType::Data | WatcherType::Children => &[],
        };
        for mode in modes {
            for l in self.persistent.remove(&(path.to_owned(), *mode)).unwrap_or_default() {
                // Dropping the sender after this ends the stream.
                let _ = l.tx.send(removed(EventType::PersistentWatchRemoved));
            }
        }
    }

    /// What a reconnect must re-register: every key someone still waits on
    /// (pending ones too: their read may have registered on the member the
    /// session just left). Waiters whose `Watch` was dropped are forgotten here.
    pub(crate) fn lists(&mut self) -> WatchLists {
        self.one_shot.retain(|_, ws| {
            ws.retain(|w| !w.tx.is_closed());
            !ws.is_empty()
        });
        self.persistent.retain(|_, ls| {
            ls.retain(|l| !l.tx.is_closed());
            !ls.is_empty()
        });
        let mut lists = WatchLists::default();
        for (path, kind) in self.one_shot.keys() {
            let list = match kind {
                OneShot::Data => &mut lists.data,
                OneShot::Exist => &mut lists.exist,
                OneShot::Child => &mut lists.child,
            };
            list.push(path.clone());
        }
        for (path, mode) in self.persistent.keys() {
            match mode {
                AddWatchMode::Persistent => lists.persistent.push(path.clone()),
                AddWatchMode::PersistentRecursive => lists.persistent_recursive.push(path.clone()),
            }
        }
        lists
    }

    /// The session is over: every `Watch` fails with `error`, every stream
    /// ends, and later registrations fail with it too.
    pub(crate) fn end(&mut self, error: Error) {
        for (_, waiters) in std::mem::take(&mut self.one_shot) {
            for w in waiters {
                let _ = w.tx.send(Err(error.clone()));
            }
        }
        self.persistent.clear();
        self.ended.get_or_insert(error);
    }

    /// How many watchers wait (one-shot, persistent), for tests and `Debug`.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.one_shot.values().map(Vec::len).sum(), self.persistent.values().map(Vec::len).sum())
    }
}

/// `/a/b` → `/a/b`, `/a`, `/`.
fn ancestors_and_self(path: &str) -> Vec<String> {
    let mut out = vec![path.to_owned()];
    let mut p = path;
    while p != "/" && !p.is_empty() {
        p = match p.rfind('/') {
            Some(0) => "/",
            Some(i) => &p[..i],
            None => break,
        };
        out.push(p.to_owned());
    }
    out
}

/// A one-shot waiter between its request and its reply: armed by the reply,
/// or cancelled when dropped without one (the request failed).
pub(crate) struct PendingWatch {
    registry: Arc<Mutex<Registry>>,
    ticket: Option<OneShotTicket>,
}

impl PendingWatch {
    pub(crate) fn enter(
        registry: &Arc<Mutex<Registry>>,
        path: &str,
        kind: OneShot,
    ) -> Result<(PendingWatch, Watch), Error> {
        let (ticket, watch) = registry.lock().watch(path, kind)?;
        Ok((PendingWatch { registry: registry.clone(), ticket: Some(ticket) }, watch))
    }

    /// See [`Registry::arm`].
    pub(crate) fn arm(mut self, kind: OneShot, seen_zxid: u64, read_zxid: u64) {
        if let Some(ticket) = self.ticket.take() {
            self.registry.lock().arm(&ticket, kind, seen_zxid, read_zxid);
        }
    }
}

impl Drop for PendingWatch {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.registry.lock().cancel(&ticket);
        }
    }
}

/// A persistent listener between its AddWatch and the reply.
pub(crate) struct PendingListener {
    registry: Arc<Mutex<Registry>>,
    /// `None` once armed.
    entry: Option<(ListenerTicket, mpsc::UnboundedReceiver<WatchedEvent>)>,
}

impl PendingListener {
    pub(crate) fn enter(
        registry: &Arc<Mutex<Registry>>,
        path: &str,
        mode: AddWatchMode,
    ) -> Result<PendingListener, Error> {
        let entry = registry.lock().listen(path, mode)?;
        Ok(PendingListener { registry: registry.clone(), entry: Some(entry) })
    }

    /// See [`Registry::arm_listener`].
    pub(crate) fn arm(mut self, seen_zxid: u64) -> WatchStream {
        let (ticket, rx) = self.entry.take().expect("a pending listener is armed once");
        self.registry.lock().arm_listener(&ticket, seen_zxid);
        WatchStream::new(rx, Arc::downgrade(&self.registry), ticket)
    }
}

impl Drop for PendingListener {
    fn drop(&mut self) {
        if let Some((ticket, _)) = self.entry.take() {
            self.registry.lock().unlisten(&ticket);
        }
    }
}

/// A one-shot watch: resolves to the first event of its kind on its node
/// (ZooKeeper's one-shot `Watcher`, as a future).
///
/// Returned by `Client::get_data_watch`, `Client::exists_watch` and
/// `Client::get_children_watch`. It survives reconnects to other members (the
/// client re-registers it, and a change missed meanwhile fires it with zxid 0).
/// It fails with SessionExpired if the session expires or is closed before the
/// event. Dropping it is fine: the server-side registration simply fires into
/// nothing, and a reconnect no longer carries it.
#[must_use = "a Watch does nothing unless awaited"]
#[derive(Debug)]
pub struct Watch {
    /// `None` once it completed.
    rx: Option<oneshot::Receiver<Outcome>>,
}

impl Future for Watch {
    type Output = Result<WatchedEvent, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(Err(Error::InvalidArgument("Watch polled after it completed".into())));
        };
        let outcome = match Pin::new(rx).poll(cx) {
            Poll::Ready(Ok(outcome)) => outcome,
            Poll::Ready(Err(_)) => {
                Err(Error::ConnectionLoss("the client and its session were dropped".into()))
            }
            Poll::Pending => return Poll::Pending,
        };
        self.rx = None;
        Poll::Ready(outcome)
    }
}

/// The events of a persistent watch (`Client::add_watch`), in zxid order, until
/// it is removed (`Client::remove_watches`: a last `PersistentWatchRemoved`
/// event, then the end) or the session ends (the stream just ends; see
/// `Client::session_state` for why).
///
/// Events queue up without bound while nobody polls, so none is ever lost
/// to a slow consumer. Dropping the stream stops the delivery; the server-side
/// registration stays until `remove_watches` or the session's next reconnect,
/// which no longer carries it.
#[must_use = "a WatchStream does nothing unless polled"]
pub struct WatchStream {
    rx: mpsc::UnboundedReceiver<WatchedEvent>,
    registry: Weak<Mutex<Registry>>,
    ticket: ListenerTicket,
}

impl WatchStream {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<WatchedEvent>,
        registry: Weak<Mutex<Registry>>,
        ticket: ListenerTicket,
    ) -> WatchStream {
        WatchStream { rx, registry, ticket }
    }

    /// The next event, or `None` once the watch is removed or the session is over.
    pub async fn next_event(&mut self) -> Option<WatchedEvent> {
        self.rx.recv().await
    }
}

impl Stream for WatchStream {
    type Item = WatchedEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.lock().unlisten(&self.ticket);
        }
    }
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("path", &self.ticket.path)
            .field("mode", &self.ticket.mode)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn ev(kind: EventType, path: &str, zxid: u64) -> WatchedEvent {
        WatchedEvent { kind, path: path.into(), zxid }
    }

    fn ready(w: &mut Watch) -> Option<Outcome> {
        w.now_or_never()
    }

    #[test]
    fn an_armed_watch_fires_once_and_every_waiter_on_the_key_hears_it() {
        let mut r = Registry::default();
        let (t1, mut w1) = r.watch("/a", OneShot::Data).unwrap();
        let (t2, mut w2) = r.watch("/a", OneShot::Data).unwrap();
        r.arm(&t1, OneShot::Data, 5, 5);
        r.arm(&t2, OneShot::Data, 5, 5);
        assert!(ready(&mut w1).is_none());
        r.route(&ev(EventType::NodeDataChanged, "/a", 7), WatcherType::Data, "/a");
        assert_eq!(ready(&mut w1), Some(Ok(ev(EventType::NodeDataChanged, "/a", 7))));
        assert_eq!(ready(&mut w2), Some(Ok(ev(EventType::NodeDataChanged, "/a", 7))));
        assert_eq!(r.counts(), (0, 0), "one-shot: nothing left to fire");
        // A second event (a stale duplicate) reaches nobody.
        r.route(&ev(EventType::NodeDataChanged, "/a", 8), WatcherType::Data, "/a");
        assert_eq!(r.lists(), WatchLists::default());
    }

    #[test]
    fn events_route_by_the_registration_that_fired() {
        let mut r = Registry::default();
        let (td, mut data) = r.watch("/a", OneShot::Data).unwrap();
        let (tc, mut child) = r.watch("/a", OneShot::Child).unwrap();
        let (te, mut exist) = r.watch("/a", OneShot::Exist).unwrap();
        r.arm(&td, OneShot::Data, 1, 1);
        r.arm(&tc, OneShot::Child, 1, 1);
        r.arm(&te, OneShot::Exist, 1, 1);
        let (tp, mut per) = r.listen("/a", AddWatchMode::Persistent).unwrap();
        let (tr, mut rec) = r.listen("/", AddWatchMode::PersistentRecursive).unwrap();
        r.arm_listener(&tp, 1);
        r.arm_listener(&tr, 1);

        r.route(&ev(EventType::NodeChildrenChanged, "/a", 2), WatcherType::Children, "/a");
        assert_eq!(ready(&mut child), Some(Ok(ev(EventType::NodeChildrenChanged, "/a", 2))));
        assert!(ready(&mut data).is_none() && ready(&mut exist).is_none());
        assert!(per.try_recv().is_err() && rec.try_recv().is_err());

        r.route(&ev(EventType::NodeDataChanged, "/a", 3), WatcherType::Persistent, "/a");
        r.route(&ev(EventType::NodeDataChanged, "/a", 3), WatcherType::PersistentRecursive, "/");
        r.route(&ev(EventType::NodeDataChanged, "/a", 3), WatcherType::Data, "/a");
        assert_eq!(per.try_recv().unwrap(), ev(EventType::NodeDataChanged, "/a", 3));
        assert_eq!(rec.try_recv().unwrap(), ev(EventType::NodeDataChanged, "/a", 3));
        // A data registration serves data and exists watchers alike.
        assert_eq!(ready(&mut data), Some(Ok(ev(EventType::NodeDataChanged, "/a", 3))));
        assert_eq!(ready(&mut exist), Some(Ok(ev(EventType::NodeDataChanged, "/a", 3))));

        // Persistent ones keep firing; a recursive one hears descendants.
        r.route(&ev(EventType::NodeCreated, "/a/b/c", 4), WatcherType::PersistentRecursive, "/");
        r.route(&ev(EventType::NodeDeleted, "/a", 5), WatcherType::Persistent, "/a");
        assert_eq!(rec.try_recv().unwrap(), ev(EventType::NodeCreated, "/a/b/c", 4));
        assert_eq!(per.try_recv().unwrap(), ev(EventType::NodeDeleted, "/a", 5));
        assert_eq!(r.counts(), (0, 2));
    }

    #[test]
    fn unattributed_events_follow_zookeepers_client_rules() {
        let mut r = Registry::default();
        let (td, mut data) = r.watch("/a/b", OneShot::Data).unwrap();
        let (tc, mut child) = r.watch("/a/b", OneShot::Child).unwrap();
        r.arm(&td, OneShot::Data, 0, 0);
        r.arm(&tc, OneShot::Child, 0, 0);
        let (tr, mut rec) = r.listen("/a", AddWatchMode::PersistentRecursive).unwrap();
        r.arm_listener(&tr, 0);
        r.route(&ev(EventType::NodeChildrenChanged, "/a/b", 9), WatcherType::Any, "");
        assert!(ready(&mut child).is_some());
        assert!(ready(&mut data).is_none());
        assert!(rec.try_recv().is_err(), "no NodeChildrenChanged for recursive watches");
        r.route(&ev(EventType::NodeDeleted, "/a/b", 10), WatcherType::Any, "");
        assert!(ready(&mut data).is_some());
        assert_eq!(rec.try_recv().unwrap().kind, EventType::NodeDeleted);
    }

    #[test]
    fn a_pending_waiter_takes_only_events_newer_than_its_read() {
        let mut r = Registry::default();
        // An older registration's event arrives while the read is in flight;
        // the read already shows that change (mzxid 7): not for this waiter.
        let (t, mut w) = r.watch("/a", OneShot::Data).unwrap();
        r.route(&ev(EventType::NodeDataChanged, "/a", 7), WatcherType::Data, "/a");
        assert!(ready(&mut w).is_none(), "pending waiters don't fire");
        r.arm(&t, OneShot::Data, 7, 7);
        assert!(ready(&mut w).is_none());
        r.route(&ev(EventType::NodeDataChanged, "/a", 9), WatcherType::Data, "/a");
        assert_eq!(ready(&mut w), Some(Ok(ev(EventType::NodeDataChanged, "/a", 9))));

        // The event for a change after the read beat the reply: it fires on arm.
        let (t, mut w) = r.watch("/a", OneShot::Data).unwrap();
        r.route(&ev(EventType::NodeDataChanged, "/a", 12), WatcherType::Data, "/a");
        r.arm(&t, OneShot::Data, 11, 11);
        assert_eq!(ready(&mut w), Some(Ok(ev(EventType::NodeDataChanged, "/a", 12))));

        // An event fired on reconnect (zxid 0, the stream attached at 50) is
        // news to a reply that read an older state ...
        r.attached(50);
        let (t, mut w) = r.watch("/a", OneShot::Child).unwrap();
        r.route(&ev(EventType::NodeChildrenChanged, "/a", 0), WatcherType::Children, "/a");
        r.arm(&t, OneShot::Child, 40, 45);
        assert!(ready(&mut w).is_some());
        assert_eq!(r.counts(), (0, 0));
        // ... not to one that read the attach's state or a later one (the
        // request was sent after the reconnect: it shows the change) ...
        let (t, mut w) = r.watch("/a", OneShot::Child).unwrap();
        r.route(&ev(EventType::NodeChildrenChanged, "/a", 0), WatcherType::Children, "/a");
        r.arm(&t, OneShot::Child, 40, 50);
        assert!(ready(&mut w).is_none());
        // ... and always to an armed waiter.
        r.route(&ev(EventType::NodeChildrenChanged, "/a", 0), WatcherType::Children, "/a");
        assert!(ready(&mut w).is_some());
        assert_eq!(r.counts(), (0, 0));
    }

    #[test]
    fn events_fired_on_reconnect_reach_the_kind_of_waiter_they_were_fired_for() {
        let mut r = Registry::default();
        let (td, mut data) = r.watch("/a", OneShot::Data).unwrap();
        let (te, mut exist) = r.watch("/a", OneShot::Exist).unwrap();
        r.arm(&td, OneShot::Data, 3, 3);
        r.arm(&te, OneShot::Exist, 4, 4);
        // The data list's NodeDeleted is not for the missing node's exists waiter.
        r.route(&ev(EventType::NodeDeleted, "/a", 0), WatcherType::Data, "/a");
        assert_eq!(ready(&mut data), Some(Ok(ev(EventType::NodeDeleted, "/a", 0))));
        assert!(ready(&mut exist).is_none());
        // The exists list's NodeCreated is not for a data waiter.
        let (td, mut data) = r.watch("/a", OneShot::Data).unwrap();
        r.arm(&td, OneShot::Data, 5, 5);
        r.route(&ev(EventType::NodeCreated, "/a", 0), WatcherType::Data, "/a");
        assert_eq!(ready(&mut exist), Some(Ok(ev(EventType::NodeCreated, "/a", 0))));
        assert!(ready(&mut data).is_none());
        // A live event fires the one data registration, so both kinds.
        let (te, mut exist) = r.watch("/a", OneShot::Exist).unwrap();
        r.arm(&te, OneShot::Data, 5, 5);
        r.route(&ev(EventType::NodeDataChanged, "/a", 6), WatcherType::Data, "/a");
        assert!(ready(&mut data).is_some() && ready(&mut exist).is_some());
    }

    #[test]
    fn an_exists_watch_settles_its_kind_on_arm() {
        let mut r = Registry::default();
        let (t, _w) = r.watch("/a", OneShot::Exist).unwrap();
        assert_eq!(r.lists().exist, vec!["/a".to_string()], "pending: re-registered as exists");
        r.arm(&t, OneShot::Data, 3, 3);
        let lists = r.lists();
        assert_eq!((lists.data, lists.exist), (vec!["/a".to_string()], vec![]));
    }

    #[test]
    fn persistent_listeners_buffer_until_armed_and_drop_older_events() {
        let mut r = Registry::default();
        let (t, mut rx) = r.listen("/p", AddWatchMode::Persistent).unwrap();
        r.route(&ev(EventType::NodeDataChanged, "/p", 3), WatcherType::Persistent, "/p");
        r.route(&ev(EventType::NodeDataChanged, "/p", 6), WatcherType::Persistent, "/p");
        assert!(rx.try_recv().is_err());
        r.arm_listener(&t, 4);
        assert_eq!(rx.try_recv().unwrap().zxid, 6);
        assert!(rx.try_recv().is_err());
        r.unlisten(&t);
        assert_eq!(r.counts(), (0, 0));
    }

    #[test]
    fn cancelled_and_dropped_watchers_leave_the_reconnect_lists() {
        let mut r = Registry::default();
        let (t1, _w1) = r.watch("/gone", OneShot::Data).unwrap();
        r.cancel(&t1);
        let (t2, w2) = r.watch("/dropped", OneShot::Child).unwrap();
        r.arm(&t2, OneShot::Child, 0, 0);
        drop(w2);
        let (t3, _w3) = r.watch("/kept", OneShot::Child).unwrap();
        r.arm(&t3, OneShot::Child, 0, 0);
        let (_t4, rx4) = r.listen("/r", AddWatchMode::PersistentRecursive).unwrap();
        let (_t5, _rx5) = r.listen("/p", AddWatchMode::Persistent).unwrap();
        let (_t6, _w6) = r.watch("/e", OneShot::Exist).unwrap();
        let (_t7, _w7) = r.watch("/d", OneShot::Data).unwrap();
        let (_t8, _w8) = r.watch("/d", OneShot::Data).unwrap();
        assert_eq!(
            r.lists(),
            WatchLists {
                data: vec!["/d".into()],
                exist: vec!["/e".into()],
                child: vec!["/kept".into()],
                persistent: vec!["/p".into()],
                persistent_recursive: vec!["/r".into()],
            }
        );
        drop(rx4);
        assert!(r.lists().persistent_recursive.is_empty());
    }

    #[test]
    fn removal_tells_the_removed_watchers() {
        let mut r = Registry::default();
        let (td, mut data) = r.watch("/a", OneShot::Data).unwrap();
        let (tc, mut child) = r.watch("/a", OneShot::Child).unwrap();
        r.arm(&td, OneShot::Data, 0, 0);
        r.arm(&tc, OneShot::Child, 0, 0);
        let (tp, mut per) = r.listen("/a", AddWatchMode::Persistent).unwrap();
        r.arm_listener(&tp, 0);
        assert_eq!(r.counts(), (2, 1));

        r.removed("/a", WatcherType::Data);
        assert_eq!(ready(&mut data).unwrap().unwrap().kind, EventType::DataWatchRemoved);
        assert!(ready(&mut child).is_none());
        r.removed("/a", WatcherType::Any);
        assert_eq!(ready(&mut child).unwrap().unwrap().kind, EventType::ChildWatchRemoved);
        assert_eq!(per.try_recv().unwrap().kind, EventType::PersistentWatchRemoved);
        assert!(matches!(per.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)));
        assert_eq!(r.counts(), (0, 0));
    }

    #[test]
    fn the_end_of_the_session_fails_every_watcher_and_later_registrations() {
        let mut r = Registry::default();
        let (t, mut w) = r.watch("/a", OneShot::Data).unwrap();
        r.arm(&t, OneShot::Data, 0, 0);
        let (_t, mut pending) = r.watch("/b", OneShot::Exist).unwrap();
        let (_l, mut rx) = r.listen("/c", AddWatchMode::Persistent).unwrap();
        let expired = Error::Zk { code: corral_proto::ErrorCode::SessionExpired, message: "x".into() };
        r.end(expired.clone());
        assert_eq!(ready(&mut w), Some(Err(expired.clone())));
        assert_eq!(ready(&mut pending), Some(Err(expired.clone())));
        assert!(matches!(rx.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)));
        assert_eq!(r.watch("/d", OneShot::Data).err(), Some(expired.clone()));
        assert!(r.listen("/d", AddWatchMode::Persistent).is_err());
    }

    #[test]
    fn a_dropped_stream_unregisters_itself() {
        let registry = Arc::new(Mutex::new(Registry::default()));
        let stream = PendingListener::enter(&registry, "/a", AddWatchMode::Persistent).unwrap().arm(0);
        assert_eq!(registry.lock().counts(), (0, 1));
        drop(stream);
        assert_eq!(registry.lock().counts(), (0, 0));
        // A failed request drops its pending entries.
        drop(PendingListener::enter(&registry, "/a", AddWatchMode::Persistent).unwrap());
        let (pending, _watch) = PendingWatch::enter(&registry, "/b", OneShot::Data).unwrap();
        assert_eq!(registry.lock().counts(), (1, 0));
        drop(pending);
        assert_eq!(registry.lock().counts(), (0, 0));
    }

    #[test]
    fn ancestors() {
        assert_eq!(ancestors_and_self("/a/b"), vec!["/a/b", "/a", "/"]);
        assert_eq!(ancestors_and_self("/"), vec!["/"]);
    }
}
