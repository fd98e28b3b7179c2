"""kazoo against the Corral dev ensemble: CRUD with exact Stat checks, sequential and
ephemeral nodes, versions, transactions, watches, ACLs.

Every test runs against Corral and, with the same expectations, against Apache ZooKeeper 3.8
(the `[zookeeper]` variants), so what is asserted here is ZooKeeper's behaviour and not a guess
at it. Tests of what Corral deliberately does differently run against Corral only."""

from __future__ import annotations

import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.serialization import Create, Delete
from kazoo.protocol.states import EventType, KazooState
from kazoo.recipe.watchers import ChildrenWatch, DataWatch
from kazoo.security import CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, make_digest_acl

import support
from support import Recorder


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(params=["corral", "zookeeper"])
def zk_hosts(request):
    """Overrides conftest's: Corral's dev ensemble, or Apache ZooKeeper."""
    if request.param == "corral":
        return request.getfixturevalue("corral").hosts
    return request.getfixturevalue("apache_zk").hosts


corral_only = pytest.mark.parametrize("zk_hosts", ["corral"], indirect=True)


# ----- CRUD and Stat -----


def test_create_get_set_delete_with_exact_stats(zk, base):
    before = now_ms()
    path, st = zk.create(f"{base}/n", b"v1", include_data=True)
    after = now_ms()
    assert path == f"{base}/n"
    assert st.czxid == st.mzxid == st.pzxid > 0
    assert st.ctime == st.mtime and before - 5000 <= st.ctime <= after + 5000
    assert (st.version, st.cversion, st.aversion, st.ephemeralOwner, st.dataLength, st.numChildren) == (0, 0, 0, 0, 2, 0)
    assert zk.last_zxid >= st.czxid

    data, got = zk.get(path)
    assert data == b"v1" and got == st
    assert zk.exists(path) == st

    st2 = zk.set(path, b"value-two")
    assert st2.mzxid > st.mzxid and st2.czxid == st.czxid and st2.pzxid == st.pzxid
    assert st2.ctime == st.ctime and st2.mtime >= st.mtime
    assert (st2.version, st2.cversion, st2.dataLength) == (1, 0, 9)
    assert zk.get(path) == (b"value-two", st2)

    # A child moves the parent's cversion, numChildren and pzxid, nothing else.
    child, cst = zk.create(f"{path}/c", b"", include_data=True)
    parent = zk.exists(path)
    assert (parent.cversion, parent.numChildren, parent.pzxid) == (1, 1, cst.czxid)
    assert (parent.version, parent.mzxid, parent.dataLength) == (1, st2.mzxid, 9)
    children, pst = zk.get_children(path, include_data=True)
    assert children == ["c"] and pst == parent

    # Deleting it: cversion counts deletes too (ZooKeeper: 2 * creates - children).
    zk.delete(child)
    parent2 = zk.exists(path)
    assert (parent2.cversion, parent2.numChildren) == (2, 0)
    assert parent2.pzxid > cst.czxid
    assert parent2.mzxid == st2.mzxid

    # setACL moves aversion only.
    zk.add_auth("digest", "u:p")
    st3 = zk.set_acls(path, READ_ACL_UNSAFE + [make_digest_acl("u", "p", all=True)])
    assert (st3.aversion, st3.version, st3.mzxid) == (1, 1, st2.mzxid)
    acl, ast = zk.get_acls(path)
    assert ast == st3
    assert [(a.perms, a.id.scheme) for a in acl] == [(1, "world"), (31, "digest")]
    zk.set_acls(path, OPEN_ACL_UNSAFE)

    zk.delete(path)
    assert zk.exists(path) is None
    with pytest.raises(NoNodeError):
        zk.get(path)
    with pytest.raises(NoNodeError):
        zk.delete(path)
    with pytest.raises(NoNodeError):
        zk.set(path, b"x")


