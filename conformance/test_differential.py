"""Differential test: the same randomized operation sequences, through kazoo, against Apache
ZooKeeper 3.8 and against Corral, must give identical results.

The two servers run in lockstep: every operation is applied to both and the normalized
results (return values, exception types, Stat fields, watch events) are compared before the
next one is chosen, so a failure names the first operation that differs. Compared Stat fields:
version, cversion, aversion, dataLength, numChildren, whose the ephemeralOwner is (none, session
A, session B, container), and whether mzxid/pzxid still equal czxid; zxid and time values are not
compared (they differ by construction).
"""

from __future__ import annotations

import os
import random
import threading

import pytest
from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.serialization import (
    Create,
    Delete,
    Exists,
    GetChildren,
    GetData,
    SetData,
    Transaction,
)
from kazoo.protocol.states import Callback
from kazoo.protocol.states import ZnodeStat
from kazoo.security import (
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    make_digest_acl,
)

import support

# More with CONFORMANCE_DIFF_SEEDS=N / CONFORMANCE_DIFF_OPS=M (the default keeps the suite short).
SEEDS = list(range(1, 1 + int(os.environ.get("CONFORMANCE_DIFF_SEEDS", "8"))))
OPS_PER_SEED = int(os.environ.get("CONFORMANCE_DIFF_OPS", "200"))
NAMES = ["a", "b", "c"]
CONTAINER_OWNER = -(2**63)

ACLS = {
    "open": OPEN_ACL_UNSAFE,
    "read": READ_ACL_UNSAFE,
    "creator": CREATOR_ALL_ACL,
    "alice": [make_digest_acl("alice", "secret", all=True)],
    "bob-read": [make_digest_acl("bob", "pw", read=True), make_digest_acl("alice", "secret", admin=True)],
    "world-read-alice-admin": READ_ACL_UNSAFE + [make_digest_acl("alice", "secret", admin=True)],
}


