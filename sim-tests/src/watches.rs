//! The checker for watches, pure and independent of the simulator so it is unit-tested in the
//! normal build.
//!
//! A client with a session does one request at a time and, after every request (and while
//! idle), *drains* its watches: it polls every outstanding one-shot [`Watch`] and every
//! persistent stream without waiting, and writes down what it found. Its [`History`] is the
//! sequence of what it did and found: replies ([`Entry::Reply`]: what the reply proves the state
//! it reflects is at least, and the client's last seen zxid right after it), drain markers
//! ([`Entry::Drain`]) each followed by the events found in that drain ([`Entry::Event`]) and the
//! watches that failed ([`Entry::Failed`]).
//!
//! The client library delivers a watch event (completes the [`Watch`], queues it on the stream)
//! before it counts the stream message that carried it, and releases a reply only once the
//! count covers every message the member sent before the reply. So an event found in drain `k`
//! arrived after drain `k - 1`, which came after every reply before it. That gives, per session:
//!
//! - **(a) zxid order**: an event found in drain `k` has a zxid no lower than any event found
//!   in an earlier drain, and a persistent stream's events come in nondecreasing zxid order.
//! - **(b) a one-shot watch fires at most once**: every registration completes at most once,
//!   with an event of a kind it can fire for, on its own path, for a change after the state its
//!   read reflected; successive registrations of one slot (method and path) never get the same
//!   change; a persistent stream never gets the same event twice.
//! - **(c) never after a read that reflects a later state**: an event found in drain `k` is for
//!   a change newer than every zxid proven by a reply before drain `k - 1` (a read's mzxid,
//!   pzxid, czxid; a write's own zxid), and no older than the client's last seen zxid then (which
//!   also counts the members' reply headers and the zxid a re-attach started from).
//! - **(d) no lost watch** (with [`check`]'s `all_fired`): every one-shot registration completed,
//!   with an event or because its session ended. The scenario asks for it once every znode
//!   changed after the faults healed.
//!
//! Events fired on re-attach for changes missed while disconnected carry zxid 0: they take part
//! in (b) and (d), not in the zxid comparisons.
//!
//! [`Watch`]: corral_client::Watch

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use corral_client::EventType;

/// How a registration was made, as the reply settled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WatchKind {
    /// `get_data_watch`, or `exists_watch` on a node that existed: NodeDataChanged or
    /// NodeDeleted.
    Data,
    /// `exists_watch` on a missing node: NodeCreated.
    Created,
    /// `get_children_watch`: NodeChildrenChanged or NodeDeleted.
    Child,
    /// `add_watch(Persistent)`: every event on the path.
    Persistent,
    /// `add_watch(PersistentRecursive)`: every event on the path and below except
    /// NodeChildrenChanged.
    Recursive,
}

impl WatchKind {
    pub fn is_one_shot(self) -> bool {
        matches!(self, WatchKind::Data | WatchKind::Created | WatchKind::Child)
    }

    fn fires_for(self, kind: EventType) -> bool {
        use EventType as E;
        match self {
            WatchKind::Data => matches!(kind, E::NodeDataChanged | E::NodeDeleted),
            WatchKind::Created => kind == E::NodeCreated,
            WatchKind::Child => matches!(kind, E::NodeChildrenChanged | E::NodeDeleted),
            WatchKind::Persistent => {
                matches!(kind, E::NodeCreated | E::NodeDeleted | E::NodeDataChanged | E::NodeChildrenChanged)
            }
            WatchKind::Recursive => matches!(kind, E::NodeCreated | E::NodeDeleted | E::NodeDataChanged),
        }
    }
}

/// One registration whose reply came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Unique within the history.
    pub id: u64,
    /// The client call that made it (`get_data_watch`, `exists_watch`, ...): with the path, the
    /// slot that holds at most one outstanding registration at a time.
    pub method: &'static str,
    pub kind: WatchKind,
    pub path: String,
    /// The zxid of the state the read reflected, for the watched change (mzxid for data
    /// watches, pzxid for child watches), when the reply shows it.
    pub seen: Option<u64>,
}

/// An event as the client library delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub path: String,
    pub zxid: u64,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {} @{}", self.kind, self.path, self.zxid)
    }
}

