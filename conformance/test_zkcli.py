"""Apache ZooKeeper's own CLI (zkCli.sh, the Java client) in scripted sessions.

Each scripted test runs against Corral and, with the same expected output, against Apache
ZooKeeper 3.8 (`[zookeeper]`), except where Corral deliberately differs. zkCli takes a second
or two to start, so each test feeds a batch of commands to one invocation."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest

import support

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
NOISE = re.compile(r"^(\d{4}-\d\d-\d\d|SLF4J:|log4j:|Welcome to ZooKeeper|JLine support|Connecting to)")


def clean(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not NOISE.match(line)]


def zkcli(server: str, commands: list[str], timeout: float = 60) -> list[str]:
    """Runs one zkCli session with `commands` on stdin; returns its output lines."""
    script = "\n".join(commands + ["quit"]) + "\n"
    proc = subprocess.run(
        [ZKCLI, "-server", server], input=script, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout,
    )
    return clean(proc.stdout)


def stat_block(lines: list[str], start: int) -> dict[str, str]:
    """The `name = value` lines of a Stat printed from `start` on."""
    out = {}
    for line in lines[start:]:
        m = re.match(r"^(\w+) = (.*)$", line)
        if not m:
            break
        out[m.group(1)] = m.group(2)
    return out


@pytest.fixture(params=["corral", "zookeeper"])
def server(request):
    """One member of Corral's dev ensemble, or Apache ZooKeeper, as host:port."""
    if request.param == "corral":
        return request.getfixturevalue("corral").zk_addrs[0]
    return request.getfixturevalue("apache_zk").hosts


@pytest.fixture
def root(request, server):
    """A fresh top-level path for the test on that server."""
    name = re.sub(r"[^A-Za-z0-9]", "", request.node.originalname)
    return f"/cli{name}{int(time.time() * 1000) % 10**8}"


def test_create_modes_ls_get_set_stat(server, root):
    out = zkcli(server, [
        f"create {root} hello",
        f"create -e {root}/e x",
        f"create -s {root}/s- y",
        f"create -s {root}/s- y",
        f"create -c {root}/c",
        f"create {root}/c/kid k",
        f"create {root}/s-0000000002 dup",
        f"ls {root}",
        f"ls -R {root}",
        f"get {root}",
        f"get -s {root}",
        f"set {root} bye",
        f"set -v 7 {root} nope",
        f"stat {root}",
        f"getAllChildrenNumber {root}",
        f"getEphemerals {root}",
        f"get {root}/missing",
        f"stat {root}/missing",
        f"delete {root}",
        f"delete -v 3 {root}/s-0000000001",
        f"delete {root}/s-0000000001",
        f"ls {root}",
    ])
    text = "\n".join(out)
    for expected in [
        f"Created {root}",
        f"Created {root}/e",
        f"Created {root}/s-0000000001",
        f"Created {root}/s-0000000002",
        f"Created {root}/c",
        f"Created {root}/c/kid",
        f"Node already exists: {root}/s-0000000002",
        "[c, e, s-0000000001, s-0000000002]",
        f"Node does not exist: {root}/missing",
        f"Node not empty: {root}",
        f"version No is not valid : {root}",
        f"version No is not valid : {root}/s-0000000001",
        "[c, e, s-0000000002]",
        f"[{root}/e]",
        "5",
    ]:
        assert expected in out, f"{expected!r} not in:\n{text}"
    # ls -R: the subtree, breadth first.
    i = out.index(root)
    assert out[i:i + 6] == [root, f"{root}/c", f"{root}/e", f"{root}/s-0000000001", f"{root}/s-0000000002",
                            f"{root}/c/kid"]
    # get, then get -s: data and the Stat.
    i = out.index("hello")
    assert out[i + 1] == "hello"
    st = stat_block(out, i + 2)
    assert (st["dataVersion"], st["cversion"], st["aclVersion"], st["numChildren"], st["dataLength"]) == (
        "0", "4", "0", "4", "5")
    assert st["ephemeralOwner"] == "0x0" and st["cZxid"] == st["mZxid"]
    assert int(st["pZxid"], 16) > int(st["cZxid"], 16)
    # stat after set: version 1, same creation.
    i = max(j for j, line in enumerate(out) if line.startswith("cZxid = "))
    st2 = stat_block(out, i)
    assert st2["dataVersion"] == "1" and st2["dataLength"] == "3" and st2["cZxid"] == st["cZxid"]
    assert st2["ctime"] == st["ctime"] and int(st2["mZxid"], 16) > int(st["mZxid"], 16)
    zkcli(server, [f"deleteall {root}"])


