"""Helpers that run *inside* the guest (imported by agent ``py`` requests).

Tests describe IPVS tables as JSON-friendly dicts; these functions turn them into
model values, sync them through :class:`dataplane.ipvs.forwarder.IpvsForwarder`
and read the kernel back as dicts, so assertions happen on the host.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any

from dataplane.ipvs.forwarder import IpvsForwarder
from dataplane.ipvs.model import Dest, DestKey, IpvsTable, Service, ServiceKey
from dataplane.ipvs.ownership import Ownership

OWNED = Ownership(vip_ranges=(ip_network("203.0.113.0/25"), ip_network("2001:db8:ff::/64")),
                  fwmarks=range(1, 100))
_forwarder: IpvsForwarder | None = None


def forwarder() -> IpvsForwarder:
    global _forwarder  # noqa: PLW0603 - one netlink socket per guest session
    if _forwarder is None:
        _forwarder = IpvsForwarder(OWNED)
    return _forwarder


def service_key(spec: dict[str, Any]) -> ServiceKey:
    if spec.get("fwmark"):
        return ServiceKey.of_fwmark(spec["fwmark"], spec.get("family", 4))
    return ServiceKey(spec.get("proto", "tcp"), ip_address(spec["vip"]), spec.get("port", 80))


def table(specs: list[dict[str, Any]]) -> IpvsTable:
    services, dests = [], []
    for spec in specs:
        key = service_key(spec)
        services.append(Service(
            key, spec.get("sched", "wlc"), frozenset(spec.get("flags", ())),
            spec.get("persistence"), spec.get("netmask"), spec.get("one_packet", False),
        ))
        dests += [
            Dest(DestKey(key, ip_address(d["addr"]), d.get("port", key.port)),
                 d.get("weight", 1), d.get("method", "nat"), d.get("upper", 0), d.get("lower", 0))
            for d in spec.get("dests", ())
        ]
    return IpvsTable.of(services, dests)


def to_specs(tbl: IpvsTable) -> list[dict[str, Any]]:
    out = []
    for key in sorted(tbl.services, key=ServiceKey.sort_key):
        svc = tbl.services[key]
        spec: dict[str, Any] = {
            "key": str(key), "sched": svc.scheduler, "flags": sorted(svc.sched_flags),
            "persistence": svc.persistence, "netmask": svc.netmask, "one_packet": svc.one_packet,
            "dests": sorted(
                ({"addr": str(d.key.address), "port": d.key.port, "weight": d.weight,
                  "method": d.method, "upper": d.upper_threshold, "lower": d.lower_threshold}
                 for d in tbl.dests_of(key)),
                key=lambda d: (d["addr"], d["port"]),
            ),
        }
        out.append(spec)
    return out


def sync(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """Sync the table to ``specs``; report ops sent and failures."""
    result = forwarder().sync(table(specs))
    return {"sent": result.sent, "failures": [(str(op), err) for op, err in result.failures]}


def observe() -> list[dict[str, Any]]:
    return to_specs(forwarder().observe())


def stats() -> dict[str, Any]:
    _tbl, st = forwarder().snapshot()
    return {
        "services": {str(k): v.connections for k, v in st.services.items()},
        "dests": {str(k): [v.active_connections, v.inactive_connections, v.stats.connections]
                  for k, v in st.dests.items()},
    }
