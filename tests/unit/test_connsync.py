"""dataplane.sync: validated with the field named; sync roles follow the election
through the reconciler (master on the leader, backup elsewhere, both with role all)."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from typing import Any

import pytest
import yaml

from speaker.config import AppConfig, ConfigError, parse_text
from speaker.fakes import (
    FakeAddresses,
    FakeConnSync,
    FakeElection,
    FakeForwarder,
    FakeHealth,
    FakeL2,
)
from speaker.reconcile.apply import Parts
from speaker.reconcile.connsync import desired_daemons, sysctl_modes
from speaker.reconcile.loop import Reconciler

BASE: dict[str, Any] = {
    "node": {"name": "lb1", "router_id": "192.0.2.21",
             "interfaces": [{"name": "front", "role": "client"}, {"name": "back",
                                                                 "role": "backend"}]},
    "election": {"engine": "vrrp", "vrrp": {"interface": "front"},
                 "groups": [{"name": "g1", "vrid": 51}, {"name": "g2", "vrid": 52}]},
    "services": [{"name": "web", "vip": "192.0.2.100", "ports": [80], "announce": "l2",
                  "group": "g1", "forwarding": "dr", "scheduler": "rr",
                  "backends": [{"address": "192.0.2.31"}], "health": {"type": "none"}}],
    "dataplane": {"sync": {"enabled": True, "interface": "back", "sync_id": 9}},
}


def cfg(**sync: Any) -> AppConfig:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["dataplane"]["sync"].update(sync)
    return parse_text(yaml.safe_dump(data))


@pytest.mark.parametrize(("sync", "path"), [
    ({"interface": "eth9"}, "dataplane.sync.interface"),
    ({"interface": None}, "dataplane.sync"),
    ({"group": "nope"}, "dataplane.sync.group"),
    ({"multicast_group": "192.0.2.22"}, "dataplane.sync"),
    ({"sync_id": 256}, "dataplane.sync.sync_id"),
    ({"role": "leader"}, "dataplane.sync.role"),
    ({"port": 0}, "dataplane.sync.port"),
    ({"mode": "unicast"}, "dataplane.sync.mode"),
])
def test_bad_sync_config_names_the_field(sync: dict[str, Any], path: str) -> None:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["dataplane"]["sync"].update(sync)
    data["dataplane"]["sync"] = {k: v for k, v in data["dataplane"]["sync"].items()
                                 if v is not None}
    with pytest.raises(ConfigError) as info:
        parse_text(yaml.safe_dump(data))
    assert any(str(i).startswith(path) for i in info.value.issues), info.value.issues


def test_sync_needs_ipvs() -> None:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["dataplane"]["ipvs"] = False
    with pytest.raises(ConfigError) as info:
        parse_text(yaml.safe_dump(data))
    assert any("dataplane.sync.enabled" in str(i) for i in info.value.issues)


def test_roles_follow_leadership_of_the_followed_group() -> None:
    election = FakeElection(cfg(), leader=True)
    assert {d.role for d in desired_daemons(cfg(), election.leadership())} == {"master"}
    election.leaders["g1"] = False
    assert {d.role for d in desired_daemons(cfg(), election.leadership())} == {"backup"}
    assert {d.role for d in desired_daemons(cfg(group="g2"), election.leadership())} == {
        "master"}
    assert {d.role for d in desired_daemons(cfg(role="all"), election.leadership())} == {
        "master", "backup"}
    assert desired_daemons(cfg(enabled=False), election.leadership()) == frozenset()
    (daemon,) = desired_daemons(cfg(multicast_group="239.0.0.81", port=9000, ttl=2),
                                election.leadership())
    assert (daemon.interface, daemon.sync_id, daemon.group, daemon.port, daemon.ttl) == (
        "back", 9, IPv4Address("239.0.0.81"), 9000, 2)


def test_sysctl_modes() -> None:
    assert sysctl_modes(cfg()) == {"dr", "sync"}
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["dataplane"] = {"sloppy_tcp": True, "sloppy_sctp": True}
    assert sysctl_modes(parse_text(yaml.safe_dump(data))) == {"dr", "sloppy_tcp",
                                                              "sloppy_sctp"}


def test_reconciler_switches_the_daemon_when_leadership_moves_and_on_reload() -> None:
    config = cfg()
    election = FakeElection(config, leader=False)
    sync = FakeConnSync()
    parts = Parts(FakeAddresses(), FakeForwarder(), None, FakeL2(config), sync=sync)
    rec = Reconciler(config, parts, FakeHealth(config), election, link_up=lambda _n: True)

    async def scenario() -> None:
        assert (await rec.reconcile_once()).ok
        assert sync.state is not None
        assert {d.role for d in sync.state.daemons} == {"backup"}
        election.leaders["g1"] = True
        assert (await rec.reconcile_once()).ok
        assert {d.role for d in sync.state.daemons} == {"master"}
        rec.reconfigure(cfg(sync_id=10))
        assert (await rec.reconcile_once()).ok
        assert {d.sync_id for d in sync.state.daemons} == {10}
        sync.fail = OSError("EINVAL")
        result = await rec.reconcile_once()
        assert not result.ok
        assert any(e.startswith("sync:") for e in result.errors)

    asyncio.run(scenario())