def test_deleteall_with_a_recursive_watch_on_the_tree(server, root):
    """deleteall sends its deletes as a multi; with a persistent recursive watch on the tree,
    every deletion is reported (this once cost the Java client its connection: addWatch's reply
    lacked the ErrorResponse body ZooKeeper sends)."""
    out = zkcli(server, [
        f"create {root} r",
        f"create {root}/a",
        f"create {root}/a/b",
        f"create {root}/c",
        f"addWatch -m PERSISTENT_RECURSIVE {root}",
        f"deleteall {root}",
        f"ls {root}",
        "sync /",
    ])
    text = "\n".join(out)
    assert "ConnectionLoss" not in text and "Disconnected" not in text, text
    for path in [f"{root}/a/b", f"{root}/a", f"{root}/c", root]:
        assert f"WatchedEvent state:SyncConnected type:NodeDeleted path:{path}" in out, text
    assert f"Node does not exist: {root}" in out


def test_watches_from_the_cli(server, root):
    out = zkcli(server, [
        f"create {root} v0",
        f"create {root}/p",
        f"get -w {root}",
        f"ls -w {root}/p",
        f"stat -w {root}/later",
        f"create {root}/q",
        # Not on /p: ZooKeeper 3.8.0 keeps one watch mode per connection and path (ZOOKEEPER-4466).
        f"addWatch -m PERSISTENT {root}/q",
        f"set {root} v1",
        f"set {root} v2",
        f"create {root}/p/kid",
        f"create {root}/later",
        f"create {root}/q/kid",
        f"set {root}/q qdata",
        f"delete {root}/q/kid",
        "sync /",
        f"deleteall {root}",
        "sync /",
    ])
    events = [line for line in out if line.startswith("WatchedEvent state:SyncConnected type:Node")]
    # One-shot: one NodeDataChanged for two sets; persistent (addWatch) on /p: every change.
    assert events.count(f"WatchedEvent state:SyncConnected type:NodeDataChanged path:{root}") == 1, out
    assert f"WatchedEvent state:SyncConnected type:NodeCreated path:{root}/later" in events
    assert events.count(f"WatchedEvent state:SyncConnected type:NodeChildrenChanged path:{root}/p") == 1, events
    assert events.count(f"WatchedEvent state:SyncConnected type:NodeChildrenChanged path:{root}/q") == 2, events
    assert f"WatchedEvent state:SyncConnected type:NodeDataChanged path:{root}/q" in events
    # deleteall removes /q too: the persistent watch hears it; /p's one-shot watch is spent.
    assert f"WatchedEvent state:SyncConnected type:NodeDeleted path:{root}/q" in events
    assert f"WatchedEvent state:SyncConnected type:NodeDeleted path:{root}/p" not in events


def test_acls_from_the_cli(server, root):
    digest = "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ="  # DigestAuthenticationProvider.generateDigest("u:p")
    out = zkcli(server, [
        f"create {root} open",
        "addauth digest u:p",
        f"create {root}/secret s3cret",
        f"setAcl {root}/secret auth:u:p:crwda",
        f"getAcl {root}/secret",
        f"get {root}/secret",
        f"setAcl {root}/shared world:anyone:r",
        f"create {root}/shared x",
        f"setAcl -s {root}/shared world:anyone:r,digest:{digest}:a",
        f"getAcl {root}/shared",
    ])
    assert f"'digest,'{digest}" in out and ": cdrwa" in out, out
    assert "s3cret" in out
    assert f"Node does not exist: {root}/shared" in out
    # A second session without the credential.
    out2 = zkcli(server, [
        f"get {root}/secret",
        f"set {root}/secret x",
        f"getAcl {root}/secret",
        f"getAcl {root}/shared",
        f"stat {root}/secret",
        "addauth digest u:wrong",
        f"get {root}/secret",
        "addauth digest u:p",
        f"get {root}/secret",
    ])
    text = "\n".join(out2)
    assert out2.count(f"Insufficient permission : {root}/secret") == 4, text
    # READ without ADMIN: the ACL shows, its digest masked.
    assert "'digest,'u:x" in out2 and "'world,'anyone" in out2, text
    assert "dataLength = 6" in out2  # stat needs no permission
    assert out2[-1] == "s3cret" or "s3cret" in out2
    zkcli(server, ["addauth digest u:p", f"deleteall {root}"])


