"""Appliance self-health: uplinks up and enough services at quorum."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from speaker.config import AppConfig
from speaker.model import Reason, VipDecision
from speaker.reconcile.inputs import ApplianceHealth

_SERVING = (Reason.ANNOUNCED, Reason.BACKUP_ROUTE, Reason.FAIL_OPEN, Reason.NOT_LEADER,
            Reason.NOT_ANNOUNCED_HERE)


def link_is_up(name: str, sysfs: Path = Path("/sys/class/net")) -> bool:
    """Operational state of an interface (`up`, or `unknown` for lo-like links)."""
    try:
        state = (sysfs / name / "operstate").read_text().strip()
    except OSError:
        return False
    return state in ("up", "unknown")


def appliance_health(config: AppConfig, decisions: Iterable[VipDecision],
                     link_up: Callable[[str], bool] = link_is_up) -> ApplianceHealth:
    """Healthy unless an uplink is down or too few services are at quorum."""
    reasons = [f"uplink_down:{name}" for name in config.node.self_checks.uplinks
               if not link_up(name)]
    minimum = config.node.self_checks.min_healthy_services
    if minimum:
        serving = sum(1 for d in decisions if d.healthy > 0 and (
            d.bgp in _SERVING or d.l2 in _SERVING) and d.bgp is not Reason.BELOW_QUORUM
                      and d.l2 is not Reason.BELOW_QUORUM)
        if serving < minimum:
            reasons.append(f"services_at_quorum:{serving}<{minimum}")
    return ApplianceHealth(not reasons, tuple(reasons))
