"""The VRRPv3 state machine, stepped with explicit time (no sleeping)."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speaker.election import vrrp_state as sm

ME = IPv4Address("192.0.2.11")
PEER = IPv4Address("192.0.2.12")


def params(priority: int = 100, preempt: bool = True, after: float = 0.0) -> sm.Params:
    return sm.Params(priority, 10, preempt, ME, after)


def test_owner_255_is_master_at_start() -> None:
    inst, actions = sm.start(sm.Instance(), params(255), 0.0)
    assert inst.state == sm.State.MASTER
    assert actions == (sm.Send(255),)


def test_backup_takes_over_after_master_down_interval() -> None:
    p = params(100)
    inst, _ = sm.start(sm.Instance(), p, 0.0)
    inst, _ = sm.on_advert(inst, p, 200, 10, PEER, 1.0)
    assert inst.state == sm.State.BACKUP
    assert inst.master == PEER
    down = sm.master_down_interval(100, 10)
    assert down == pytest.approx(0.3 + 156 * 10 / 256 / 100)
    inst, actions = sm.on_timer(inst, p, 1.0 + down - 0.001)
    assert inst.state == sm.State.BACKUP
    assert actions == ()
    inst, actions = sm.on_timer(inst, p, 1.0 + down)
    assert inst.state == sm.State.MASTER
    assert actions == (sm.Send(100),)


def test_master_adverts_every_interval() -> None:
    p = params(255)
    inst, _ = sm.start(sm.Instance(), p, 0.0)
    sent = []
    for step in range(1, 11):
        inst, actions = sm.on_timer(inst, p, step * 0.1)
        sent += actions
    assert len(sent) == 10


def test_priority_zero_makes_backup_take_over_after_skew() -> None:
    p = params(100)
    inst, _ = sm.start(sm.Instance(), p, 0.0)
    inst, _ = sm.on_advert(inst, p, 200, 10, PEER, 1.0)
    inst, _ = sm.on_advert(inst, p, 0, 10, PEER, 1.05)
    assert inst.deadline == pytest.approx(1.05 + sm.skew_time(100, 10))
    inst, _ = sm.on_timer(inst, p, inst.deadline or 0)
    assert inst.state == sm.State.MASTER


def test_preempt_on_and_off() -> None:
    for preempt, expect in ((True, sm.State.MASTER), (False, sm.State.BACKUP)):
        p = params(200, preempt)
        inst, _ = sm.start(sm.Instance(), p, 0.0)
        now = 0.0
        for _ in range(20):  # a lower-priority master keeps advertising
            now += 0.1
            inst, _ = sm.on_advert(inst, p, 100, 10, PEER, now)
            inst, _ = sm.on_timer(inst, p, now)
        assert inst.state == expect


def test_preempt_delay_holds_back_preemption() -> None:
    p = params(200, True, after=5.0)
    inst, _ = sm.start(sm.Instance(), p, 0.0)
    now = 0.0
    while now < 4.9:
        now += 0.1
        inst, _ = sm.on_advert(inst, p, 100, 10, PEER, now)
        inst, _ = sm.on_timer(inst, p, now)
        assert inst.state == sm.State.BACKUP
    for _ in range(10):
        now += 0.1
        inst, _ = sm.on_advert(inst, p, 100, 10, PEER, now)
        inst, _ = sm.on_timer(inst, p, now)
    assert inst.state == sm.State.MASTER


def test_master_steps_down_for_higher_priority_and_ties_by_address() -> None:
    p = params(100)
    master, _ = sm.start(sm.Instance(), params(255), 0.0)
    stepped, _ = sm.on_advert(master, p, 150, 10, PEER, 1.0)
    assert stepped.state == sm.State.BACKUP
    higher_ip, _ = sm.on_advert(master, p, 100, 10, PEER, 1.0)  # PEER > ME
    assert higher_ip.state == sm.State.BACKUP
    lower_ip, _ = sm.on_advert(master, p, 100, 10, IPv4Address("192.0.2.1"), 1.0)
    assert lower_ip.state == sm.State.MASTER


def test_resign_keeps_serving_until_new_master_speaks_and_then_does_not_preempt() -> None:
    p = params(200)
    inst, _ = sm.start(sm.Instance(), params(255), 0.0)
    inst, actions = sm.resign(inst, p, 1.0)
    assert actions == (sm.Send(0),)
    assert sm.is_leader(inst)
    inst, _ = sm.on_advert(inst, p, 100, 10, PEER, 1.02)
    assert inst.state == sm.State.BACKUP
    for step in range(1, 30):  # lower-priority master: resigned, so no preemption
        inst, _ = sm.on_advert(inst, p, 100, 10, PEER, 1.02 + step * 0.1)
        inst, _ = sm.on_timer(inst, p, 1.02 + step * 0.1)
    assert inst.state == sm.State.BACKUP
    inst = sm.reclaim(inst)
    inst, _ = sm.on_advert(inst, p, 100, 10, PEER, 5.0)
    inst, _ = sm.on_timer(inst, p, 6.0)
    assert inst.state == sm.State.MASTER


def test_shutdown_sends_priority_zero_and_link_down_stops_leading() -> None:
    inst, _ = sm.start(sm.Instance(), params(255), 0.0)
    down = sm.link_down(inst, 1.0)
    assert not sm.is_leader(down)
    _, actions = sm.shutdown(inst, params(255), 1.0)
    assert actions == (sm.Send(0),)


@given(st.lists(st.tuples(st.sampled_from(["advert", "timer", "zero"]),
                          st.integers(1, 254), st.floats(0.001, 0.5)), max_size=60))
def test_never_leader_while_a_higher_priority_master_keeps_advertising(events) -> None:  # type: ignore[no-untyped-def]
    """Whatever happened before, once a higher-priority master advertises every
    interval, this router is not the leader after its next advert."""
    p = params(100)
    inst, _ = sm.start(sm.Instance(), p, 0.0)
    now = 0.0
    for kind, prio, dt in events:
        now += dt
        if kind == "timer":
            inst, _ = sm.on_timer(inst, p, now)
        else:
            inst, _ = sm.on_advert(inst, p, 0 if kind == "zero" else prio, 10, PEER, now)
    now += 0.01
    inst, _ = sm.on_advert(inst, p, 200, 10, PEER, now)
    assert not sm.is_leader(inst)
