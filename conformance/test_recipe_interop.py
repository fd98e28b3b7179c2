"""Recipes across languages: a Rust holder (the `corral` CLI, over gRPC) and a kazoo contender
(over the ZooKeeper port) of the same lock path exclude each other, in both directions; the
same goes for queues (kazoo's LockingQueue layout) and elections (kazoo's Election layout).

The `corral` CLI is not built here: `cargo build -p corral-client` (the test script builds
the whole workspace) puts it next to corral-server; CORRAL_CLI_BIN overrides.
"""

from __future__ import annotations

import os
import queue as pyqueue
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from kazoo.exceptions import LockTimeout

import support


def corral_cli() -> Path:
    env = os.environ.get("CORRAL_CLI_BIN")
    if env:
        return Path(env)
    return support.corral_bin().with_name("corral")


@pytest.fixture(scope="module")
def cli() -> Path:
    path = corral_cli()
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it first (cargo build -p corral-client) or set CORRAL_CLI_BIN")
    return path


class Corral:
    """Runs `corral` against the dev ensemble's gRPC ports."""

    def __init__(self, binary: Path, endpoints: list[str]):
        self.binary = binary
        self.endpoints = ",".join(endpoints)
        self.procs: list[subprocess.Popen] = []

    def argv(self, *args: str) -> list[str]:
        return [str(self.binary), "--endpoints", self.endpoints, *args]

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, timeout=timeout)

    def start(self, *args: str) -> "Lines":
        proc = subprocess.Popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append(proc)
        return Lines(proc)

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


class Lines:
    """A running process whose stdout lines arrive on a queue, so tests can wait with a deadline
    (or check that nothing came)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines: pyqueue.Queue[str] = pyqueue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))

    def next(self, timeout: float) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except pyqueue.Empty:
            raise AssertionError(f"no output within {timeout} s (exit status {self.proc.poll()})") from None

    def quiet(self, seconds: float) -> bool:
        try:
            line = self.lines.get(timeout=seconds)
        except pyqueue.Empty:
            return True
        raise AssertionError(f"unexpected output {line!r}")

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)


@pytest.fixture
def corral_cli_runner(cli, corral):
    runner = Corral(cli, corral.grpc_addrs)
    yield runner
    runner.stop_all()


@pytest.fixture
def path(zk):
    p = f"/interop-{uuid.uuid4().hex[:12]}"
    yield p
    try:
        if zk.connected and zk.exists(p):
            zk.delete(p, recursive=True)
    except Exception:  # noqa: BLE001 - best effort at teardown
        pass


def test_a_rust_holder_excludes_a_kazoo_contender(corral_cli_runner, zk, path, tmp_path):
    done = tmp_path / "done"
    holder = corral_cli_runner.start("lock", path, "--", "sh", "-c", f"echo held; sleep 3; touch {done}")
    assert holder.next(timeout=20) == "held"
    lock = zk.Lock(path, "kazoo")
    # kazoo sees the Rust process's node as the holder, with its identifier.
    contenders = lock.contenders()
    assert len(contenders) == 1 and contenders[0].startswith("corral lock (pid "), contenders
    assert lock.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        lock.acquire(timeout=0.5)
    # Blocks until the Rust holder's command is done, and not a moment before.
    assert lock.acquire(timeout=20)
    try:
        assert done.exists(), "kazoo got the lock while corral's command still ran"
        assert holder.wait(timeout=10) == 0
    finally:
        lock.release()
    assert zk.get_children(path) == []


def test_a_kazoo_holder_excludes_a_rust_contender(corral_cli_runner, zk, path):
    lock = zk.Lock(path, "kazoo")
    assert lock.acquire(timeout=10)
    contender = corral_cli_runner.start("lock", path, "--", "sh", "-c", "echo started")
    # The Rust contender queues behind the kazoo holder and runs nothing meanwhile.
    deadline = time.monotonic() + 10
    while len(zk.get_children(path)) < 2:
        assert time.monotonic() < deadline, "the corral contender never queued"
        time.sleep(0.05)
    assert contender.quiet(1.5)
    assert contender.proc.poll() is None
    released_at = time.monotonic()
    lock.release()
    assert contender.next(timeout=20) == "started"
    assert contender.wait(timeout=20) == 0
    assert time.monotonic() >= released_at
    assert zk.get_children(path) == []


def test_rust_and_kazoo_contenders_queue_fairly_together(corral_cli_runner, zk, path, clients):
    # kazoo holds; a Rust contender queues; then a second kazoo contender queues behind it:
    # grants follow the queue whatever the language.
    first = zk.Lock(path, "k1")
    assert first.acquire(timeout=10)
    order: list[str] = []
    rust = corral_cli_runner.start("lock", path, "--", "sh", "-c", "echo rust; sleep 0.5")
    deadline = time.monotonic() + 10
    while len(zk.get_children(path)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    other = clients()
    second = other.Lock(path, "k2")
    got = threading.Event()

    def contend():
        second.acquire(timeout=30)
        order.append("k2")
        got.set()

    t = threading.Thread(target=contend, daemon=True)
    t.start()
    while len(zk.get_children(path)) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.release()
    assert rust.next(timeout=20) == "rust"
    order.append("rust")
    assert got.wait(timeout=20)
    assert order == ["rust", "k2"]
    assert rust.wait(timeout=10) == 0
    second.release()


def test_queues_pass_items_both_ways(corral_cli_runner, zk, path):
    put = corral_cli_runner.run("queue", "put", path, "from rust")
    assert put.returncode == 0, put
    q = zk.LockingQueue(path)
    assert q.get(timeout=10) == b"from rust"
    assert q.consume()
    q.put(b"from kazoo", priority=5)
    q.put(b"later", priority=100)
    taken = corral_cli_runner.run("queue", "take", "--wait", "10s", path)
    assert taken.returncode == 0, taken
    assert taken.stdout == b"from kazoo\n"
    assert len(q) == 1
    assert q.get(timeout=10) == b"later"
    assert q.consume()
    assert len(q) == 0


def test_a_rust_leader_is_seen_by_kazoo_and_hands_over_to_it(corral_cli_runner, zk, path):
    leader = corral_cli_runner.start("elect", path, "rust")
    line = leader.next(timeout=20)
    if line == "no leader":
        line = leader.next(timeout=20)
    assert line == "leader rust"
    election = zk.Election(path, "python")
    assert election.contenders() == ["rust"]
    won = threading.Event()
    t = threading.Thread(target=lambda: election.run(won.set), daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while len(election.contenders()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not won.wait(1.0), "kazoo led while corral did"
    leader.proc.terminate()  # resigns
    assert leader.wait(timeout=20) == 0
    assert won.wait(timeout=20)
