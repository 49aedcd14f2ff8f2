"""What a reload changed in the config an operator cares about, one line per change.

Pure. `config_changes(old, new)` names VIPs gained and lost, services whose
settings changed and BGP peers added, removed or changed (ExaBGP re-forms a
changed peer's session). `speaker reload` prints these lines together with the
parts started, stopped and replaced (`speaker.parts.Change`).
"""

from __future__ import annotations

from speaker.config import AppConfig
from speaker.config.bgp import PeerConfig
from speaker.config.service import ServiceConfig


def _services(config: AppConfig) -> dict[str, ServiceConfig]:
    return {s.name: s for s in config.services}


def _peers(config: AppConfig) -> dict[str, PeerConfig]:
    return {p.name: p for p in (config.bgp.peers if config.bgp is not None else [])}


def config_changes(old: AppConfig, new: AppConfig) -> list[str]:
    """One line per VIP gained/lost, service changed, peer added/removed/changed."""
    lines: list[str] = []
    before, after = _services(old), _services(new)
    old_vips = {(s.vip, s.name) for s in old.services}
    new_vips = {(s.vip, s.name) for s in new.services}
    key = lambda v: (v[0].version, int(v[0]), v[1])  # noqa: E731 - local sort key
    lines += [f"vip {vip} gained (service {name})" for vip, name in sorted(new_vips - old_vips,
                                                                         key=key)]
    lines += [f"vip {vip} lost (service {name})" for vip, name in sorted(old_vips - new_vips,
                                                                       key=key)]
    for name in sorted(before.keys() & after.keys()):
        if before[name] != after[name] and before[name].vip == after[name].vip:
            fields = sorted(f for f in ServiceConfig.model_fields
                            if getattr(before[name], f) != getattr(after[name], f))
            lines.append(f"service {name} changed ({', '.join(fields)})")
    p_before, p_after = _peers(old), _peers(new)
    lines += [f"bgp peer {n} added" for n in sorted(p_after.keys() - p_before.keys())]
    lines += [f"bgp peer {n} removed" for n in sorted(p_before.keys() - p_after.keys())]
    lines += [f"bgp peer {n} restarted (settings changed)"
              for n in sorted(p_before.keys() & p_after.keys()) if p_before[n] != p_after[n]]
    if old.election.groups != new.election.groups:
        lines.append("election groups changed")
    return lines