/// What one session's client did and found, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A reply came back.
    Reply {
        /// The request, for messages.
        what: String,
        /// A zxid the reply proves the state it reflects is at or after (0 if none).
        reflects: u64,
        /// The client's last seen zxid right after the reply, before the next drain.
        last_zxid: u64,
        /// The watch the request registered.
        registered: Option<Registration>,
    },
    /// A drain: the entries up to the next `Drain` are what it found.
    Drain,
    /// A registration's event (a persistent one may have many).
    Event { watch: u64, event: Event },
    /// A one-shot registration failed (its session ended).
    Failed { watch: u64, error: String },
    /// Something for the reader of a failure (a session state change): not checked.
    Note(String),
}

/// One session's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Which client and session, for messages.
    pub name: String,
    pub entries: Vec<Entry>,
    /// The session ended (expired or closed) before the end of the run.
    pub ended: bool,
}

/// A persistent registration's last event zxid, and every (zxid, type code, path) it had.
type Stream = (u64, BTreeSet<(u64, i32, String)>);

/// Checks one session's history; with `all_fired`, also that no one-shot registration is still
/// waiting (see the module doc). Returns every violation found.
pub fn check(h: &History, all_fired: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut bad = |at: usize, what: String| out.push(format!("{} entry {at}: {what}", h.name));
    let mut regs: BTreeMap<u64, &Registration> = BTreeMap::new();
    let mut completed: BTreeSet<u64> = BTreeSet::new();
    // (c): what replies before the previous drain proved, and the last zxid then ...
    let (mut reflected, mut last) = (0u64, 0u64);
    // ... what replies between the two drains before this one proved (they count from this
    // drain on) ...
    let (mut previous_reflected, mut previous_last) = (0u64, 0u64);
    // ... and what replies since the last drain proved (they count from the next drain on).
    let (mut window_reflected, mut window_last) = (0u64, 0u64);
    // (a): the highest event zxid found in earlier drains, and in this one.
    let (mut earlier, mut this_drain) = (0u64, 0u64);
    // Per persistent registration: its last event's zxid and every event it had.
    let mut streams: BTreeMap<u64, Stream> = BTreeMap::new();
    // Per one-shot slot: the last nonzero zxid a registration of it completed with.
    let mut slots: BTreeMap<(&'static str, &str), (u64, u64)> = BTreeMap::new();
    for (at, entry) in h.entries.iter().enumerate() {
        match entry {
            Entry::Reply { what, reflects, last_zxid, registered } => {
                window_reflected = window_reflected.max(*reflects);
                window_last = window_last.max(*last_zxid);
                if let Some(r) = registered {
                    if regs.insert(r.id, r).is_some() {
                        bad(at, format!("registration {} made twice ({what})", r.id));
                    }
                }
            }
            Entry::Drain => {
                reflected = reflected.max(previous_reflected);
                last = last.max(previous_last);
                previous_reflected = std::mem::take(&mut window_reflected);
                previous_last = std::mem::take(&mut window_last);
                earlier = earlier.max(this_drain);
                this_drain = 0;
            }
            Entry::Note(_) => {}
            Entry::Failed { watch, error } => {
                if !completed.insert(*watch) {
                    bad(at, format!("registration {watch} failed ({error}) after it had completed"));
                }
                if !h.ended {
                    bad(at, format!("registration {watch} failed ({error}) but the session did not end"));
                }
            }
            Entry::Event { watch, event } => {
                let Some(reg) = regs.get(watch).copied() else {
                    bad(at, format!("event {event} for registration {watch}, which was never made"));
                    continue;
                };
                if !reg.kind.fires_for(event.kind) {
                    bad(at, format!("{event} fired {reg:?}, which does not fire for {:?}", event.kind));
                }
                let z = event.zxid;
                if reg.kind.is_one_shot() {
                    // (b)
                    if !completed.insert(*watch) {
                        bad(at, format!("one-shot {reg:?} fired again: {event}"));
                    }
                    if event.path != reg.path {
                        bad(at, format!("{event} fired {reg:?} on another path"));
                    }
                    if let Some(seen) = reg.seen {
                        if z != 0 && z <= seen {
                            bad(at, format!("{event} fired {reg:?}, whose read already reflected zxid {seen}"));
                        }
                    }
                    if z != 0 {
                        let slot = slots.entry((reg.method, reg.path.as_str())).or_insert((0, 0));
                        if z <= slot.0 {
                            bad(at, format!(
                                "{event} fired {reg:?}, but registration {} of the same slot already had zxid {}",
                                slot.1, slot.0
                            ));
                        }
                        *slot = (z, *watch);
                    }
                } else {
                    let under = event.path == reg.path
                        || (reg.kind == WatchKind::Recursive
                            && (reg.path == "/" || event.path.starts_with(&format!("{}/", reg.path))));
                    if !under {
                        bad(at, format!("{event} fired {reg:?}, which does not watch that path"));
                    }
                    let (stream_last, had) = streams.entry(*watch).or_default();
                    if z != 0 {
                        if z < *stream_last {
                            bad(at, format!("{event} on {reg:?} after an event of zxid {stream_last}"));
                        }
                        *stream_last = z;
                        if !had.insert((z, event.kind.code(), event.path.clone())) {
                            bad(at, format!("{event} delivered twice on {reg:?}"));
                        }
                    }
                }
                if z != 0 {
                    // (a)
                    if z < earlier {
                        bad(at, format!("{event} ({reg:?}) arrived after an event of zxid {earlier}"));
                    }
                    this_drain = this_drain.max(z);
                    // (c)
                    if z <= reflected {
                        bad(at, format!("{event} ({reg:?}) arrived after a reply that reflected zxid {reflected}"));
                    }
                    if z < last {
                        bad(at, format!("{event} ({reg:?}) arrived after the client had seen zxid {last}"));
                    }
                }
            }
        }
    }
    if all_fired {
        for (id, reg) in &regs {
            if reg.kind.is_one_shot() && !completed.contains(id) {
                out.push(format!("{}: {reg:?} never fired", h.name));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(reflects: u64, last_zxid: u64) -> Entry {
        Entry::Reply { what: "read".into(), reflects, last_zxid, registered: None }
    }

    fn reg(id: u64, method: &'static str, kind: WatchKind, path: &str, seen: Option<u64>) -> Entry {
        Entry::Reply {
            what: method.into(),
            reflects: seen.unwrap_or(0),
            last_zxid: seen.unwrap_or(0),
            registered: Some(Registration { id, method, kind, path: path.into(), seen }),
        }
    }

    fn ev(watch: u64, kind: EventType, path: &str, zxid: u64) -> Entry {
        Entry::Event { watch, event: Event { kind, path: path.into(), zxid } }
    }

    fn history(entries: Vec<Entry>) -> History {
        History { name: "c0".into(), entries, ended: false }
    }

    use EventType as E;

    #[test]
    fn a_clean_history_passes() {
        let h = history(vec![
            reg(1, "get_data_watch", WatchKind::Data, "/a", Some(5)),
            Entry::Drain,
            reg(2, "add_watch", WatchKind::Recursive, "/", None),
            Entry::Drain,
            reply(6, 9),
            Entry::Drain,
            // Same zxid on two registrations, and an event of a change the last reply reflects
            // that was found in the drain right after it.
            ev(1, E::NodeDataChanged, "/a", 9),
            ev(2, E::NodeDataChanged, "/a", 9),
            ev(2, E::NodeCreated, "/b/c", 10),
            Entry::Drain,
            reg(3, "get_data_watch", WatchKind::Data, "/a", Some(9)),
            Entry::Drain,
            // A re-attach fires what was missed with zxid 0.
            ev(3, E::NodeDataChanged, "/a", 0),
            Entry::Drain,
            reg(4, "exists_watch", WatchKind::Created, "/x", None),
            Entry::Drain,
            ev(4, E::NodeCreated, "/x", 12),
        ]);
        assert_eq!(check(&h, true), Vec::<String>::new());
    }

    #[test]
    fn events_out_of_zxid_order_are_caught() {
        let h = history(vec![
            reg(1, "get_data_watch", WatchKind::Data, "/a", Some(1)),
            reg(2, "get_data_watch", WatchKind::Data, "/b", Some(1)),
            Entry::Drain,
            ev(1, E::NodeDataChanged, "/a", 8),
            Entry::Drain,
            ev(2, E::NodeDataChanged, "/b", 7),
        ]);
        let v = check(&h, false);
        assert!(v.iter().any(|v| v.contains("after an event of zxid 8")), "{v:?}");
        let stream = history(vec![
            reg(1, "add_watch", WatchKind::Persistent, "/a", None),
            Entry::Drain,
            ev(1, E::NodeDataChanged, "/a", 8),
            ev(1, E::NodeDataChanged, "/a", 7),
        ]);
        assert!(check(&stream, false).iter().any(|v| v.contains("after an event of zxid 8")));
    }

    #[test]
    fn an_event_after_a_reply_that_reflected_it_is_caught() {
        let h = history(vec![
            reg(1, "get_data_watch", WatchKind::Data, "/a", Some(3)),
            Entry::Drain,
            reply(10, 10),
            Entry::Drain,
            Entry::Drain,
            ev(1, E::NodeDataChanged, "/a", 10),
        ]);
        let v = check(&h, false);
        assert!(v.iter().any(|v| v.contains("reflected zxid 10")), "{v:?}");
        // The last zxid alone: an older event is late, an equal one may not be (several events
        // share a zxid).
        let older = history(vec![
            reg(1, "get_data_watch", WatchKind::Data, "/a", Some(3)),
            Entry::Drain,
            reply(0, 10),
            Entry::Drain,
            Entry::Drain,
            ev(1, E::NodeDataChanged, "/a", 9),
        ]);
        assert!(check(&older, false).iter().any(|v| v.contains("had seen zxid 10")));
        let equal = history(vec![
            reg(1, "get_data_watch", WatchKind::Data, "/a", Some(3)),
            Entry::Drain,
            reply(0, 10),
            Entry::Drain,
            Entry::Drain,
            ev(1, E::NodeDataChanged, "/a", 10),
        ]);
        assert_eq!(check(&equal, false), Vec::<String>::new());
    }

    #[test]
    fn one_shot_violations_are_caught() {
        let twice = history(vec![
            reg(1, "get_data_watch", WatchKind::Data, "/a", Some(3)),
            Entry::Drain,
            ev(1, E::NodeDataChanged, "/a", 4),
            Entry::Drain,
            ev(1, E::NodeDataChanged, "/a", 5),
        ]);
        assert!(check(&twice, false).iter().any(|v| v.contains("fired again")));
        let stale = history(vec![
            reg(1, "get_data_watch", WatchKind::Data, "/a", Some(7)),
            Entry::Drain,
            ev(1, E::NodeDataChanged, "/a", 6),
        ]);
        assert!(check(&stale, false).iter().any(|v| v.contains("already reflected")));
        let same_change = history(vec![
            reg(1, "get_children_watch", WatchKind::Child, "/a", Some(3)),
            Entry::Drain,
            ev(1, E::NodeChildrenChanged, "/a", 8),
            Entry::Drain,
            reg(2, "get_children_watch", WatchKind::Child, "/a", None),
            Entry::Drain,
            ev(2, E::NodeChildrenChanged, "/a", 8),
        ]);
        assert!(check(&same_change, false).iter().any(|v| v.contains("same slot")));
        let wrong_kind = history(vec![
            reg(1, "exists_watch", WatchKind::Created, "/a", None),
            Entry::Drain,
            ev(1, E::NodeDataChanged, "/a", 8),
        ]);
        assert!(check(&wrong_kind, false).iter().any(|v| v.contains("does not fire")));
        let dup = history(vec![
            reg(1, "add_watch", WatchKind::Recursive, "/a", None),
            Entry::Drain,
            ev(1, E::NodeCreated, "/a/b", 8),
            ev(1, E::NodeCreated, "/a/b", 8),
            ev(1, E::NodeCreated, "/ab", 9),
        ]);
        let v = check(&dup, false);
        assert!(v.iter().any(|v| v.contains("delivered twice")), "{v:?}");
        assert!(v.iter().any(|v| v.contains("does not watch that path")), "{v:?}");
    }

    #[test]
    fn a_watch_that_never_fired_is_caught_when_all_must_have() {
        let mut h = history(vec![
            reg(1, "get_data_watch", WatchKind::Data, "/a", Some(3)),
            reg(2, "add_watch", WatchKind::Persistent, "/a", None),
        ]);
        assert!(check(&h, false).is_empty());
        assert!(check(&h, true)[0].contains("never fired"));
        h.entries.push(Entry::Failed { watch: 1, error: "SessionExpired".into() });
        assert!(check(&h, true)[0].contains("did not end"));
        h.ended = true;
        assert!(check(&h, true).is_empty());
    }
}