class Side:
    """One server: client A (authenticated as digest alice:secret) and client B (no auth)."""

    def __init__(self, name: str, hosts: str):
        self.name = name
        self.a = KazooClient(hosts=hosts, timeout=10)
        self.b = KazooClient(hosts=hosts, timeout=10)
        self.a.start(timeout=20)
        self.b.start(timeout=20)
        self.a.add_auth("digest", "alice:secret")
        self.events: list[tuple] = []
        self.lock = threading.Lock()

    def client(self, who: str) -> KazooClient:
        return self.a if who == "A" else self.b

    def owner(self, owner: int):
        if owner == 0:
            return 0
        if owner == CONTAINER_OWNER:
            return "container"
        if self.a.client_id and owner == self.a.client_id[0]:
            return "A"
        if self.b.client_id and owner == self.b.client_id[0]:
            return "B"
        return f"other:{owner:#x}"

    def stat(self, s: ZnodeStat):
        return {
            "version": s.version,
            "cversion": s.cversion,
            "aversion": s.aversion,
            "dataLength": s.dataLength,
            "numChildren": s.numChildren,
            "ephemeralOwner": self.owner(s.ephemeralOwner),
            "mzxid==czxid": s.mzxid == s.czxid,
            "pzxid==czxid": s.pzxid == s.czxid,
        }

    def norm(self, value):
        if isinstance(value, ZnodeStat):
            return ("stat", self.stat(value))
        if isinstance(value, BaseException):
            return ("error", type(value).__name__)
        if isinstance(value, (list, tuple)):
            return tuple(self.norm(v) for v in value)
        if hasattr(value, "perms") and hasattr(value, "id"):
            return ("acl", value.perms, value.id.scheme, value.id.id)
        return value

    def watcher(self, label: str):
        def cb(event):
            with self.lock:
                self.events.append((label, event.type, event.path))

        return cb

    def run(self, op: tuple):
        kind, who, *args = op
        c = self.client(who)
        try:
            return self.norm(self._run(c, who, kind, args))
        except KazooTimeoutError:
            # No answer is never a result to compare: it is a failure on its own.
            raise AssertionError(f"{self.name}: no reply to {op!r}") from None
        except Exception as e:  # noqa: BLE001 - the exception type is the result
            return self.norm(e)

    def _run(self, c: KazooClient, who: str, kind: str, args: list):
        if kind == "create":
            path, data, acl, eph, seq, include_data = args
            return c.create(path, data, acl=ACLS[acl] if acl else None, ephemeral=eph, sequence=seq,
                            include_data=include_data)
        if kind == "container":
            (path,) = args
            return support.call(c, support.CreateContainer(path, b"", OPEN_ACL_UNSAFE, 4))
        if kind == "set":
            path, data, version = args
            return c.set(path, data, version=version)
        if kind == "delete":
            path, version = args
            return c.delete(path, version=version)
        if kind == "exists":
            path, watch = args
            return c.exists(path, watch=self.watcher(f"{who}-exists {path}") if watch else None)
        if kind == "get":
            path, watch = args
            return c.get(path, watch=self.watcher(f"{who}-data {path}") if watch else None)
        if kind == "children":
            path, watch, include_data = args
            r = c.get_children(path, watch=self.watcher(f"{who}-child {path}") if watch else None,
                               include_data=include_data)
            # ZooKeeper lists children in hash-set order, Corral sorted.
            return (sorted(r[0]), r[1]) if include_data else sorted(r)
        if kind == "get_acls":
            (path,) = args
            return c.get_acls(path)
        if kind == "set_acls":
            path, acl, version = args
            return c.set_acls(path, ACLS[acl], version=version)
        if kind == "sync":
            (path,) = args
            return c.sync(path)
        if kind == "all_children":
            (path,) = args
            return support.call(c, support.GetAllChildrenNumber(path))
        if kind == "ephemerals":
            (prefix,) = args
            # ZooKeeper lists them in hash-set order.
            return sorted(support.call(c, support.GetEphemerals(prefix)))
        if kind == "raw":
            # Straight to the server, past kazoo's own path normalization (which drops a
            # trailing "/" and collapses "//").
            name, path = args
            if name == "create":
                return support.call(c, Create(path, b"r", OPEN_ACL_UNSAFE, 0))
            if name == "create_container_flag":
                # The container flag on a plain create: ZooKeeper makes a persistent node.
                return support.call(c, Create(path, b"r", OPEN_ACL_UNSAFE, 4))
            if name == "create_seq":
                return support.call(c, Create(path, b"r", OPEN_ACL_UNSAFE, 2))
            if name == "delete":
                return support.call(c, Delete(path, -1))
            if name == "get":
                return support.call(c, GetData(path, None))
            if name == "children":
                return sorted(support.call(c, GetChildren(path, None)))
            if name == "exists":
                return support.call(c, Exists(path, None))
            if name == "set":
                return support.call(c, SetData(path, b"r", -1))
            if name == "multi":
                return support.call(c, Transaction([Create(f"{path}-ok", b"", OPEN_ACL_UNSAFE, 0),
                                                    Create(path, b"", OPEN_ACL_UNSAFE, 0)]))
            raise AssertionError(name)
        if kind == "whoami":
            return sorted(support.call(c, support.WhoAmI()))
        if kind == "ttl":
            path, flags, ttl = args
            return support.call(c, support.CreateTTL(path, b"t", OPEN_ACL_UNSAFE, flags, ttl))
        if kind == "multi_read":
            (reads,) = args
            ops = [GetData(p, None) if what == "data" else GetChildren(p, None) for what, p in reads]
            results = support.call(c, support.MultiRead(ops))
            return [sorted(r) if isinstance(r, list) else r for r in results]
        if kind == "remove_watches":
            path, watcher_type = args
            return support.call(c, support.RemoveWatches(path, watcher_type))
        if kind == "check_watches":
            path, watcher_type = args
            return support.call(c, support.CheckWatches(path, watcher_type))
        if kind == "multi":
            (ops,) = args
            t = c.transaction()
            for sub in ops:
                name, *sargs = sub
                if name == "create":
                    path, data, eph, seq = sargs
                    t.create(path, data, ephemeral=eph, sequence=seq)
                elif name == "delete":
                    path, version = sargs
                    t.delete(path, version=version)
                elif name == "set":
                    path, data, version = sargs
                    t.set_data(path, data, version=version)
                elif name == "check":
                    path, version = sargs
                    t.check(path, version)
            return t.commit()
        if kind == "close_b":
            self.b.stop()
            self.b.close()
            return "closed"
        raise AssertionError(kind)

    def settle(self) -> list[tuple]:
        """Every event for changes made so far, in arrival order: a sync on each live client
        makes the server deliver them first, and a marker through kazoo's callback queue makes
        sure their callbacks ran."""
        for c in (self.a, self.b):
            if not c.connected:
                continue
            c.sync("/")
            done = threading.Event()
            c.handler.dispatch_callback(Callback("watch", done.set, ()))
            assert done.wait(10), f"{self.name}: callback queue stuck"
        with self.lock:
            out, self.events = self.events, []
        # Per client, order-insensitive within one step: kazoo runs the callbacks one
        # notification fires in set order, and two connections' notifications interleave freely.
        return sorted(out)

    def dump(self, root: str) -> list:
        """The subtree: path, data, children and normalized stat of every node."""
        out = []
        stack = [root]
        while stack:
            p = stack.pop()
            st = self.a.exists(p)
            acl, _ = self.a.get_acls(p)
            try:
                data = self.a.get(p)[0]
            except Exception as e:  # noqa: BLE001 - NoAuth is part of the state
                data = type(e).__name__
            # get_children needs READ too; the ACL decides, so list through whoever may.
            try:
                kids = sorted(self.a.get_children(p))
            except Exception as e:  # noqa: BLE001
                kids = [type(e).__name__]
            out.append((p, data, tuple(kids), self.stat(st), self.norm(acl)))
            stack.extend(f"{p}/{k}" for k in reversed(kids) if not k[0].isupper())
        return out

    def close(self):
        for c in (self.a, self.b):
            try:
                c.stop()
                c.close()
            except Exception:  # noqa: BLE001
                pass


