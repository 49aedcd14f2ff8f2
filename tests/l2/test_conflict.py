"""Duplicate-owner bookkeeping: suspect, confirm after the grace period, clear."""

from __future__ import annotations

from ipaddress import IPv4Address

from speaker.l2.conflict import ConflictTracker, Verdict

VIP = IPv4Address("192.0.2.100")


def test_a_single_claim_is_only_a_suspect_and_fades() -> None:
    t = ConflictTracker(grace=0.3, expiry=15.0)
    assert t.claim(VIP, "02:00:00:00:00:0b", "eth0", 10.0) is Verdict.SUSPECT
    assert t.claim(VIP, "02:00:00:00:00:0b", "eth0", 10.1) is Verdict.ONGOING
    assert t.confirmed() == []
    assert t.expire(12.0) == []  # suspects go quietly
    assert t.suspects() == []


def test_claims_across_the_grace_period_confirm_once_and_clear_after_expiry() -> None:
    t = ConflictTracker(grace=0.3, expiry=15.0)
    t.claim(VIP, "02:00:00:00:00:0b", "eth0", 10.0)
    assert t.claim(VIP, "02:00:00:00:00:0b", "eth0", 10.4) is Verdict.CONFIRMED
    assert t.claim(VIP, "02:00:00:00:00:0b", "eth0", 15.0) is Verdict.ONGOING
    assert t.is_confirmed(VIP)
    assert t.expire(29.0) == []
    cleared = t.expire(30.0)
    assert [c.other_mac for c in cleared] == ["02:00:00:00:00:0b"]
    assert not t.is_confirmed(VIP)


def test_another_mac_starts_over_and_forget_drops_everything() -> None:
    t = ConflictTracker(grace=0.3)
    t.claim(VIP, "02:00:00:00:00:0b", "eth0", 10.0)
    assert t.claim(VIP, "02:00:00:00:00:0c", "eth0", 10.5) is Verdict.SUSPECT
    t.forget(VIP)
    assert t.suspects() == []
