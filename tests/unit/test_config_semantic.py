"""Semantic checks an operator expects from `config check`, each at the field's path."""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from speaker.config import ConfigError, parse_text

BASE: dict[str, Any] = {
    "node": {"name": "lb1", "router_id": "192.0.2.10",
             "interfaces": [{"name": "eth0", "role": "client"}]},
    "bgp": {"local_asn": 65010,
            "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000,
                       "local_address": "192.0.2.10"}]},
    "services": [{
        "name": "web", "vip": "203.0.113.10", "ports": [80],
        "backends": [{"address": "198.51.100.11", "port": 8080},
                     {"address": "198.51.100.12", "port": 8080}],
    }, {
        "name": "dns", "vip": "203.0.113.20", "ports": [53], "protocol": "udp",
        "backends": [{"address": "198.51.100.21"}],
    }],
}


def with_value(path: str, value: Any) -> dict[str, Any]:
    """BASE with the dotted `path` ([i] indexes lists) set to `value`."""
    data = copy.deepcopy(BASE)
    keys: list[str | int] = []
    for part in path.split("."):
        name, _, rest = part.partition("[")
        keys.append(name)
        keys += [int(i) for i in filter(None, rest.replace("]", "").split("["))]
    node: Any = data
    for key in keys[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    node[keys[-1]] = value
    return data


def issues_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_text(yaml.safe_dump(data))
    return {i.path: i.message for i in info.value.issues}


CASES: list[tuple[str, Any, str, str]] = [
    # unusable VIPs
    ("services[0].vip", "0.0.0.0", "services[0].vip", "unspecified"),
    ("services[0].vip", "::", "services[0].vip", "unspecified"),
    ("services[0].vip", "127.0.0.5", "services[0].vip", "loopback"),
    ("services[0].vip", "::1", "services[0].vip", "loopback"),
    ("services[0].vip", "224.0.0.18", "services[0].vip", "multicast"),
    ("services[0].vip", "ff02::1", "services[0].vip", "multicast"),
    ("services[0].vip", "255.255.255.255", "services[0].vip", "broadcast"),
    ("services[0].vip", "169.254.1.1", "services[0].vip", "link-local"),
    ("services[0].vip", "fe80::1", "services[0].vip", "link-local"),
    # a VIP that is somebody else's address
    ("services[0].vip", "198.51.100.11", "services[0].backends[0].address", "loop"),
    ("services[1].vip", "198.51.100.11", "services[0].backends[0].address", "VIP of"),
    ("services[0].vip", "192.0.2.10", "services[0].vip", "node.router_id"),
    ("services[0].vip", "192.0.2.1", "services[0].vip", "bgp.peers[0].address"),
    ("bgp.router_id", "203.0.113.10", "services[0].vip", "bgp.router_id"),
    # one VIP, two groups
    ("services[1]", {"name": "web2", "vip": "203.0.113.10", "ports": [443], "group": "other",
                     "backends": [{"address": "198.51.100.11"}]}, "services[1].group",
     "one owner"),
    # catch-all pools
    ("bgp.pools", ["203.0.113.0/24", "0.0.0.0/0"], "bgp.pools[1]", "catch-all"),
    ("bgp.pools", ["::/0"], "bgp.pools[0]", "catch-all"),
    ("dataplane", {"owned_ranges": ["0.0.0.0/0"]}, "dataplane.owned_ranges[0]", "every IPVS"),
    # timers
    ("services[0].health", {"interval": float("inf")}, "services[0].health.interval", "finite"),
    ("services[0].health", {"timeout": float("nan")}, "services[0].health.timeout", "finite"),
    ("services[0].health", {"interval": 0}, "services[0].health.interval", "greater than 0"),
    ("services[0].health", {"interval": "400d"}, "services[0].health.interval", "year"),
    ("services[0].health", {"interval": "3s", "fast_interval": "4s"},
     "services[0].health.fast_interval", "fast_interval"),
    ("services[0].health", {"interval": "1s", "timeout": "1s"},
     "services[0].health.timeout", "shorter than interval"),
    ("services[0].health", {"interval": "0.5s"}, "services[0].health.interval",
     "shorter than interval"),
    ("services[0].drain_time", float("inf"), "services[0].drain_time", "finite"),
    ("services[0].drain_time", 0, "services[0].drain_time", "greater than 0"),
    ("bgp.graceful_shutdown_time", float("inf"), "bgp.graceful_shutdown_time", "finite"),
    ("bgp.peers[0].hold_time", float("inf"), "bgp.peers[0].hold_time", "finite"),
    ("bgp.peers[0].hold_time", 70000, "bgp.peers[0].hold_time", "3..65535"),
    ("bgp.peers[0].hold_time", 2, "bgp.peers[0].hold_time", "3..65535"),
    ("bgp.peers[0].hold_time", 0, "bgp.peers[0].hold_time", "greater than 0"),
    # backup routes that overflow
    ("bgp.active_backup", {"med_penalty": 2**32}, "bgp.active_backup.med_penalty", "32-bit"),
    ("services[0].bgp", {"mode": "active-backup", "med": 2**32 - 10},
     "services[0].bgp.med", "32-bit"),
    ("services[0].bgp", {"mode": "active-backup", "as_path_prepend": 15},
     "services[0].bgp.as_path_prepend", "exceeds 16"),
    # TCP-MD5 keys count bytes
    ("bgp.peers[0].password", "é" * 41, "bgp.peers[0].password", "82 bytes"),
    ("bgp.peers[0].password", "key\x85more", "bgp.peers[0].password", "control"),
    ("bgp.peers[0].password", "key\u202emore", "bgp.peers[0].password", "bidirectional"),
    # ports
    ("services[0].ports", [70000], "services[0].ports[0]", "65535"),
    ("services[0].ports", [True], "services[0].ports[0]", "true/false"),
    ("services[0].ports", [80, 80], "services[0].ports[1]", "twice"),
    ("services[0].backends[0].port", 0, "services[0].backends[0].port", "greater than"),
    # api and metrics
    ("metrics.address", "localhost", "metrics.address", "not an IP address"),
    ("metrics.address", "127.0.0.1:9469", "metrics.address", "not an IP address"),
    ("api.socket", "run/api.sock", "api.socket", "absolute"),
    ("api.socket", "/run/a\x9bb.sock", "api.socket", "control"),
    ("api.socket", "/run/\u202eb.sock", "api.socket", "bidirectional"),
    ("api.mode", 0o666, "api.mode", "allow_wide_mode"),
    ("api.mode", 0o770, "api.mode", "allow_wide_mode"),
    ("dataplane.state_file", "/var/lib/x\x1by", "dataplane.state_file", "control"),
    ("bgp.exabgp", "/usr/bin/exabgp\u2066", "bgp.exabgp", "bidirectional"),
    ("services[0].health", {"type": "https", "http": {"ca_bundle": "ca.pem"}},
     "services[0].health.http.ca_bundle", "absolute"),
    # fields no part honours
    ("node.interfaces[0].vlan", 100, "node.interfaces[0].vlan", "not supported"),
    # duplicates name the second one
    ("bgp.peers", [{"name": "r1", "address": "192.0.2.1", "asn": 65000},
                   {"name": "r2", "address": "192.0.2.1", "asn": 65000}],
     "bgp.peers[1].address", "already used by bgp.peers[0]"),
    ("services[0].backends[1].address", "198.51.100.11", "services[0].backends[1]",
     "already backends[0]"),
]


@pytest.mark.parametrize(("path", "value", "expected", "words"), CASES,
                         ids=[f"{c[0]}={str(c[1])[:24]}" for c in CASES])
def test_semantic_error_names_the_field(path: str, value: Any, expected: str,
                                        words: str) -> None:
    found = issues_of(with_value(path, value))
    assert expected in found, f"expected {expected}, got {found}"
    assert words in found[expected]


def test_base_is_valid() -> None:
    cfg = parse_text(yaml.safe_dump(BASE))
    assert [s.name for s in cfg.services] == ["web", "dns"]


@pytest.mark.parametrize(("path", "value"), [
    ("api.mode", 0o600),
    ("api.mode", 0o640),
    ("metrics.address", "::"),
    ("bgp.peers[0].hold_time", 65535),
    ("bgp.pools", ["203.0.113.0/24"]),
    ("services[0].health", {"interval": "1s", "fast_interval": "1s", "timeout": "0.5s"}),
    ("services[0].bgp", {"mode": "active-backup", "med": 2**32 - 101, "as_path_prepend": 13}),
    ("bgp.peers[0].password", "k" * 80),
])
def test_edge_values_are_accepted(path: str, value: Any) -> None:
    assert parse_text(yaml.safe_dump(with_value(path, value)))


def test_wide_mode_with_opt_in_is_accepted() -> None:
    data = with_value("api", {"mode": 0o666, "allow_wide_mode": True})
    assert parse_text(yaml.safe_dump(data)).api.mode == 0o666


def test_api_socket_over_an_existing_file_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "api.sock"
    plain.write_text("not a socket")
    found = issues_of(with_value("api.socket", str(plain)))
    assert "not a socket" in found["api.socket"]
    assert plain.exists()


def test_api_socket_over_an_old_socket_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
        assert parse_text(yaml.safe_dump(with_value("api.socket", str(path))))
    finally:
        sock.close()
        os.unlink(path)


def test_active_backup_mode_checks_defaults() -> None:
    data = copy.deepcopy(BASE)
    data["bgp"].update(mode="active-backup", defaults={"med": 2**32 - 1})
    assert "32-bit" in issues_of(data)["bgp.defaults.med"]


def test_ecmp_services_may_use_any_med() -> None:
    data = with_value("services[0].bgp", {"med": 2**32 - 1})
    assert parse_text(yaml.safe_dump(data))


def test_yaml_infinity_in_a_timer_is_rejected_by_the_loader() -> None:
    text = yaml.safe_dump(BASE).replace("asn: 65000", "asn: 65000\n    hold_time: .inf")
    with pytest.raises(ConfigError) as info:
        parse_text(text)
    assert info.value.issues[0].path == "bgp.peers[0].hold_time"