class Model:
    """What the generator believes exists (both servers agree, or the test has failed)."""

    def __init__(self, base: str):
        self.base = base
        self.nodes: set[str] = {base}
        self.created = 0
        self.containers: set[str] = set()

    def observe(self, op: tuple, result) -> None:
        kind = op[0]
        if kind == "container" and isinstance(result, tuple) and result and result[0] != "error":
            self.containers.add(result[0])
        if kind == "raw" and op[2].startswith("create") and isinstance(result, str):
            self.nodes.add(result)
            self.created += 1
        elif kind == "raw" and op[2] == "multi" and isinstance(result, tuple):
            self.nodes.update(r for r in result if isinstance(r, str) and r.startswith("/"))
        elif kind == "ttl" and isinstance(result, tuple) and result and result[0] != "error":
            self.nodes.add(result[0])
            self.created += 1
        elif kind in ("create", "container") and isinstance(result, str):
            self.nodes.add(result)
            self.created += 1
        elif kind in ("create", "container") and isinstance(result, tuple) and result and result[0] != "error":
            self.nodes.add(result[0])
            self.created += 1
        elif kind == "delete" and result is True:
            self.nodes.discard(op[2])
        elif kind == "multi" and isinstance(result, tuple):
            for sub, r in zip(op[2], result):
                if sub[0] == "create" and isinstance(r, str) and r.startswith("/"):
                    self.nodes.add(r)
                elif sub[0] == "delete" and r is True:
                    self.nodes.discard(sub[1])


def invalid_paths(base: str, root_ok: bool) -> list[str]:
    """Paths ZooKeeper refuses or treats specially. The root ("/" and "") only where no
    stat of it is compared: other tests share Corral's root, so its children differ."""
    paths = [
        "relative", base + "/", base + "//x", base + "/./x", base + "/../x", base + "/a\u0001b",
        base + "/a\ufffeb", "/zookeeper", "/zookeeper/quota", "/zookeeper/config",
    ]
    return paths + ["/", ""] if root_ok else paths


def pick_path(rng: random.Random, model: Model, existing_bias: float = 0.5, create: bool = False,
              root_ok: bool = False) -> str:
    r = rng.random()
    if r < 0.07:
        return rng.choice(invalid_paths(model.base, root_ok))
    nodes = sorted(model.nodes)
    if create:
        # Never a create of the base itself (a sequential one would take its number from the
        # root's cversion, which other tests move on Corral's shared ensemble).
        nodes.remove(model.base)
        if not nodes:
            return f"{model.base}/{rng.choice(NAMES)}"
    if r < 0.07 + existing_bias:
        return rng.choice(nodes)
    parent = rng.choice(nodes)
    if parent.count("/") > 4:
        parent = model.base
    return f"{parent}/{rng.choice(NAMES)}"


