"""Hysteresis and scheduling of one backend, with time passed in (no sleeping)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speaker.health.hysteresis import (
    BackendState,
    carry_over,
    first_delay,
    initial_state,
    next_start,
    record,
    static_up,
)
from speaker.health.outcome import PASSED, Outcome, failed
from speaker.health.targets import Timers

T = Timers(interval=2.0, timeout=1.0, rise=2, fall=3, fast_interval=0.5)
FAIL = failed("timeout")


def feed(state: BackendState, results: list[Outcome], start: float = 0.0,
         step: float = 1.0) -> list[BackendState]:
    out = []
    now = start
    for result in results:
        now += step
        state = record(state, result, 0.001, now, T)
        out.append(state)
    return out


def test_pending_backend_goes_up_after_exactly_rise_passes() -> None:
    states = feed(initial_state(0.0), [PASSED, PASSED])
    assert [s.up for s in states] == [None, True]
    assert states[-1].since == 2.0
    assert states[-1].reason == "ok"


def test_pending_backend_is_down_at_its_first_failure() -> None:
    (state,) = feed(initial_state(0.0), [failed("refused")])
    assert state.up is False
    assert state.reason == "refused"


def test_up_backend_goes_down_after_exactly_fall_failures() -> None:
    up = feed(initial_state(0.0), [PASSED, PASSED])[-1]
    states = feed(up, [FAIL, FAIL, FAIL], start=10.0)
    assert [s.up for s in states] == [True, True, False]
    assert states[-1].since == 13.0
    assert states[-1].reason == "timeout"
    assert states[0].last_ok is False
    assert states[0].last_reason == "timeout"


def test_a_pass_inside_a_failure_streak_resets_it() -> None:
    up = feed(initial_state(0.0), [PASSED, PASSED])[-1]
    states = feed(up, [FAIL, FAIL, PASSED, FAIL, FAIL])
    assert all(s.up for s in states)
    assert states[-1].streak == 2


def test_down_backend_needs_rise_passes_and_keeps_latest_failure_reason() -> None:
    down = feed(initial_state(0.0), [failed("refused")])[-1]
    states = feed(down, [failed("status_503"), PASSED, failed("timeout"), PASSED, PASSED])
    assert [s.up for s in states] == [False, False, False, False, True]
    assert states[0].reason == "status_503"
    assert states[2].reason == "timeout"


def test_fast_interval_while_between_states() -> None:
    pending = initial_state(0.0)
    assert next_start(10.0, 10.01, pending, T) == 10.5
    up = feed(pending, [PASSED, PASSED])[-1]
    assert next_start(10.0, 10.01, up, T) == 12.0
    failing = feed(up, [FAIL])[-1]
    assert next_start(10.0, 10.01, failing, T) == 10.5
    down = feed(failing, [FAIL, FAIL])[-1]
    assert next_start(10.0, 10.01, down, T) == 12.0


def test_next_start_is_never_in_the_past() -> None:
    up = feed(initial_state(0.0), [PASSED, PASSED])[-1]
    assert next_start(10.0, 13.0, up, T) == 13.0


def test_jittered_start_spreads_over_the_interval() -> None:
    rng = random.Random(7)
    delays = [first_delay(T, rng) for _ in range(2000)]
    assert 0.0 <= min(delays) < 0.05
    assert 1.95 < max(delays) <= 2.0
    # every quarter of the interval gets a fair share: no burst
    quarters = [sum(1 for d in delays if q * 0.5 <= d < (q + 1) * 0.5) for q in range(4)]
    assert min(quarters) > 400


def test_carry_over_keeps_verdict_and_restarts_streak() -> None:
    up = feed(initial_state(0.0), [PASSED, PASSED])[-1]
    failing = feed(up, [FAIL, FAIL])[-1]
    kept = carry_over(failing)
    assert kept.up is True
    assert kept.since == up.since
    assert kept.streak == 0


def test_static_backend_is_up() -> None:
    assert static_up(5.0).up is True


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_verdict_changes_only_after_a_full_streak(results: list[bool], rise: int,
                                                   fall: int) -> None:
    timers = Timers(interval=1.0, timeout=0.5, rise=rise, fall=fall, fast_interval=0.2)
    state = initial_state(0.0)
    history: list[bool] = []
    for i, ok in enumerate(results):
        before = state.up
        state = record(state, PASSED if ok else FAIL, 0.0, float(i), timers)
        history.append(ok)
        if state.up is not None and state.up != before:
            needed = 1 if (before is None and not ok) else (rise if ok else fall)
            assert history[-needed:] == [ok] * needed
            assert state.since == float(i)
        elif state.up is not None:
            # no change: the streak must be shorter than the threshold
            limit = fall if state.up else rise
            assert state.streak < limit


@pytest.mark.parametrize(("rise", "fall"), [(1, 1), (3, 5)])
def test_thresholds_of_one_switch_at_once(rise: int, fall: int) -> None:
    timers = Timers(interval=1.0, timeout=0.5, rise=rise, fall=fall, fast_interval=0.2)
    state = initial_state(0.0)
    for i in range(rise):
        state = record(state, PASSED, 0.0, float(i), timers)
    assert state.up is True
    for i in range(fall - 1):
        state = record(state, FAIL, 0.0, 10.0 + i, timers)
        assert state.up is True
    state = record(state, FAIL, 0.0, 20.0, timers)
    assert state.up is False
