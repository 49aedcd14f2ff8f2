"""Config builders for the health-checker tests (plain dicts through the real model)."""

from __future__ import annotations

from typing import Any

from speaker.config import AppConfig


def service(name: str, backends: list[dict[str, Any]], health: dict[str, Any] | None = None,
            *, vip: str = "203.0.113.10", ports: list[int] | None = None,
            quorum: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """One service dict (announced over L2 so that no bgp section is needed)."""
    out: dict[str, Any] = {"name": name, "vip": vip, "ports": ports or [80],
                           "announce": "l2", "backends": backends, **extra}
    if health is not None:
        out["health"] = health
    if quorum is not None:
        out["quorum"] = quorum
    return out


def app(*services: dict[str, Any], bgp: bool = False) -> AppConfig:
    """A whole appliance config holding these services (with a BGP peer if `bgp`)."""
    data: dict[str, Any] = {
        "node": {"name": "lb1", "router_id": "192.0.2.1",
                 "interfaces": [{"name": "eth0", "role": "both"}]},
        "services": list(services),
    }
    if bgp:
        data["bgp"] = {"local_asn": 65010, "peers": [
            {"name": "r1", "address": "192.0.2.254", "asn": 65000}]}
    return AppConfig.model_validate(data)