def test_create_errors_and_makepath(zk, base):
    zk.create(f"{base}/a", b"")
    with pytest.raises(NodeExistsError):
        zk.create(f"{base}/a", b"")
    with pytest.raises(NoNodeError):
        zk.create(f"{base}/missing/child", b"")
    created = zk.create(f"{base}/x/y/z", b"deep", makepath=True)
    assert created == f"{base}/x/y/z"
    assert zk.get(created)[0] == b"deep"
    with pytest.raises(NotEmptyError):
        zk.delete(f"{base}/x")
    zk.delete(f"{base}/x", recursive=True)
    assert zk.exists(f"{base}/x") is None
    # Invalid paths and system nodes. (kazoo itself drops a trailing "/" and collapses "//";
    # the raw requests get past that.)
    with pytest.raises(BadArgumentsError):
        zk.create(f"{base}/a\u0001", b"")
    with pytest.raises(BadArgumentsError):
        support.call(zk, Create(f"{base}/a/", b"", OPEN_ACL_UNSAFE, 0))
    # ZooKeeper looks the parent up before it validates the whole path.
    with pytest.raises(NoNodeError):
        support.call(zk, Create(f"{base}//a", b"", OPEN_ACL_UNSAFE, 0))
    with pytest.raises(NoNodeError):
        support.call(zk, Delete(f"{base}/a/", -1))
    with pytest.raises(NoNodeError):
        zk.get(f"{base}/a\u0001")
    with pytest.raises(BadArgumentsError):
        zk.delete("/zookeeper")
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]


@corral_only
def test_data_size_limit(zk, base):
    """ZooKeeper drops the connection of a packet over jute.maxbuffer (1 MiB - 1 byte by
    default, path and headers included); Corral takes data up to 1 MiB and refuses more with
    BadArguments on that request alone."""
    big = b"x" * (1024 * 1024)
    zk.create(f"{base}/big", big)
    data, st = zk.get(f"{base}/big")
    assert data == big and st.dataLength == len(big)
    # Over the limit: a clean error on this request, the session carries on.
    with pytest.raises(BadArgumentsError):
        zk.set(f"{base}/big", big + b"!")
    assert zk.get(f"{base}/big")[1].version == 0
    assert zk.exists(base) is not None


# ----- sequential and ephemeral -----


def test_sequential_names_come_from_the_parent_create_count(zk, base):
    names = [zk.create(f"{base}/job-", b"", sequence=True) for _ in range(3)]
    assert names == [f"{base}/job-{i:010d}" for i in range(3)]
    zk.create(f"{base}/plain", b"")  # counts too
    zk.delete(names[1])  # a delete does not move the counter
    assert zk.create(f"{base}/job-", b"", sequence=True) == f"{base}/job-0000000004"
    # An empty prefix: the name is just the number.
    assert zk.create(f"{base}/", b"", sequence=True) == f"{base}/0000000005"
    parent = zk.exists(base)
    assert (parent.numChildren, parent.cversion) == (5, 7)


def test_ephemeral_nodes_belong_to_their_session(clients, base):
    owner = clients()
    other = clients()
    path = owner.create(f"{base}/eph", b"mine", ephemeral=True)
    other.sync(path)  # another member may serve `other`: catch up with the leader first
    st = other.exists(path)
    assert st is not None and st.ephemeralOwner == owner.client_id[0] != 0
    seq = owner.create(f"{base}/eseq-", b"", ephemeral=True, sequence=True)
    assert seq == f"{base}/eseq-0000000001"
    with pytest.raises(NoChildrenForEphemeralsError):
        other.create(f"{path}/child", b"")
    # Another session may delete it (ephemerality is about lifetime, not ownership).
    other.delete(seq)
    # Closing the session removes what is left, at once.
    gone = Recorder()
    assert other.exists(path, watch=gone) is not None
    owner.stop()
    owner.close()
    events = gone.wait_for(1)
    assert [(e.type, e.path) for e in events] == [(EventType.DELETED, path)]
    assert other.exists(path) is None
    assert other.get_children(base) == []


