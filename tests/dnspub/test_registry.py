"""The registry planner against an in-memory zone that enforces RFC 2136 prerequisites."""

from __future__ import annotations

import contextlib
from ipaddress import ip_address

import pytest
from dns_fakes import FakeZone
from hypothesis import given, settings
from hypothesis import strategies as st

from speaker.dns.client import DnsConflictError
from speaker.dns.registry import Settled, Update, claim, marker, parse, plan, registry_name

NAME = "web.example.test"
VIP = ip_address("203.0.113.10")
KW = {"owner": "fleet", "ttl": 30, "lifetime": 180.0, "refresh": 60.0}


def converge(zone: FakeZone, node: str, want: object, now: float = 1000.0) -> str:
    """Plan and apply until settled; the last update's outcome (or the settled state)."""
    outcome = None
    for _ in range(5):
        result = plan(NAME, zone.read(NAME), want, node=node, now=now, **KW)  # type: ignore[arg-type]
        if isinstance(result, Settled):
            return outcome or result.state
        zone.apply(result)
        outcome = result.outcome
    raise AssertionError("did not settle")


def test_publish_creates_address_marker_and_claim() -> None:
    zone = FakeZone()
    assert converge(zone, "lb1", VIP) == "published"
    state = zone.read(NAME)
    assert state.addresses == {"203.0.113.10"}
    assert marker("fleet") in state.txt
    assert claim("fleet", "lb1", 1180) in state.txt


def test_second_appliance_adds_a_claim_and_one_record_set_results() -> None:
    zone = FakeZone()
    converge(zone, "lb1", VIP)
    converge(zone, "lb2", VIP)
    state = zone.read(NAME)
    assert state.addresses == {"203.0.113.10"}
    assert set(parse(state, "fleet").claims) == {"lb1", "lb2"}


def test_one_withdrawing_keeps_the_record_the_other_serves() -> None:
    zone = FakeZone()
    converge(zone, "lb1", VIP)
    converge(zone, "lb2", VIP)
    assert converge(zone, "lb1", None) == "withdrawn"
    state = zone.read(NAME)
    assert state.addresses == {"203.0.113.10"}
    assert set(parse(state, "fleet").claims) == {"lb2"}
    assert converge(zone, "lb2", None) == "withdrawn"
    assert zone.read(NAME).addresses == frozenset()
    assert zone.read(NAME).txt == frozenset()


def test_stale_claim_of_a_dead_appliance_does_not_keep_the_record() -> None:
    zone = FakeZone()
    converge(zone, "lb1", VIP, now=1000.0)           # lb1 dies later, never withdraws
    converge(zone, "lb2", VIP, now=1100.0)
    assert converge(zone, "lb2", None, now=1300.0) == "withdrawn"   # lb1's claim expired
    assert zone.read(NAME).addresses == frozenset()


def test_live_claim_of_another_appliance_keeps_the_record() -> None:
    zone = FakeZone()
    converge(zone, "lb1", VIP, now=1000.0)
    converge(zone, "lb2", VIP, now=1000.0)
    assert converge(zone, "lb2", None, now=1100.0) == "withdrawn"
    assert zone.read(NAME).addresses == {"203.0.113.10"}


def test_claim_is_renewed_after_refresh_not_before() -> None:
    zone = FakeZone()
    converge(zone, "lb1", VIP, now=1000.0)
    assert isinstance(plan(NAME, zone.read(NAME), VIP, node="lb1", now=1030.0, **KW), Settled)
    renewal = plan(NAME, zone.read(NAME), VIP, node="lb1", now=1061.0, **KW)
    assert isinstance(renewal, Update)
    zone.apply(renewal)
    assert parse(zone.read(NAME), "fleet").claims["lb1"][0] == 1241


@pytest.mark.parametrize("want", [VIP, None])
def test_foreign_record_is_never_touched(want: object) -> None:
    zone = FakeZone()
    zone.add_foreign(NAME, "192.0.2.99")
    assert converge(zone, "lb1", want) == "foreign_owner"
    assert zone.updates == 0
    assert zone.read(NAME).addresses == {"192.0.2.99"}


def test_another_owners_registry_is_foreign() -> None:
    zone = FakeZone()
    converge(zone, "lb1", VIP)
    other = plan(NAME, zone.read(NAME), VIP, node="x1", now=1000.0,
                 **{**KW, "owner": "other-fleet"})
    assert other == Settled("foreign_owner")


def test_vip_change_replaces_the_address() -> None:
    zone = FakeZone()
    converge(zone, "lb1", VIP)
    converge(zone, "lb1", ip_address("2001:db8::10"))
    assert zone.read(NAME).addresses == {"2001:db8::10"}


def test_update_computed_from_an_old_read_is_refused() -> None:
    zone = FakeZone()
    before = zone.read(NAME)
    converge(zone, "lb1", VIP)
    late = plan(NAME, before, VIP, node="lb2", now=1000.0, **KW)
    assert isinstance(late, Update)
    with pytest.raises(DnsConflictError):
        zone.apply(late)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["lb1", "lb2", "lb3"]), st.booleans(),
                          st.integers(0, 2)), min_size=1, max_size=24))
def test_any_interleaving_ends_in_one_consistent_record_set(
        steps: list[tuple[str, bool, int]]) -> None:
    """Appliances change their wish, read, and apply late (after others), in any order.
    Once each has synced its final wish, the name is published iff someone serves it,
    with exactly the serving appliances' claims."""
    zone = FakeZone()
    wants: dict[str, bool] = {}
    pending: list[tuple[str, Update]] = []
    for node, serve, delay in steps:
        wants[node] = serve
        result = plan(NAME, zone.read(NAME), VIP if serve else None, node=node, now=1000.0,
                      **KW)
        if isinstance(result, Update):
            pending.append((node, result))
        while len(pending) > delay:
            _, update = pending.pop(0)
            # a refused update: the publisher reads again, as the final sync below does
            with contextlib.suppress(DnsConflictError):
                zone.apply(update)
    for node, serve in wants.items():
        converge(zone, node, VIP if serve else None)
    for node, serve in wants.items():  # a second round: nobody changes anything
        assert isinstance(plan(NAME, zone.read(NAME), VIP if serve else None, node=node,
                               now=1000.0, **KW), Settled)
    state = zone.read(NAME)
    serving = {n for n, s in wants.items() if s}
    assert set(parse(state, "fleet").claims) == serving
    assert state.addresses == ({"203.0.113.10"} if serving else set())
    assert (registry_name(NAME), bool(serving)) == (registry_name(NAME), bool(state.txt))


def test_withdrawing_while_others_claim_says_when_to_look_again() -> None:
    zone = FakeZone()
    converge(zone, "lb1", VIP, now=1000.0)            # lb1 dies later, never withdraws
    converge(zone, "lb2", VIP, now=1050.0)
    result = plan(NAME, zone.read(NAME), None, node="lb2", now=1100.0, **KW)
    assert isinstance(result, Update)
    assert result.recheck_at == 1181.0                # lb1's claim runs until 1180
    zone.apply(result)
    assert zone.read(NAME).addresses == {"203.0.113.10"}
    again = plan(NAME, zone.read(NAME), None, node="lb2", now=1181.0, **KW)
    assert isinstance(again, Update)                  # lb1 never renewed: the records go
    zone.apply(again)
    assert zone.read(NAME).addresses == frozenset()
