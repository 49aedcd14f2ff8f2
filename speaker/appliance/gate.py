"""The health gate of a new image: a counted boot is good only once the speaker serves.

``edge-speaker-health.service`` runs ``speaker update health-gate`` on boots that
systemd-boot counts (an update's first boots): it is ``RequiredBy=`` and ``Before=``
``boot-complete.target``, which ``systemd-bless-boot.service`` waits for before it
marks the entry good. The gate passes when the daemon is READY and announcing: the
appliance is healthy, at least one BGP session is up (if peers are configured) and
every VIP this appliance decided to announce is sent to a router or owned on the
segment (a standby that announces nothing passes on readiness alone). It fails at
once when ``edge-speaker.service`` has failed (e.g. its start limit was hit), or
after the timeout; the unit's ``FailureAction=reboot`` then reboots, and with no
tries left systemd-boot boots the previous slot. Normal (blessed) boots never run it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


def verdict(doc: dict[str, Any]) -> tuple[bool, str]:
    """Pass or not, and why, from the daemon's status document."""
    if not doc.get("ready"):
        return False, "not_ready"
    app = doc.get("appliance", {})
    if not app.get("healthy", False):
        return False, "appliance_unhealthy:" + ",".join(app.get("reasons", []))
    peers = doc.get("peers", [])
    if peers and not any(p.get("state") == "up" for p in peers):
        return False, "no_bgp_session_up"
    missing, announced = [], 0
    for vip in doc.get("vips", []):
        if vip["bgp"].get("desired") and not vip["bgp"].get("announced"):
            missing.append(f"bgp:{vip['vip']}")
        if vip["l2"].get("desired") and not vip["l2"].get("owned"):
            missing.append(f"l2:{vip['vip']}")
        announced += bool(vip["bgp"].get("announced") or vip["l2"].get("owned"))
    if missing:
        return False, "not_announcing:" + ",".join(missing)
    return True, f"ready, announcing {announced} VIP(s)"


class Probe(Protocol):
    """What the gate looks at."""

    def unit_state(self) -> str:
        """``ActiveState`` of edge-speaker.service (``active``, ``failed``, ...)."""

    def status(self) -> dict[str, Any] | None:
        """The daemon's status document, or None if it does not answer."""


@dataclass(frozen=True, slots=True)
class GateResult:
    passed: bool
    reason: str
    waited: float


def wait_for_health(probe: Probe, timeout: float, every: float = 2.0,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep,
                    say: Callable[[str], None] = lambda s: None) -> GateResult:
    """Poll ``probe`` until the speaker passes, has failed, or ``timeout`` elapses."""
    start = clock()
    last = ""
    while True:
        state = probe.unit_state()
        if state == "failed":
            return GateResult(False, "edge-speaker.service failed", clock() - start)
        doc = probe.status() if state == "active" else None
        if doc is not None:
            ok, why = verdict(doc)
            if ok:
                return GateResult(True, why, clock() - start)
        else:
            why = f"edge-speaker.service is {state}"
        if why != last:
            say(f"waiting: {why}")
            last = why
        if clock() - start >= timeout:
            return GateResult(False, f"timed out after {timeout:.0f} s ({why})",
                              clock() - start)
        sleep(every)