def test_containers_and_ttl_nodes_are_swept(zk, base):
    """A container goes once its last child is gone (never before it had one); a TTL node goes
    once it has had no children and no change for its TTL. Both report ephemeralOwner 0."""
    path, st = support.call(zk, support.CreateContainer(f"{base}/box", b"", OPEN_ACL_UNSAFE, 4))
    assert path == f"{base}/box" and st.ephemeralOwner == 0
    never_used = support.call(zk, support.CreateContainer(f"{base}/unused", b"", OPEN_ACL_UNSAFE, 4))[0]
    with pytest.raises(BadArgumentsError):
        support.call(zk, support.DeleteContainer(never_used))  # the server's own op
    zk.create(f"{path}/item", b"")
    zk.delete(f"{path}/item")
    support.wait_until(lambda: zk.exists(path) is None, 15, 0.1, what="the empty container to go")
    assert zk.exists(never_used) is not None

    ttl_path, tst = support.call(zk, support.CreateTTL(f"{base}/ttl", b"t", OPEN_ACL_UNSAFE, 5, 500))
    assert ttl_path == f"{base}/ttl" and tst.ephemeralOwner == 0
    seq_path = support.call(zk, support.CreateTTL(f"{base}/tseq-", b"", OPEN_ACL_UNSAFE, 6, 500))[0]
    assert seq_path == f"{base}/tseq-0000000003"
    busy = support.call(zk, support.CreateTTL(f"{base}/busy", b"", OPEN_ACL_UNSAFE, 5, 500))[0]
    zk.create(f"{busy}/child", b"")
    support.wait_until(lambda: zk.exists(ttl_path) is None and zk.exists(seq_path) is None, 15, 0.1,
                       what="expired TTL nodes to go")
    assert zk.exists(busy) is not None, "a TTL node with children stays"
    with pytest.raises(BadArgumentsError):
        support.call(zk, support.CreateTTL(f"{base}/zero", b"", OPEN_ACL_UNSAFE, 5, 0))
    with pytest.raises(BadArgumentsError):
        # TTL through a plain create: ZooKeeper wants createTTL for it.
        support.call(zk, Create(f"{base}/plain-ttl", b"", OPEN_ACL_UNSAFE, 5))


# ----- versions -----


def test_conditional_updates_with_versions(zk, base):
    path = zk.create(f"{base}/v", b"0")
    with pytest.raises(BadVersionError):
        zk.set(path, b"x", version=1)
    st = zk.set(path, b"1", version=0)
    assert st.version == 1
    st = zk.set(path, b"2", version=-1)
    assert st.version == 2
    with pytest.raises(BadVersionError):
        zk.delete(path, version=1)
    with pytest.raises(BadVersionError):
        zk.set_acls(path, OPEN_ACL_UNSAFE, version=3)
    assert zk.set_acls(path, OPEN_ACL_UNSAFE, version=0).aversion == 1
    assert zk.get(path) == (b"2", zk.exists(path))
    zk.delete(path, version=2)
    assert zk.exists(path) is None


# ----- transactions -----


def test_transaction_success_gives_per_op_results(zk, base):
    zk.create(f"{base}/existing", b"old")
    zk.create(f"{base}/doomed", b"")
    t = zk.transaction()
    t.create(f"{base}/new", b"n")
    t.create(f"{base}/seq-", b"", sequence=True)
    t.set_data(f"{base}/existing", b"new", version=0)
    t.check(f"{base}/new", 0)
    t.delete(f"{base}/doomed")
    results = t.commit()
    assert results[0] == f"{base}/new"
    assert results[1] == f"{base}/seq-0000000003"
    assert results[2].version == 1 and results[2].dataLength == 3
    assert results[3:] == [True, True]
    assert zk.get(f"{base}/existing")[0] == b"new"
    assert zk.exists(f"{base}/doomed") is None
    # All ops share one zxid.
    assert zk.exists(f"{base}/new").czxid == results[2].mzxid


def test_failed_transaction_changes_nothing(zk, base):
    zk.create(f"{base}/a", b"a")
    before = zk.exists(base)
    t = zk.transaction()
    t.create(f"{base}/b", b"")
    t.set_data(f"{base}/a", b"changed", version=5)
    t.delete(f"{base}/a")
    results = t.commit()
    assert [type(r) for r in results] == [RolledBackError, BadVersionError, RuntimeInconsistency]
    assert zk.exists(f"{base}/b") is None
    assert zk.get(f"{base}/a")[0] == b"a"
    assert zk.exists(base) == before
    # A failure on the first op: nothing before it.
    t = zk.transaction()
    t.check(f"{base}/missing", 0)
    t.create(f"{base}/c", b"")
    results = t.commit()
    assert [type(r) for r in results] == [NoNodeError, RuntimeInconsistency]
    assert zk.exists(f"{base}/c") is None


# ----- watches -----


