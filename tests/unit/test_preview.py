"""The pure parts of `speaker plan`: which VIP decisions a reload moves."""

from __future__ import annotations

from ipaddress import ip_address

from dataplane.ipvs.model import IpvsTable
from speaker.model import Reason, VipDecision
from speaker.preview import vip_changes
from speaker.reconcile.desired import Desired


def desired(*decisions: VipDecision) -> Desired:
    return Desired(decisions, frozenset(), frozenset(), frozenset(), IpvsTable())


def decision(service: str, vip: str, bgp: Reason, l2: Reason = Reason.NOT_ANNOUNCED_HERE
             ) -> VipDecision:
    return VipDecision(service, ip_address(vip), bgp, l2, 1, 1, True)


def test_gained_lost_and_moved_vips() -> None:
    before = desired(decision("web", "203.0.113.10", Reason.ANNOUNCED),
                     decision("old", "203.0.113.11", Reason.ANNOUNCED))
    after = desired(decision("web", "203.0.113.10", Reason.DRAINED),
                    decision("new", "203.0.113.12", Reason.ANNOUNCED))
    assert [str(c) for c in vip_changes(before, after)] == [
        "vip 203.0.113.10 (web) bgp: announced -> drained",
        "vip 203.0.113.11 (old) bgp: announced -> absent",
        "vip 203.0.113.12 (new) bgp: absent -> announced"]


def test_unchanged_and_unused_mechanisms_are_quiet() -> None:
    same = desired(decision("web", "203.0.113.10", Reason.ANNOUNCED))
    assert vip_changes(same, same) == []
    # a service appearing with no L2 does not report its unused L2 mechanism
    assert [c.mode for c in vip_changes(None, same)] == ["bgp"]
