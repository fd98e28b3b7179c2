"""Fixtures for the real-client conformance suite.

Nothing is built here: the test script builds corral-server first, and the binary is found
through CORRAL_SERVER_BIN (default: $CARGO_TARGET_DIR/debug/corral-server, with
CARGO_TARGET_DIR defaulting to ~/.cache/corral-target).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from kazoo.client import KazooClient

import support


@pytest.fixture(scope="session")
def corral_server_bin() -> Path:
    path = support.corral_bin()
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it first (cargo build -p corral-server) or set CORRAL_SERVER_BIN")
    return path


@pytest.fixture(scope="session")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="corral-conformance-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def corral(corral_server_bin, workdir):
    """A 3-member `corral-server dev` ensemble (tick 500 ms, so session timeouts are negotiated
    within [1 s, 10 s]) shared by the whole session."""
    d = workdir / "dev"
    d.mkdir()
    ensemble = support.DevEnsemble(corral_server_bin, d, nodes=3, tick_ms=500)
    try:
        ensemble.start(timeout=60)
        yield ensemble
    finally:
        ensemble.stop()


@pytest.fixture(scope="session")
def zk_hosts(corral) -> str:
    """The dev ensemble's ZooKeeper ports, as a kazoo/zkCli hosts string."""
    return corral.hosts


@pytest.fixture(scope="session")
def apache_zk(workdir):
    """Apache ZooKeeper 3.8 standalone on a free port: the reference for the differential test."""
    d = workdir / "apache-zookeeper"
    d.mkdir()
    server = support.ApacheZooKeeper(d)
    try:
        server.start(timeout=60)
        yield server
    finally:
        server.stop()


@pytest.fixture
def serve_ensemble(corral_server_bin, tmp_path):
    """A factory for an ensemble of separate `serve` processes (a test may SIGKILL one)."""
    started: list[support.ServeEnsemble] = []

    def make(nodes: int = 3, tick_ms: int = 500) -> support.ServeEnsemble:
        d = tmp_path / f"serve-{len(started)}"
        d.mkdir()
        e = support.ServeEnsemble(corral_server_bin, d, nodes=nodes, tick_ms=tick_ms)
        started.append(e)
        return e.start(timeout=60)

    yield make
    for e in started:
        e.stop()


@pytest.fixture
def clients(zk_hosts):
    """A factory for started KazooClients (default: the dev ensemble); all are closed at the
    end of the test."""
    made: list[KazooClient] = []

    def make(hosts: str | None = None, timeout: float = 10.0, **kw) -> KazooClient:
        c = KazooClient(hosts=hosts or zk_hosts, timeout=timeout, **kw)
        made.append(c)
        c.start(timeout=20)
        return c

    yield make
    for c in made:
        try:
            c.stop()
            c.close()
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass


@pytest.fixture
def zk(clients):
    """One started client on the dev ensemble."""
    return clients()


@pytest.fixture
def base(request, zk):
    """A fresh path for this test's nodes, removed afterwards."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:80]
    path = f"/conformance-{name}"
    if zk.exists(path):
        zk.delete(path, recursive=True)
    zk.create(path)
    yield path
    try:
        if zk.connected and zk.exists(path):
            zk.delete(path, recursive=True)
    except Exception:  # noqa: BLE001 - best effort at teardown
        pass
