"""Sessions through kazoo: expiry of a silent client, a forged session, and a session that
outlives the member it was connected to (SIGKILL), watches included."""

from __future__ import annotations

import time

from kazoo.protocol.states import EventType, KazooState
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

import support
from support import Recorder

# Reconnect quickly and forever: these tests cut connections on purpose.
FAST_RETRY = {"max_tries": -1, "delay": 0.1, "backoff": 1, "max_delay": 0.5}


class States:
    def __init__(self, client):
        self.seen: list[str] = []
        client.add_listener(self.seen.append)

    def wait_for(self, state: str, timeout: float) -> None:
        support.wait_until(lambda: state in self.seen, timeout, what=f"state {state} (saw {self.seen})")


def test_silent_client_session_expires_and_its_ephemerals_go(corral, clients, request):
    """The client's network path dies without a FIN (a black-holing proxy): the ensemble
    expires the session after its timeout, deletes its ephemerals and tells their watchers;
    the client, back on the network, learns that its session expired and starts a new one."""
    host, port = corral.zk_addrs[0].rsplit(":", 1)
    proxy = support.BlackholeProxy(host, int(port))
    try:
        client = clients(f"127.0.0.1:{proxy.port}", timeout=2.0, connection_retry=FAST_RETRY)
        states = States(client)
        observer = clients()
        path = client.create(f"/conformance-expiry-{int(time.time() * 1000)}", b"", ephemeral=True)
        session_id = client.client_id[0]
        assert client._session_timeout == 2000  # within [2, 20] ticks of 500 ms
        observer.sync(path)
        gone = Recorder()
        assert observer.exists(path, watch=gone).ephemeralOwner == session_id

        proxy.blackhole()
        cut = time.monotonic()
        events = gone.wait_for(1, timeout=15)
        elapsed = time.monotonic() - cut
        assert [(e.type, e.path) for e in events] == [(EventType.DELETED, path)]
        # Not before the timeout; within it plus the leader's sweep and a commit.
        assert 1.5 <= elapsed <= 8.0, elapsed
        states.wait_for(KazooState.SUSPENDED, 10)
        assert KazooState.LOST not in states.seen

        proxy.restore()
        states.wait_for(KazooState.LOST, 15)
        support.wait_until(lambda: client.connected and client.client_id is not None, 15, what="a new session")
        assert client.client_id[0] != session_id
        assert client.exists(path) is None
        assert observer.exists(path) is None
    finally:
        proxy.close()


def test_forged_session_is_refused_and_the_real_one_is_unharmed(clients, base):
    owner = clients()
    path = owner.create(f"{base}/e", b"", ephemeral=True)
    session_id, password = owner.client_id
    forger = clients(client_id=(session_id, bytes(16)), connection_retry=FAST_RETRY)
    # kazoo hears "expired" for the forged session and opens a fresh one.
    assert forger.client_id[0] != session_id
    forger.sync(path)
    assert forger.exists(path).ephemeralOwner == session_id
    assert owner.connected and owner.client_id == (session_id, password)
    owner.set(path, b"still mine")


def test_session_and_watches_survive_sigkill_of_its_member(serve_ensemble, clients):
    """The client's member (the leader) is SIGKILLed while the client is cut off from it; the
    client fails over to a survivor with the same session: its ephemeral is still there, the
    DataWatch and ChildrenWatch recipes catch up with the changes made while it was away, and
    watches set afterwards fire. (kazoo drops its one-shot watches on a disconnect, calling
    them with a NONE event; the Java client keeps them and re-registers them with setWatches,
    which test_zkcli.py checks.)"""
    ensemble = serve_ensemble(nodes=3, tick_ms=500)
    leader = ensemble.leader()
    survivors = [i for i in sorted(ensemble.zk_ports) if i != leader]
    proxy = support.BlackholeProxy("127.0.0.1", ensemble.zk_ports[leader])
    try:
        hosts = ",".join([f"127.0.0.1:{proxy.port}"] + [ensemble.zk_addr(i) for i in survivors])
        client = clients(hosts, timeout=10.0, randomize_hosts=False, connection_retry=FAST_RETRY)
        states = States(client)
        session = client.client_id
        client.create("/eph", b"", ephemeral=True)
        client.create("/data", b"0")
        client.create("/parent", b"")
        data_seen, children_seen = [], []
        DataWatch(client, "/data", lambda data, stat: data_seen.append(data))
        ChildrenWatch(client, "/parent", lambda children: children_seen.append(sorted(children)))
        support.wait_until(lambda: data_seen and children_seen, 10, what="the recipes' first calls")
        raw = Recorder()
        client.get("/data", watch=raw)

        proxy.blackhole()
        ensemble.kill(leader)
        observer = clients(",".join(ensemble.zk_addr(i) for i in survivors), connection_retry=FAST_RETRY)
        # While the client is away: a new leader takes over and these changes commit.
        observer.set("/data", b"1")
        observer.create("/parent/kid", b"")
        assert observer.exists("/eph").ephemeralOwner == session[0]
        assert data_seen == [b"0"] and children_seen == [[]]

        states.wait_for(KazooState.SUSPENDED, 15)
        support.wait_until(lambda: client.connected, 20, what="the client to fail over")
        assert client.client_id == session
        assert KazooState.LOST not in states.seen
        peer_port = client._connection._socket.getpeername()[1]
        assert peer_port in [ensemble.zk_ports[i] for i in survivors]
        # The disconnect reached the raw watcher as a session event, not as a data change.
        assert [e.type for e in raw.wait_for(1)] == [EventType.NONE]

        support.wait_until(lambda: data_seen[-1] == b"1", 10, what=f"DataWatch to catch up ({data_seen})")
        support.wait_until(lambda: children_seen[-1] == ["kid"], 10, what=f"ChildrenWatch ({children_seen})")
        assert client.get("/data")[0] == b"1"
        assert client.exists("/eph").ephemeralOwner == session[0]

        # Watches set on the new member fire as before.
        again = Recorder()
        client.get("/data", watch=again)
        observer.set("/data", b"2")
        assert [(e.type, e.path) for e in again.wait_for(1)] == [(EventType.CHANGED, "/data")]
        support.wait_until(lambda: data_seen[-1] == b"2", 10, what="DataWatch after failover")
        # And the session still ends cleanly: its ephemeral goes with it.
        gone = Recorder()
        observer.exists("/eph", watch=gone)
        client.stop()
        assert [(e.type, e.path) for e in gone.wait_for(1)] == [(EventType.DELETED, "/eph")]
    finally:
        proxy.close()
