"""Bad configs: every error names the offending field, never a traceback."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from speaker.config import ConfigError, parse_text

BASE: dict[str, Any] = {
    "node": {"name": "lb1", "router_id": "192.0.2.10",
             "interfaces": [{"name": "eth0", "role": "client"}]},
    "election": {"engine": "single"},
    "bgp": {"local_asn": 65010,
            "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000}]},
    "services": [{
        "name": "web", "vip": "203.0.113.10", "ports": [80],
        "backends": [{"address": "198.51.100.11", "port": 8080},
                     {"address": "198.51.100.12", "port": 8080}],
    }],
}


def mutate(path: str, value: Any) -> dict[str, Any]:
    """BASE with the dotted `path` set to `value` (None deletes; [i] indexes lists)."""
    data = copy.deepcopy(BASE)
    keys: list[str | int] = []
    for part in path.split("."):
        if "[" in part:
            name, idx = part.rstrip("]").split("[")
            keys += [name, int(idx)]
        else:
            keys.append(part)
    node: Any = data
    for key in keys[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    if value is None:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


CASES = [
    ("node.name", "lb 1", "node.name"),
    ("node.name", "lb1\nannounce route 0.0.0.0/0", "node.name"),
    ("node.router_id", "not-an-ip", "node.router_id"),
    ("node.router_id", None, "node.router_id"),
    ("node.interfaces", [], "node.interfaces"),
    ("node.interfaces[0].name", "a-very-long-interface-name", "node.interfaces[0].name"),
    ("node.interfaces[0].role", "uplink", "node.interfaces[0].role"),
    ("node.self_checks", {"uplinks": ["eth9"]}, "node.self_checks.uplinks[0]"),
    ("election.engine", "raft", "election.engine"),
    ("election", {"engine": "vrrp", "groups": [{"name": "g"}]}, "election"),
    ("election", {"engine": "etcd"}, "election"),
    ("election", {"groups": [{"name": "g", "advert_interval": "50s"}]},
     "election.groups[0].advert_interval"),
    ("election", {"groups": [{"name": "g", "priority": 0}]}, "election.groups[0].priority"),
    ("bgp.local_asn", 0, "bgp.local_asn"),
    ("bgp.local_asn", 4294967295, "bgp.local_asn"),
    ("bgp.peers[0].address", "192.0.2.300", "bgp.peers[0].address"),
    ("bgp.peers[0].password", "secret\nneighbor 6.6.6.6", "bgp.peers[0].password"),
    ("bgp.peers[0].password", "x" * 81, "bgp.peers[0].password"),
    ("bgp.peers[0].password", "two words", "bgp.peers[0].password"),
    ("bgp.peers[0].password", "a}b", "bgp.peers[0].password"),
    ("bgp.peers[0].hold_time", "1s", "bgp.peers[0].hold_time"),
    ("bgp.peers[0].keepalive", "20s", "bgp.peers[0].keepalive"),
    ("bgp.peers[0].families", ["ipv4-flowspec"], "bgp.peers[0].families[0]"),
    ("bgp.peers[0].graceful_restart", {"enabled": True, "restart_time": 5000},
     "bgp.peers[0].graceful_restart.restart_time"),
    ("bgp.defaults", {"communities": ["65536:1"]}, "bgp.defaults.communities[0]"),
    ("bgp.defaults", {"communities": ["65000:1\n"]}, "bgp.defaults.communities[0]"),
    ("bgp.defaults", {"large_communities": ["1:2"]}, "bgp.defaults.large_communities[0]"),
    ("bgp.defaults", {"as_path_prepend": 40}, "bgp.defaults.as_path_prepend"),
    ("bgp.defaults", {"med": -1}, "bgp.defaults.med"),
    ("bgp.pools", ["198.18.0.0/15"], "services[0].vip"),
    ("bgp.peers[0].colour", "blue", "bgp.peers[0].colour"),
    ("services[0].vip", "203.0.113.999", "services[0].vip"),
    ("services[0].ports", [0], "services[0].ports[0]"),
    ("services[0].ports", [], "services[0].ports"),
    ("services[0]", {"name": "fw", "vip": "203.0.113.10", "fwmark": 7,
                     "backends": [{"address": "198.51.100.11"}]}, "services[0].health.port"),
    ("services[0].protocol", "icmp", "services[0].protocol"),
    ("services[0].announce", "ospf", "services[0].announce"),
    ("services[0].scheduler", "random", "services[0].scheduler"),
    ("services[0].scheduler_flags", ["mh-port"], "services[0].scheduler_flags[0]"),
    ("services[0].forwarding", "snat", "services[0].forwarding"),
    ("services[0].persistence", {"timeout": "40d"}, "services[0].persistence"),
    ("services[0].persistence", {"timeout": "soon"}, "services[0].persistence.timeout"),
    ("services[0].backends", [], "services[0].backends"),
    ("services[0].backends[0].weight", -1, "services[0].backends[0].weight"),
    ("services[0].backends[1].address", "2001:db8::1", "services[0].backends[1].address"),
    ("services[0].health", {"type": "http", "timeout": "3s", "interval": "1s"},
     "services[0].health.timeout"),
    ("services[0].health", {"type": "ping"}, "services[0].health.type"),
    ("services[0].health", {"type": "exec"}, "services[0].health.exec"),
    ("services[0].health", {"type": "tcp", "http": {"path": "/"}}, "services[0].health.http"),
    ("services[0].health", {"type": "http", "http": {"path": "healthz"}},
     "services[0].health.http.path"),
    ("services[0].health", {"type": "http", "http": {"expect_status": ["2xx"]}},
     "services[0].health.http.expect_status"),
    ("services[0].health", {"type": "http", "http": {"body_regex": "(["}},
     "services[0].health.http.body_regex"),
    ("services[0].health", {"type": "dns", "dns": {"type": "ANY"}},
     "services[0].health.dns.type"),
    ("services[0].health", {"rise": 0}, "services[0].health.rise"),
    ("services[0].quorum", {"min_healthy": 3}, "services[0].quorum.min_healthy"),
    ("services[0].quorum", {"below": "panic"}, "services[0].quorum.below"),
    ("services[0].group", "nope", "services[0].group"),
    ("metrics.port", 70000, "metrics.port"),
    ("log.format", "xml", "log.format"),
    ("servics", [], "servics"),
]


@pytest.mark.parametrize(("path", "value", "expected"), CASES,
                         ids=[f"{c[0]}={str(c[1])[:20]}" for c in CASES])
def test_bad_config_names_the_field(path: str, value: Any, expected: str) -> None:
    nested = "." in path or "[" in path
    data = mutate(path, value) if nested else {**copy.deepcopy(BASE), path: value}
    with pytest.raises(ConfigError) as info:
        parse_text(yaml.safe_dump(data))
    paths = [issue.path for issue in info.value.issues]
    assert expected in paths, f"expected an error at {expected}, got {info.value.issues}"
    for issue in info.value.issues:
        assert "Traceback" not in issue.message
        assert issue.message


def test_base_is_valid() -> None:
    assert parse_text(yaml.safe_dump(BASE)).services[0].name == "web"


def test_every_error_is_listed_at_once() -> None:
    data = mutate("services[0].protocol", "icmp")
    data["node"]["name"] = "bad name"
    data["log"] = {"format": "xml"}
    with pytest.raises(ConfigError) as info:
        parse_text(yaml.safe_dump(data))
    paths = {i.path for i in info.value.issues}
    assert {"node.name", "services[0].protocol", "log.format"} <= paths


def test_cross_field_errors_are_all_listed() -> None:
    data = copy.deepcopy(BASE)
    data["services"].append({**copy.deepcopy(data["services"][0]), "group": "nope"})
    with pytest.raises(ConfigError) as info:
        parse_text(yaml.safe_dump(data))
    paths = [i.path for i in info.value.issues]
    assert "services[1].name" in paths
    assert "services[1].ports" in paths
    assert "services[1].group" in paths


def test_error_carries_the_yaml_line() -> None:
    text = yaml.safe_dump(mutate("services[0].scheduler", "random"), sort_keys=False)
    with pytest.raises(ConfigError) as info:
        parse_text(text)
    issue = next(i for i in info.value.issues if i.path == "services[0].scheduler")
    assert issue.line is not None
    assert "scheduler" in text.splitlines()[issue.line - 1]


def test_kubernetes_affinity_timeout_is_accepted() -> None:
    cfg = parse_text(yaml.safe_dump(mutate("services[0].persistence", {"timeout": 10800})))
    assert cfg.services[0].persistence is not None
    assert cfg.services[0].persistence.timeout == 10800.0
    cfg = parse_text(yaml.safe_dump(mutate("services[0].persistence", {"timeout": "3h"})))
    assert cfg.services[0].persistence is not None
    assert cfg.services[0].persistence.timeout == 10800.0
