"""Process and protocol helpers shared by the conformance tests.

Everything here is bounded in time: every wait has a deadline and every process started is
stopped (SIGTERM, then SIGKILL of its whole process group) when its owner is done with it.
"""

from __future__ import annotations

import glob
import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from collections import namedtuple
from pathlib import Path

from kazoo.exceptions import EXCEPTIONS
from kazoo.protocol.serialization import (
    Create2,
    GetChildren,
    GetData,
    MultiHeader,
    Watch,
    int_struct,
    read_buffer,
    read_string,
    stat_struct,
    write_string,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.protocol.states import Callback, EventType, WatchedEvent


def corral_bin() -> Path:
    """The corral-server binary the test script built (never built here)."""
    env = os.environ.get("CORRAL_SERVER_BIN")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/corral-target")
    return Path(target) / "debug" / "corral-server"


def wait_until(pred, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Polls `pred` until it returns a true value, which is returned; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Recorder:
    """Collects watch callbacks; waits for a number of them."""

    def __init__(self):
        self.events: list = []
        self.cond = threading.Condition()

    def __call__(self, event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.events) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} events, got {self.events}")
                self.cond.wait(left)
            return list(self.events)

    def settle(self, zk: KazooClient, quiet: float = 0.3) -> list:
        """Every event due so far: a sync makes the server send them, and a short quiet
        period lets a wrongly duplicated one show up."""
        zk.sync("/")
        time.sleep(quiet)
        with self.cond:
            return list(self.events)


# How often containers and TTL nodes are swept, on both servers.
CONTAINER_CHECK_MS = 300


# ----- ports -----


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int) -> int:
    """A base port such that base .. base+count-1 are all free right now."""
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(20000, 60000 - count)
        if all(_port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port block found")


def free_port() -> int:
    return free_port_block(1)


# ----- four-letter words -----


def four_letter(host: str, port: int, word: str, timeout: float = 5.0) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            out += d
    return out.decode(errors="replace")


# ----- processes -----


def _stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process, wait up to `grace` s, then SIGKILL its process group (which holds
    every child it started, since it was started as a session leader)."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class DevEnsemble:
    """`corral-server dev --nodes 3` on free ports in `workdir`."""

    def __init__(self, binary: Path, workdir: Path, nodes: int = 3, tick_ms: int = 500):
        self.binary = binary
        self.workdir = workdir
        self.nodes = nodes
        self.tick_ms = tick_ms
        self.proc: subprocess.Popen | None = None
        self.zk_addrs: list[str] = []
        self.grpc_addrs: list[str] = []

    @property
    def hosts(self) -> str:
        return ",".join(self.zk_addrs)

    def start(self, timeout: float = 60.0) -> "DevEnsemble":
        last_error = ""
        for attempt in range(3):
            grpc = free_port_block(self.nodes)
            zk = free_port_block(self.nodes)
            data = self.workdir / f"dev-{attempt}"
            err = open(self.workdir / f"dev-{attempt}.stderr", "wb")
            self.proc = subprocess.Popen(
                [
                    str(self.binary), "dev", "--nodes", str(self.nodes), "--dir", str(data),
                    "--grpc-base-port", str(grpc), "--zk-base-port", str(zk),
                    "--tick-ms", str(self.tick_ms), "--max-client-cnxns", "0",
                    "--container-check-ms", str(CONTAINER_CHECK_MS),
                ],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, start_new_session=True,
            )
            err.close()
            line = _read_line_with_deadline(self.proc, "ensemble ready:", timeout)
            if line:
                m = re.search(r"grpc=(\S+) zk=(\S+)", line)
                assert m, line
                self.grpc_addrs = m.group(1).split(",")
                self.zk_addrs = m.group(2).split(",")
                return self
            _stop_group(self.proc, 5)
            logs = sorted(glob.glob(str(data / "member-*.log")))
            last_error = "".join(Path(p).read_text(errors="replace")[-2000:] for p in logs)
        raise RuntimeError(f"the dev ensemble did not become ready:\n{last_error}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop_group(self.proc, 15)
            self.proc = None


def _read_line_with_deadline(proc: subprocess.Popen, marker: str, timeout: float) -> str | None:
    """Reads `proc`'s stdout until a line containing `marker`, the process exits, or the
    deadline passes."""
    found: list[str] = []

    def reader():
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            if marker in line:
                found.append(line)
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    return found[0] if found else None


class ServeEnsemble:
    """Three `corral-server serve` processes, so that a test can SIGKILL one member."""

    def __init__(self, binary: Path, workdir: Path, nodes: int = 3, tick_ms: int = 500):
        self.binary = binary
        self.workdir = workdir
        self.nodes = nodes
        self.tick_ms = tick_ms
        self.procs: dict[int, subprocess.Popen] = {}
        self.zk_ports: dict[int, int] = {}
        self.grpc_ports: dict[int, int] = {}

    def zk_addr(self, member: int) -> str:
        return f"127.0.0.1:{self.zk_ports[member]}"

    @property
    def hosts(self) -> str:
        return ",".join(self.zk_addr(i) for i in sorted(self.zk_ports))

    def start(self, timeout: float = 60.0) -> "ServeEnsemble":
        grpc = free_port_block(self.nodes)
        zk = free_port_block(self.nodes)
        ids = range(1, self.nodes + 1)
        self.grpc_ports = {i: grpc + i - 1 for i in ids}
        self.zk_ports = {i: zk + i - 1 for i in ids}
        members = ",".join(f"{i}=127.0.0.1:{self.grpc_ports[i]}" for i in ids)
        for i in ids:
            log = open(self.workdir / f"member-{i}.log", "wb")
            self.procs[i] = subprocess.Popen(
                [
                    str(self.binary), "serve", "--id", str(i),
                    "--grpc-addr", f"127.0.0.1:{self.grpc_ports[i]}",
                    "--zk-addr", f"127.0.0.1:{self.zk_ports[i]}",
                    "--data-dir", str(self.workdir / f"member-{i}"),
                    "--members", members, "--tick-ms", str(self.tick_ms),
                    "--max-client-cnxns", "0",
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            log.close()
        wait_until(lambda: self.leader() is not None, timeout, 0.2, "a leader")
        return self

    def mode(self, member: int) -> str | None:
        try:
            text = four_letter("127.0.0.1", self.zk_ports[member], "srvr", timeout=2)
        except OSError:
            return None
        m = re.search(r"^Mode: (\w+)", text, re.M)
        return m.group(1) if m else None

    def leader(self) -> int | None:
        live = [i for i, p in self.procs.items() if p.poll() is None]
        modes = {i: self.mode(i) for i in live}
        leaders = [i for i, m in modes.items() if m == "leader"]
        if len(leaders) == 1 and all(m is not None for m in modes.values()):
            return leaders[0]
        return None

    def kill(self, member: int) -> None:
        """SIGKILL: no goodbye to anyone."""
        proc = self.procs[member]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            _stop_group(proc, 10)


class ApacheZooKeeper:
    """Apache ZooKeeper 3.8 standalone (the Debian package's jars), the reference server."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "ApacheZooKeeper":
        jars: list[str] = []
        for pattern in ["zookeeper", "zookeeper-jute", "slf4j-api", "netty-*", "jline", "commons-cli",
                        "metrics-core", "snappy-java", "jackson-*", "audience-annotations", "commons-io",
                        "log4j*"]:
            jars.extend(sorted(glob.glob(f"/usr/share/java/{pattern}.jar")))
        if not any(j.endswith("/zookeeper.jar") for j in jars):
            raise RuntimeError("Apache ZooKeeper is not installed (/usr/share/java/zookeeper.jar)")
        self.port = free_port()
        data = self.workdir / "zk-data"
        data.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "zoo.cfg"
        cfg.write_text(
            f"tickTime=2000\ndataDir={data}\nclientPort={self.port}\nadmin.enableServer=false\n"
            "4lw.commands.whitelist=*\n"
        )
        log = open(self.workdir / "zookeeper.log", "wb")
        self.proc = subprocess.Popen(
            ["java", "-Xmx256m",
             # Containers and TTL nodes swept as often as Corral's, and TTL nodes enabled
             # (Corral always serves them).
             f"-Dznode.container.checkIntervalMs={CONTAINER_CHECK_MS}", "-Dzookeeper.extendedTypesEnabled=true",
             "-cp", ":".join(jars), "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg)],
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("Apache ZooKeeper exited:\n"
                                   + (self.workdir / "zookeeper.log").read_text(errors="replace")[-3000:])
            try:
                return four_letter("127.0.0.1", self.port, "ruok", timeout=1) == "imok"
            except OSError:
                return False

        wait_until(ready, timeout, 0.2, "Apache ZooKeeper to answer ruok")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop_group(self.proc, 10)
            self.proc = None


# ----- persistent watches through kazoo -----
#
# kazoo 2.11 has no addWatch (opcode 106); these speak it through kazoo's own request queue
# and hook its notification reader, so a persistent watch sees every event ZooKeeper sends for
# it. Persistent watches are not re-registered on reconnect here (kazoo knows nothing of them).


class AddWatch(namedtuple("AddWatch", "path mode")):
    type = 106

    def serialize(self):
        b = bytearray()
        b.extend(write_string(self.path))
        b.extend(int_struct.pack(self.mode))
        return b

    @classmethod
    def deserialize(cls, buf, offset):
        # ZooKeeper answers with an ErrorResponse body: one int, 0.
        return int_struct.unpack_from(buf, offset)[0]


class RemoveWatches(namedtuple("RemoveWatches", "path watcher_type")):
    type = 18

    def serialize(self):
        b = bytearray()
        b.extend(write_string(self.path))
        b.extend(int_struct.pack(self.watcher_type))
        return b

    @classmethod
    def deserialize(cls, buf, offset):
        return True


PERSISTENT = 0
PERSISTENT_RECURSIVE = 1
_EVENT_TYPES = {1: EventType.CREATED, 2: EventType.DELETED, 3: EventType.CHANGED, 4: EventType.CHILD}


def add_watch(client, path: str, callback, mode: int) -> None:
    """addWatch(path, mode) with `callback(WatchedEvent)` for every event it fires."""
    registry = _persistent_registry(client)
    client.handler  # noqa: B018 - the client must be started
    result = client.handler.async_result()
    client._call(AddWatch(path, mode), result)
    assert result.get(timeout=10) == 0
    registry.setdefault((mode, path), []).append(callback)


def remove_persistent_watch(client, path: str, mode: int) -> None:
    """removeWatches for a persistent (4) or persistent-recursive (5) watch."""
    result = client.handler.async_result()
    client._call(RemoveWatches(path, 4 if mode == PERSISTENT else 5), result)
    result.get(timeout=10)
    _persistent_registry(client).pop((mode, path), None)


def _persistent_registry(client) -> dict:
    registry = getattr(client, "_conformance_persistent", None)
    if registry is not None:
        return registry
    registry = {}
    client._conformance_persistent = registry
    conn = client._connection
    original = conn._read_watch_event

    def read_watch_event(buffer, offset):
        watch, _ = Watch.deserialize(buffer, offset)
        kind = _EVENT_TYPES.get(watch.type)
        targets = list(registry.get((PERSISTENT, watch.path), []))
        if kind is not None and kind != EventType.CHILD:
            p = watch.path
            while True:
                targets.extend(registry.get((PERSISTENT_RECURSIVE, p), []))
                if p == "/":
                    break
                p = p.rsplit("/", 1)[0] or "/"
        if kind is not None:
            ev = WatchedEvent(kind, client._state, watch.path)
            for cb in targets:
                client.handler.dispatch_callback(_callback(cb, ev))
        return original(buffer, offset)

    conn._read_watch_event = read_watch_event
    return registry


def _callback(cb, ev):
    return Callback("watch", cb, (ev,))


# ----- a TCP proxy that can black-hole a connection -----


class BlackholeProxy:
    """Forwards 127.0.0.1:<port> to a target. `blackhole()` silences every open connection for
    good (nothing is forwarded either way and nothing is closed: a dead network path, not a
    goodbye) and refuses new connections until `restore()`."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self._refusing = False
        self._closed = False
        self._pairs: list[dict] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def blackhole(self) -> None:
        with self._lock:
            self._refusing = True
            for pair in self._pairs:
                pair["dead"] = True

    def restore(self) -> None:
        with self._lock:
            self._refusing = False

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = {"dead": False, "socks": (client, upstream)}
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair, client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, upstream, client), daemon=True).start()

    def _pump(self, pair: dict, src: socket.socket, dst: socket.socket):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if pair["dead"]:
                    continue
                dst.sendall(data)
        except OSError:
            pass
        if not pair["dead"]:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._closed = True
        self.listener.close()
        with self._lock:
            for pair in self._pairs:
                for s in pair["socks"]:
                    try:
                        s.close()
                    except OSError:
                        pass


# ----- ops kazoo 2.11 has no method for -----


class CreateContainer(Create2):
    """createContainer (opcode 19): a create body with flags 4, answered like create2."""

    type = 19


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    """createTTL (opcode 21): flags 5 (persistent) or 6 (persistent sequential) and a TTL in ms."""

    type = 21

    def serialize(self):
        b = Create2(self.path, self.data, self.acl, self.flags).serialize()
        b.extend(struct.pack(">q", self.ttl))
        return b

    @classmethod
    def deserialize(cls, buf, offset):
        return Create2.deserialize(buf, offset)


class MultiRead(namedtuple("MultiRead", "operations")):
    """multiRead (opcode 22): GetData and GetChildren ops, each answered on its own (a value or
    an exception instance)."""

    type = 22

    def serialize(self):
        b = bytearray()
        for op in self.operations:
            b.extend(MultiHeader(op.type, False, -1).serialize() + op.serialize())
        return b + MultiHeader(-1, True, -1).serialize()

    @classmethod
    def deserialize(cls, buf, offset):
        results = []
        while True:
            header, offset = MultiHeader.deserialize(buf, offset)
            if header.done:
                return results
            if header.type == GetData.type:
                data, offset = read_buffer(buf, offset)
                stat = ZnodeStat._make(stat_struct.unpack_from(buf, offset))
                offset += stat_struct.size
                results.append((data, stat))
            elif header.type == GetChildren.type:
                count = int_struct.unpack_from(buf, offset)[0]
                offset += int_struct.size
                children = []
                for _ in range(max(count, 0)):
                    name, offset = read_string(buf, offset)
                    children.append(name)
                results.append(children)
            else:
                err = int_struct.unpack_from(buf, offset)[0]
                offset += int_struct.size
                results.append(EXCEPTIONS[err]())


class CheckWatches(RemoveWatches):
    """checkWatches (opcode 17): NoWatcher unless the connection has such a watch."""

    type = 17


class DeleteContainer(namedtuple("DeleteContainer", "path")):
    """deleteContainer (opcode 20): the server's own op; a client sending it is refused."""

    type = 20

    def serialize(self):
        return bytearray(write_string(self.path))

    @classmethod
    def deserialize(cls, buf, offset):
        return True


class GetEphemerals(namedtuple("GetEphemerals", "path")):
    type = 103

    def serialize(self):
        return bytearray(write_string(self.path))

    @classmethod
    def deserialize(cls, buf, offset):
        count = int_struct.unpack_from(buf, offset)[0]
        offset += int_struct.size
        out = []
        for _ in range(max(count, 0)):
            s, offset = read_string(buf, offset)
            out.append(s)
        return out


class GetAllChildrenNumber(namedtuple("GetAllChildrenNumber", "path")):
    type = 104

    def serialize(self):
        return bytearray(write_string(self.path))

    @classmethod
    def deserialize(cls, buf, offset):
        return int_struct.unpack_from(buf, offset)[0]


class WhoAmI:
    """whoAmI (opcode 107). Not an empty namedtuple: kazoo drops replies to falsy requests."""

    type = 107

    def __repr__(self):
        return "WhoAmI()"

    def serialize(self):
        return bytearray()

    @classmethod
    def deserialize(cls, buf, offset):
        count = int_struct.unpack_from(buf, offset)[0]
        offset += int_struct.size
        out = []
        for _ in range(max(count, 0)):
            scheme, offset = read_string(buf, offset)
            user, offset = read_string(buf, offset)
            out.append((scheme, user))
        return out


def call(client, request, timeout: float = 10.0):
    """Sends one request through a started KazooClient and returns its decoded reply (or
    raises the ZooKeeper error kazoo maps its code to)."""
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=timeout)


def raw_frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body