def test_ttl_nodes(server, root):
    """Apache ZooKeeper serves TTL nodes only with zookeeper.extendedTypesEnabled (the reference
    here is started with it; by default it answers Unimplemented); Corral always serves them.
    Either way the Stat shows ephemeralOwner 0x0."""
    out = zkcli(server, [f"create {root} x", f"create -t 60000 {root}/ttl data", f"get -s {root}/ttl",
                         f"create -t 0 {root}/zero z", f"deleteall {root}"])
    assert f"Created {root}/ttl" in out, out
    i = out.index("data")
    assert stat_block(out, i + 1)["ephemeralOwner"] == "0x0"
    assert f"Created {root}/zero" not in out


def test_java_client_fails_over_and_reregisters_its_watches(serve_ensemble, clients):
    """The Java client keeps its watches across a reconnect and re-registers them with
    setWatches (its last zxid included): changes made while it was away fire at once, and its
    persistent watch keeps working. Its member is SIGKILLed while it is cut off from it."""
    ensemble = serve_ensemble(nodes=3, tick_ms=500)
    proxies = {i: support.BlackholeProxy("127.0.0.1", ensemble.zk_ports[i]) for i in ensemble.zk_ports}
    proc = None
    try:
        setup = clients(ensemble.hosts)
        for p in ["/data", "/parent", "/tree"]:
            setup.create(p, b"0")
        hosts = ",".join(f"127.0.0.1:{p.port}" for p in proxies.values())
        proc = subprocess.Popen([ZKCLI, "-server", hosts], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        lines: list[str] = []
        lock = threading.Lock()

        def reader():
            for line in proc.stdout:
                with lock:
                    lines.append(line.rstrip("\n"))

        threading.Thread(target=reader, daemon=True).start()

        def send(cmd: str):
            proc.stdin.write(cmd + "\n")
            proc.stdin.flush()

        def saw(text: str, timeout: float = 30):
            support.wait_until(lambda: any(text in line for line in list(lines)), timeout, 0.05,
                               what=f"zkCli to print {text!r}")

        for cmd in ["get -w /data", "ls -w /parent", "stat -w /born", "addWatch -m PERSISTENT_RECURSIVE /tree",
                    "create /marker m"]:
            send(cmd)
        saw("Created /marker")
        # The member this client is on: the proxy carrying its connection.
        member = support.wait_until(
            lambda: next((i for i, p in proxies.items() if any(not pr["dead"] for pr in p._pairs)), None), 10,
            what="the client's member")
        proxies[member].blackhole()
        ensemble.kill(member)
        others = [i for i in ensemble.zk_ports if i != member]
        observer = clients(",".join(ensemble.zk_addr(i) for i in others))
        observer.set("/data", b"changed while away")
        observer.create("/parent/kid", b"")
        observer.create("/born", b"")
        observer.create("/tree/missed", b"")
        with lock:
            assert not any("type:Node" in line for line in lines), lines

        saw("WatchedEvent state:SyncConnected type:NodeDataChanged path:/data")
        saw("WatchedEvent state:SyncConnected type:NodeChildrenChanged path:/parent")
        saw("WatchedEvent state:SyncConnected type:NodeCreated path:/born")
        observer.create("/tree/after", b"")
        saw("WatchedEvent state:SyncConnected type:NodeCreated path:/tree/after")
        send("get /data")
        saw("changed while away")
        with lock:
            text = "\n".join(lines)
        assert "Expired" not in text, text
        # A persistent watch is re-registered without catch-up events, as ZooKeeper does.
        assert "path:/tree/missed" not in text
    finally:
        if proc is not None:
            try:
                proc.stdin.write("quit\n")
                proc.stdin.flush()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(timeout=10)
        for p in proxies.values():
            p.close()
