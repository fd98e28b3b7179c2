"""Four-letter words on the client port, in ZooKeeper's formats (what `echo srvr | nc` and
monitoring exporters parse), compared with Apache ZooKeeper's where the format is the point."""

from __future__ import annotations

import re

from support import four_letter

MONITORING_KEYS = {
    "zk_version", "zk_server_state", "zk_avg_latency", "zk_max_latency", "zk_min_latency",
    "zk_packets_received", "zk_packets_sent", "zk_num_alive_connections", "zk_outstanding_requests",
    "zk_znode_count", "zk_watch_count", "zk_ephemerals_count", "zk_approximate_data_size",
}


def addr(hostport: str) -> tuple[str, int]:
    host, port = hostport.rsplit(":", 1)
    return host, int(port)


def keys(text: str, sep: str) -> list[str]:
    return [line.split(sep, 1)[0] for line in text.splitlines() if sep in line]


def test_ruok_isro_and_srvr_on_every_member(corral, apache_zk):
    modes = []
    for member in corral.zk_addrs:
        assert four_letter(*addr(member), "ruok") == "imok"
        assert four_letter(*addr(member), "isro") == "rw"
        srvr = four_letter(*addr(member), "srvr")
        assert re.search(r"^Zxid: 0x[0-9a-f]+$", srvr, re.M), srvr
        assert re.search(r"^Node count: \d+$", srvr, re.M), srvr
        modes.append(re.search(r"^Mode: (\w+)$", srvr, re.M).group(1))
    assert sorted(modes) == ["follower", "follower", "leader"]
    # The same lines, in the same order, as Apache ZooKeeper's.
    reference = four_letter(*addr(apache_zk.hosts), "srvr")
    assert keys(four_letter(*addr(corral.zk_addrs[0]), "srvr"), ":") == keys(reference, ":")


def test_mntr_conf_stat_and_watch_words(corral, apache_zk, zk, base):
    zk.get(base, watch=lambda e: None)
    mntr = {}
    for member in corral.zk_addrs:
        text = four_letter(*addr(member), "mntr")
        mntr[member] = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    reference = four_letter(*addr(apache_zk.hosts), "mntr")
    assert MONITORING_KEYS <= set(keys(reference, "\t")), "the keys exporters read are ZooKeeper's"
    for values in mntr.values():
        assert MONITORING_KEYS <= set(values)
        assert int(values["zk_znode_count"]) >= 5
    states = sorted(v["zk_server_state"] for v in mntr.values())
    assert states == ["follower", "follower", "leader"]
    leader = next(v for v in mntr.values() if v["zk_server_state"] == "leader")
    assert leader["zk_followers"] == "2" and leader["zk_synced_followers"] == "2"
    # The client's own member counts its watch.
    own = f"127.0.0.1:{zk._connection._socket.getpeername()[1]}"
    assert int(mntr[own]["zk_watch_count"]) >= 1

    conf = four_letter(*addr(corral.zk_addrs[0]), "conf")
    assert f"clientPort={corral.zk_addrs[0].rsplit(':', 1)[1]}" in conf.splitlines()
    assert "tickTime=500" in conf.splitlines() and "maxSessionTimeout=10000" in conf.splitlines()

    stat = four_letter(*addr(own), "stat")
    assert stat.startswith("Zookeeper version: ") and "Clients:" in stat
    assert f"sid=0x{zk.client_id[0]:x}" in stat
    wchs = four_letter(*addr(own), "wchs")
    assert re.match(r"^\d+ connections watching \d+ paths\nTotal watches:\d+", wchs), wchs
    wchp = four_letter(*addr(own), "wchp")
    assert f"{base}\n\t0x{zk.client_id[0]:x}" in wchp