def test_raw_watches_fire_exactly_once(clients, base):
    zk = clients()
    writer = clients()
    path = zk.create(f"{base}/w", b"0")
    data_w, child_w, exist_w, missing_w = Recorder(), Recorder(), Recorder(), Recorder()
    zk.get(path, watch=data_w)
    zk.get_children(path, watch=child_w)
    zk.exists(path, watch=exist_w)
    assert zk.exists(f"{base}/later", watch=missing_w) is None

    writer.set(path, b"1")
    writer.set(path, b"2")  # the watch is spent: no second event
    writer.create(f"{path}/kid", b"")
    writer.create(f"{path}/kid2", b"")
    writer.create(f"{base}/later", b"")
    writer.delete(f"{base}/later")

    assert [(e.type, e.path) for e in data_w.wait_for(1)] == [(EventType.CHANGED, path)]
    assert [(e.type, e.path) for e in child_w.wait_for(1)] == [(EventType.CHILD, path)]
    assert [(e.type, e.path) for e in missing_w.wait_for(1)] == [(EventType.CREATED, f"{base}/later")]
    for r in (data_w, child_w, missing_w):
        assert len(r.settle(zk)) == 1, r.events
    # exists on an existing node is a data watch: it fired with the data watch above.
    assert [(e.type, e.path) for e in exist_w.settle(zk)] == [(EventType.CHANGED, path)]
    assert exist_w.events[0].state == KazooState.CONNECTED

    # A delete fires data and child watches once each; the parent's child watch too.
    d2, c2, parent_c = Recorder(), Recorder(), Recorder()
    zk.get(f"{path}/kid", watch=d2)
    zk.get_children(f"{path}/kid", watch=c2)
    zk.get_children(path, watch=parent_c)
    writer.delete(f"{path}/kid")
    assert [(e.type, e.path) for e in d2.wait_for(1)] == [(EventType.DELETED, f"{path}/kid")]
    assert [(e.type, e.path) for e in c2.wait_for(1)] == [(EventType.DELETED, f"{path}/kid")]
    assert [(e.type, e.path) for e in parent_c.wait_for(1)] == [(EventType.CHILD, path)]
    for r in (d2, c2, parent_c):
        assert len(r.settle(zk)) == 1


def test_data_watch_and_children_watch_recipes(clients, base):
    zk = clients()
    writer = clients()
    path = writer.create(f"{base}/dw", b"first")
    # `zk` may be served by another member that has not applied the create yet (ZooKeeper
    # promises no cross-session read-your-writes without a sync); ChildrenWatch stops for good
    # on NoNode, so catch up first.
    zk.sync(path)
    seen_data, seen_children = [], []
    lock = threading.Lock()

    @DataWatch(zk, path)
    def on_data(data, stat):
        with lock:
            seen_data.append((data, stat.version if stat else None))

    @ChildrenWatch(zk, path)
    def on_children(children):
        with lock:
            seen_children.append(sorted(children))

    support.wait_until(lambda: seen_data and seen_children, 10, what="initial calls")
    writer.set(path, b"second")
    support.wait_until(lambda: (b"second", 1) in seen_data, 10, what="DataWatch change")
    writer.create(f"{path}/a", b"")
    writer.create(f"{path}/b", b"")
    support.wait_until(lambda: seen_children and seen_children[-1] == ["a", "b"], 10, what="ChildrenWatch")
    writer.delete(f"{path}/a")
    support.wait_until(lambda: seen_children[-1] == ["b"], 10, what="ChildrenWatch after delete")
    assert seen_data[0] == (b"first", 0)
    # Every call saw a state at least as new as the one before (no going back in time).
    versions = [v for _, v in seen_data]
    assert versions == sorted(versions)


def test_persistent_and_recursive_watches(clients, base):
    # One client per mode: ZooKeeper 3.8.0 keeps one mode per (connection, path), the later
    # addWatch replacing the earlier (ZOOKEEPER-4466).
    zk = clients()
    zk_recursive = clients()
    writer = clients()
    base = f"{base}/p"
    persistent, recursive = Recorder(), Recorder()
    support.add_watch(zk, base, persistent, support.PERSISTENT)
    support.add_watch(zk_recursive, base, recursive, support.PERSISTENT_RECURSIVE)
    writer.create(base, b"")
    writer.set(base, b"1")
    writer.create(f"{base}/a", b"")
    writer.create(f"{base}/a/b", b"")
    writer.set(f"{base}/a/b", b"x")
    writer.set(base, b"2")
    writer.delete(f"{base}/a/b")
    writer.delete(f"{base}/a")
    writer.delete(base)
    p = [(e.type, e.path) for e in persistent.wait_for(6)]
    r = [(e.type, e.path) for e in recursive.wait_for(9)]
    assert p == [
        (EventType.CREATED, base),
        (EventType.CHANGED, base),
        (EventType.CHILD, base),
        (EventType.CHANGED, base),
        (EventType.CHILD, base),
        (EventType.DELETED, base),
    ]
    assert r == [
        (EventType.CREATED, base),
        (EventType.CHANGED, base),
        (EventType.CREATED, f"{base}/a"),
        (EventType.CREATED, f"{base}/a/b"),
        (EventType.CHANGED, f"{base}/a/b"),
        (EventType.CHANGED, base),
        (EventType.DELETED, f"{base}/a/b"),
        (EventType.DELETED, f"{base}/a"),
        (EventType.DELETED, base),
    ]
    # Persistent: still there after firing.
    writer.create(base, b"again")
    assert persistent.wait_for(7)[-1].type == EventType.CREATED
    assert recursive.wait_for(10)[-1].type == EventType.CREATED
    assert len(persistent.settle(zk)) == 7 and len(recursive.settle(zk_recursive)) == 10
    writer.delete(base)


