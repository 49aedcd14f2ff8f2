"""parts_for(config) and diff_parts(old, new): which parts run and what a reload does."""

from __future__ import annotations

from typing import Any

from speaker.config import AppConfig
from speaker.parts import Change, diff_parts, parts_for, restart_required
from speaker.reload_report import config_changes

BASE: dict[str, Any] = {
    "node": {"name": "lb1", "router_id": "192.0.2.10",
             "interfaces": [{"name": "eth0", "role": "client"}]},
    "services": [{"name": "web", "vip": "203.0.113.10", "ports": [80], "announce": "l2",
                  "backends": [{"address": "198.51.100.11", "port": 8080}]}],
    "dataplane": {"ipvs": False},
}
BGP = {"local_asn": 65010, "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000}]}


def cfg(**over: Any) -> AppConfig:
    return AppConfig.model_validate({**BASE, **over})


def bgp_service(name: str = "api", vip: str = "203.0.113.20") -> dict[str, Any]:
    return {"name": name, "vip": vip, "ports": [443], "announce": "bgp",
            "backends": [{"address": "198.51.100.12", "port": 8443}]}


def test_parts_follow_the_config() -> None:
    parts = parts_for(cfg())
    assert list(parts) == ["health", "election", "l2", "addresses", "sysctls", "api",
                           "metrics", "log"]
    assert parts["election"].variant == "single"
    assert "forwarder" not in parts
    assert "bgp" not in parts
    both = parts_for(cfg(bgp=BGP, services=[*BASE["services"], bgp_service()],
                         dataplane={"ipvs": True}))
    assert {"bgp", "forwarder", "l2"} <= set(both)
    # a bgp section without a BGP service runs no speaker
    assert "bgp" not in parts_for(cfg(bgp=BGP))


def test_adding_l2_bgp_and_vrrp_goes_live() -> None:
    old = cfg(services=[bgp_service()], bgp=BGP)
    new = cfg(services=[bgp_service(), *BASE["services"]], bgp=BGP,
              election={"engine": "vrrp", "vrrp": {"interface": "eth0"},
                        "groups": [{"name": "default", "vrid": 7}]})
    changes = diff_parts(parts_for(old), parts_for(new))
    assert Change("l2", "start") in changes
    assert Change("election", "replace", "single -> vrrp") in changes
    assert not restart_required(changes)
    back = diff_parts(parts_for(new), parts_for(cfg()))
    stops = [c for c in back if c.action == "stop"]
    assert back[:len(stops)] == tuple(stops)  # stops first, in reverse start order
    assert [c.kind for c in stops] == ["bfd", "bgp"]
    assert str(stops[1]) == "part bgp stopped"


def test_what_cannot_change_live_is_named() -> None:
    old, new = cfg(), cfg(metrics={"port": 9470}, api={"socket": "/run/x/api.sock"},
                          dataplane={"ipvs": True})
    assert sorted(restart_required(diff_parts(parts_for(old), parts_for(new)))) == [
        "api.socket", "dataplane.ipvs", "metrics.port"]
    ipvs = cfg(dataplane={"ipvs": True})
    moved = cfg(dataplane={"ipvs": True, "state_file": "/var/lib/x/owned"})
    assert restart_required(diff_parts(parts_for(ipvs), parts_for(moved))) == [
        "dataplane.state_file"]
    assert restart_required(diff_parts(parts_for(cfg()), parts_for(
        cfg(dataplane={"ipvs": False, "vip_interface": "lo2"})))) == ["dataplane.vip_interface"]
    # log level is live
    assert not restart_required(diff_parts(parts_for(cfg()),
                                           parts_for(cfg(log={"level": "debug"}))))


def test_report_lines() -> None:
    old = cfg(bgp=BGP, services=[*BASE["services"], bgp_service()])
    peers = [{**BGP["peers"][0], "hold_time": "30s"},
             {"name": "r2", "address": "192.0.2.2", "asn": 65000}]
    new = cfg(bgp={**BGP, "peers": peers},
              services=[{**BASE["services"][0], "ports": [80, 81]},
                        bgp_service("api2", "203.0.113.21")])
    assert config_changes(old, new) == [
        "vip 203.0.113.21 gained (service api2)", "vip 203.0.113.20 lost (service api)",
        "service web changed (ports)", "bgp peer r2 added",
        "bgp peer r1 restarted (settings changed)"]
