"""Duplicate-owner detection: another MAC claims a VIP this appliance answers for.

Pure bookkeeping with injected time. A foreign claim (an ARP reply or
gratuitous ARP with the VIP as sender, or an NA for the VIP, from a MAC that
is not ours) first makes the VIP a *suspect*; the responder then probes
(RFC 5227 style) after `grace`, and a claim seen again after `grace` confirms
the conflict. The grace keeps a normal handover (the new owner's GARP reaches
the old owner a moment before the old owner lets go) from counting as a
conflict. A conflict clears when no claim was seen for `expiry` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from speaker.model import IPAddress


class Verdict(StrEnum):
    """What one foreign claim means."""

    SUSPECT = "suspect"
    """First sighting: probe again after the grace period."""
    CONFIRMED = "confirmed"
    """Seen again after the grace period: a duplicate owner (log, count, resolve)."""
    ONGOING = "ongoing"
    """Already confirmed, or still within the grace period."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """Another owner of one of our VIPs."""

    vip: IPAddress
    other_mac: str
    interface: str
    first_seen: float
    last_seen: float
    confirmed: bool = False


class ConflictTracker:
    """Suspected and confirmed conflicts per VIP."""

    def __init__(self, grace: float = 0.3, expiry: float = 15.0) -> None:
        self.grace = grace
        self.expiry = expiry
        self._conflicts: dict[IPAddress, Conflict] = {}

    def claim(self, vip: IPAddress, other_mac: str, interface: str, now: float) -> Verdict:
        """Record a foreign claim for `vip` seen at `now`."""
        known = self._conflicts.get(vip)
        if known is None or known.other_mac != other_mac:
            self._conflicts[vip] = Conflict(vip, other_mac, interface, now, now)
            return Verdict.SUSPECT
        if known.confirmed or now - known.first_seen < self.grace:
            self._conflicts[vip] = replace(known, last_seen=now)
            return Verdict.ONGOING
        self._conflicts[vip] = replace(known, last_seen=now, confirmed=True)
        return Verdict.CONFIRMED

    def expire(self, now: float) -> list[Conflict]:
        """Drop conflicts not seen for `expiry` (suspects: for 4 x grace); return the
        confirmed ones dropped (they are resolved)."""
        cleared: list[Conflict] = []
        for vip, c in list(self._conflicts.items()):
            limit = self.expiry if c.confirmed else max(4 * self.grace, 1.0)
            if now - c.last_seen >= limit:
                del self._conflicts[vip]
                if c.confirmed:
                    cleared.append(c)
        return cleared

    def forget(self, vip: IPAddress) -> None:
        """We no longer own `vip`: whatever another MAC does with it is fine."""
        self._conflicts.pop(vip, None)

    def suspects(self) -> list[Conflict]:
        """Unconfirmed conflicts (the responder re-probes these)."""
        return [c for c in self._conflicts.values() if not c.confirmed]

    def confirmed(self) -> list[Conflict]:
        """Confirmed conflicts, sorted by VIP."""
        return sorted((c for c in self._conflicts.values() if c.confirmed),
                      key=lambda c: (c.vip.version, c.vip))

    def seen(self, vip: IPAddress) -> bool:
        """True if another MAC claimed `vip` recently (suspected or confirmed)."""
        return vip in self._conflicts

    def is_confirmed(self, vip: IPAddress) -> bool:
        """True if `vip` has a confirmed conflict."""
        c = self._conflicts.get(vip)
        return c is not None and c.confirmed