@corral_only
def test_persistent_watch_can_be_removed(zk, clients, base):
    writer = clients()
    rec = Recorder()
    support.add_watch(zk, base, rec, support.PERSISTENT_RECURSIVE)
    writer.create(f"{base}/one", b"")
    rec.wait_for(1)
    # ZooKeeper 3.9's removeWatches for persistent watches (3.8 answers MarshallingError).
    support.remove_persistent_watch(zk, base, support.PERSISTENT_RECURSIVE)
    writer.create(f"{base}/two", b"")
    assert [(e.type, e.path) for e in rec.settle(zk)] == [(EventType.CREATED, f"{base}/one")]


# ----- ACLs -----


def test_digest_acls_and_auth(clients, base):
    alice = clients()
    alice.add_auth("digest", "alice:secret")
    anon = clients()
    alice_again = clients(auth_data=[("digest", "alice:secret")])
    bob = clients(auth_data=[("digest", "bob:pw")])

    path = alice.create(f"{base}/private", b"secret data", acl=[make_digest_acl("alice", "secret", all=True)])
    for c in (anon, alice_again, bob):
        c.sync(base)
    assert alice.get(path)[0] == b"secret data"
    assert alice_again.get(path)[0] == b"secret data"
    for c in (anon, bob):
        with pytest.raises(NoAuthError):
            c.get(path)
        with pytest.raises(NoAuthError):
            c.set(path, b"x")
        with pytest.raises(NoAuthError):
            c.get_children(path)
        with pytest.raises(NoAuthError):
            c.create(f"{path}/kid", b"")
        with pytest.raises(NoAuthError):
            c.get_acls(path)
        # exists checks no ACL.
        assert c.exists(path).dataLength == 11

    # auth scheme: the creator's identities.
    mine = alice.create(f"{base}/mine", b"", acl=CREATOR_ALL_ACL)
    acl, _ = alice.get_acls(mine)
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(31, "digest", make_digest_acl("alice", "secret").id.id)]
    with pytest.raises(InvalidACLError):
        anon.create(f"{base}/nobody", b"", acl=CREATOR_ALL_ACL)

    # READ without ADMIN: the ACL is readable, its digests are masked.
    shown = alice.create(f"{base}/shown", b"", acl=READ_ACL_UNSAFE + [make_digest_acl("alice", "secret", admin=True)])
    anon.sync(shown)
    acl, _ = anon.get_acls(shown)
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(1, "world", "anyone"), (16, "digest", "alice:x")]
    acl, _ = alice.get_acls(shown)
    assert acl[1].id.id == make_digest_acl("alice", "secret").id.id
    with pytest.raises(NoAuthError):
        anon.set_acls(shown, OPEN_ACL_UNSAFE)
    assert alice.set_acls(shown, OPEN_ACL_UNSAFE).aversion == 1

    # Watches report only what the watcher may read.
    seen = Recorder()
    anon_watch = anon.exists(path, watch=seen)
    assert anon_watch is not None
    alice.set(path, b"changed")
    alice.delete(path)
    assert seen.settle(anon, quiet=0.5) == []


def test_auth_schemes(clients):
    """digest takes any string (the user is what precedes the first ':'), ip authenticates the
    connection's own address, anything else fails the connection."""
    c = clients()
    c.add_auth("digest", "nocolon")
    c.add_auth("digest", "a:b:c")
    c.add_auth("ip", "10.9.8.7")
    assert sorted(support.call(c, support.WhoAmI())) == [("digest", "a"), ("digest", "nocolon"), ("ip", "127.0.0.1")]
    assert c.connected
    bad = clients()
    with pytest.raises(AuthFailedError):
        bad.add_auth("world", "anyone")
    assert not bad.connected