def deletable(path: str, model: Model) -> str:
    """The base stays (the final comparison lists it); its children are fair game."""
    return model.base + "/a" if path == model.base else path


def gen_op(rng: random.Random, model: Model) -> tuple:
    who = "A" if rng.random() < 0.75 else "B"
    data = rng.choice([b"", b"x", b"hello", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))])
    version = rng.choice([-1, -1, 0, 0, 1, 2, 7])
    k = rng.choices(
        ["create", "container", "set", "delete", "exists", "get", "children", "get_acls", "set_acls",
         "sync", "all_children", "ephemerals", "whoami", "raw", "ttl", "multi_read", "remove_watches", "multi"],
        # No checkWatches: ZooKeeper 3.8 answers it for any connection's watch on the path
        # (WatchManager.containsWatcher), Corral for the asking connection's own.
        weights=[26, 2, 10, 10, 7, 7, 7, 3, 3, 1, 2, 2, 1, 4, 2, 3, 3, 12],
    )[0]
    if k == "create":
        path = pick_path(rng, model, existing_bias=0.15, create=True, root_ok=True)
        acl = rng.choice([None] * 8 + list(ACLS))
        # No sequential creates at the root: their numbers come from the root's cversion, which
        # other tests (sharing Corral's root) move.
        seq = rng.random() < 0.25 and path not in ("/", "")
        return ("create", who, path, data, acl, rng.random() < 0.3, seq, rng.random() < 0.5)
    if k == "container":
        return ("container", who, pick_path(rng, model, existing_bias=0.1, create=True))
    if k == "set":
        return ("set", who, pick_path(rng, model, 0.8), data, version)
    if k == "delete":
        return ("delete", who, deletable(pick_path(rng, model, 0.8, root_ok=True), model), version)
    if k == "exists":
        return ("exists", who, pick_path(rng, model), rng.random() < 0.5)
    if k == "get":
        return ("get", who, pick_path(rng, model), rng.random() < 0.5)
    if k == "children":
        return ("children", who, pick_path(rng, model), rng.random() < 0.5, rng.random() < 0.5)
    if k == "get_acls":
        return ("get_acls", who, pick_path(rng, model, 0.8))
    if k == "set_acls":
        # Not on the base: a read-only base would make the rest of the run one long NoAuth.
        path = deletable(pick_path(rng, model, 0.8), model)
        return ("set_acls", who, path, rng.choice(list(ACLS)), rng.choice([-1, 0, 1]))
    if k == "sync":
        return ("sync", who, pick_path(rng, model, 0.8))
    if k == "all_children":
        return ("all_children", who, pick_path(rng, model, 0.8))
    if k == "whoami":
        return ("whoami", who)
    if k == "ttl":
        # TTLs long enough never to run out during the run (the sweeps differ in timing).
        # Only TTL modes: ZooKeeper 3.8.0 takes createTTL with another mode and TTL -1 as a plain
        # create and then dies applying it (the standalone server exits).
        flags = rng.choice([5, 5, 6])
        return ("ttl", who, pick_path(rng, model, 0.15, create=True), flags, rng.choice([600_000, 600_000, 0]))
    if k == "multi_read":
        reads = [(rng.choice(["data", "children"]), pick_path(rng, model, 0.7)) for _ in range(rng.randrange(1, 4))]
        return ("multi_read", who, reads)
    if k == "remove_watches":
        # Types 1 (children), 2 (data), 3 (any); ZooKeeper 3.8 has no removal of persistent ones.
        return (k, who, pick_path(rng, model, 0.8), rng.choice([1, 2, 3]))
    if k == "raw":
        parent = rng.choice(sorted(model.nodes))
        name = rng.choice(NAMES)
        path = rng.choice([
            f"{parent}/{name}/", f"{parent}//{name}", f"{parent}/./{name}", f"{parent}/{name}/..",
            f"{parent}/{name}\u0007", f"{parent}/{name}", f"{parent}/", f"{parent}/{name}\x00",
        ])
        return ("raw", who, rng.choice(["create", "create_seq", "create_container_flag", "delete", "get", "children",
                                        "exists", "set", "multi"]), path)
    if k == "ephemerals":
        return ("ephemerals", who, rng.choice([model.base, model.base + "/a", "/", ""]))
    ops = []
    for _ in range(rng.randrange(1, 5)):
        sk = rng.choice(["create", "create", "delete", "set", "check"])
        d = rng.choice([b"", b"m", b"multi"])
        v = rng.choice([-1, -1, 0, 1, 3])
        if sk == "create":
            ops.append(("create", pick_path(rng, model, 0.15, create=True), d, rng.random() < 0.25, rng.random() < 0.25))
        elif sk == "delete":
            ops.append(("delete", deletable(pick_path(rng, model, 0.8), model), v))
        elif sk == "set":
            ops.append(("set", pick_path(rng, model, 0.8), d, v))
        else:
            ops.append(("check", pick_path(rng, model, 0.8), v))
    return ("multi", who, ops)


