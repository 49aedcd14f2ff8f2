"""Hysteresis and timing of one backend's checks: pure functions of results and time.

A backend has a verdict (up, down, or none yet) that changes only after `rise`
consecutive passes or `fall` consecutive failures. Until a backend has a
verdict, and while a streak towards a change is running, it is checked at the
faster interval. The first check of a backend starts at a random point of its
interval so that thousands of checks do not fire in bursts. Time is passed in
(`now`), never read here, so the logic is tested without sleeping.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from speaker.health.outcome import OK, Outcome
from speaker.health.targets import Timers

PENDING = "pending"
"""Reason of a backend that has no verdict yet."""


@dataclass(frozen=True, slots=True)
class BackendState:
    """Verdict and recent history of one backend."""

    up: bool | None
    """None until the first verdict."""
    since: float
    """Time of the last verdict change (or of creation)."""
    reason: str
    """Why the verdict is what it is: 'ok' when up, the latest failure when down."""
    streak: int = 0
    """Consecutive results that disagree with the verdict (passes while pending)."""
    last_ok: bool | None = None
    last_reason: str = PENDING
    detail: str = ""
    latency: float | None = None
    checked_at: float | None = None
    checks: int = 0


def initial_state(now: float) -> BackendState:
    """A backend not checked yet."""
    return BackendState(up=None, since=now, reason=PENDING)


def static_up(now: float) -> BackendState:
    """A backend whose check type is `none`: up from the start."""
    return BackendState(up=True, since=now, reason="none", last_ok=True, last_reason="none")


def _verdict(state: BackendState, ok: bool, result: str, now: float,
             timers: Timers) -> tuple[bool | None, float, int, str]:
    """(up, since, streak, reason) after one more result."""
    if state.up is None:
        if not ok:
            return False, now, 0, result
        if state.streak + 1 >= timers.rise:
            return True, now, 0, OK
        return None, state.since, state.streak + 1, state.reason
    if ok == state.up:
        return state.up, state.since, 0, OK if ok else result
    if state.streak + 1 >= (timers.fall if state.up else timers.rise):
        return ok, now, 0, OK if ok else result
    return state.up, state.since, state.streak + 1, state.reason


def record(state: BackendState, outcome: Outcome, latency: float, now: float,
           timers: Timers) -> BackendState:
    """The state after one more check result.

    No verdict yet: a failure is a `down` verdict at once (an unchecked backend
    already counts as down, so nothing changes for traffic), passes must reach
    `rise`. Up: `fall` consecutive failures turn it down. Down: `rise`
    consecutive passes turn it up.
    """
    up, since, streak, reason = _verdict(state, outcome.ok, outcome.reason, now, timers)
    return BackendState(up, since, reason, streak, outcome.ok, outcome.reason, outcome.detail,
                        latency, now, state.checks + 1)


def in_transition(state: BackendState) -> bool:
    """True while the backend has no verdict or a streak towards a change runs."""
    return state.up is None or state.streak > 0


def next_interval(state: BackendState, timers: Timers) -> float:
    """Seconds from the start of this check to the start of the next."""
    return timers.fast_interval if in_transition(state) else timers.interval


def next_start(started: float, finished: float, state: BackendState, timers: Timers) -> float:
    """When the next check starts: one interval after this one was due to start, never
    before this one finished (a backlog is not made up in a burst)."""
    return max(started + next_interval(state, timers), finished)


def first_delay(timers: Timers, rng: random.Random) -> float:
    """Jittered start: a uniform point within the first interval."""
    return rng.uniform(0.0, timers.interval)


def carry_over(state: BackendState) -> BackendState:
    """State kept when a backend's check parameters change on reload: the verdict
    stays (no flap); the streak restarts so that the new check must earn a change."""
    return replace(state, streak=0)