def await_container_sweeps(ref: Side, corral: Side, model: Model) -> list[str]:
    """Containers are swept in the background, on each server at its own moment: a container
    that is due (it had a child and has none) must be gone on both before the next operation,
    or results would depend on timing. Returns the containers swept."""
    swept = []
    for path in sorted(model.containers):
        st = ref.a.exists(path)
        due = st is not None and st.numChildren == 0 and st.cversion > 0
        if st is None or due:
            support.wait_until(lambda: ref.a.exists(path) is None, 15, 0.05, what=f"ZooKeeper to sweep {path}")
            corral.a.sync(path)
            support.wait_until(lambda: corral.a.exists(path) is None, 15, 0.05, what=f"Corral to sweep {path}")
            model.containers.discard(path)
            model.nodes.discard(path)
            swept.append(path)
    return swept


@pytest.fixture
def sides(apache_zk, zk_hosts):
    made = []

    def make():
        ref = Side("zookeeper", apache_zk.hosts)
        made.append(ref)
        corral = Side("corral", zk_hosts)
        made.append(corral)
        return ref, corral

    yield make
    for s in made:
        s.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_random_operations_match_apache_zookeeper(sides, seed):
    ref, corral = sides()
    rng = random.Random(seed)
    base = f"/diff-{seed}"
    for side in (ref, corral):
        if side.a.exists(base):
            side.a.delete(base, recursive=True)
        side.a.create(base)
        side.settle()
    model = Model(base)
    log: list[str] = []
    for step in range(OPS_PER_SEED):
        op = gen_op(rng, model)
        r_ref = ref.run(op)
        r_corral = corral.run(op)
        log.append(f"{step}: {op!r} -> {r_ref!r}")
        assert r_corral == r_ref, (
            f"seed {seed}, step {step}: {op!r}\n  zookeeper: {r_ref!r}\n  corral:    {r_corral!r}\n"
            "history:\n" + "\n".join(log[-15:])
        )
        e_ref, e_corral = ref.settle(), corral.settle()
        log.append(f"    events: {e_ref}")
        reaped = await_container_sweeps(ref, corral, model)
        if reaped:
            e_ref, e_corral = ref.settle(), corral.settle()
            log.append(f"    swept {reaped}, events: {e_ref}")
            assert e_corral == e_ref, f"seed {seed}, after sweeping {reaped}: events differ\n  zookeeper: {e_ref}\n  corral:    {e_corral}"
        assert e_corral == e_ref, (
            f"seed {seed}, step {step}: {op!r}: watch events differ\n  zookeeper: {e_ref}\n  corral:    {e_corral}\n"
            "history:\n" + "\n".join(log[-30:])
        )
        model.observe(op, r_ref)

    # B's session ends: its ephemerals go, and A's watches on them fire.
    for side in (ref, corral):
        assert side.run(("close_b", "A")) == "closed"
    e_ref, e_corral = ref.settle(), corral.settle()
    assert sorted(e_corral) == sorted(e_ref), f"seed {seed}: events at B's close\n  zookeeper: {e_ref}\n  corral:    {e_corral}"
    assert corral.dump(base) == ref.dump(base)
    # Something real happened: the sequence created nodes, and succeeded and failed often.
    assert model.created > 3
    errors = sum(1 for line in log if "-> ('error'" in line)
    assert 10 < errors < OPS_PER_SEED - 10
