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


def record(state: BackendState, outcome: Outcome, latency: float, now: float,
           timers: Timers) -> BackendState:
    """The state after one more check result.

    No verdict yet: a failure is a `down` verdict at once (an unchecked backend
    already counts as down, so nothing changes for traffic), passes must reach
    `rise`. Up: `fall` consecutive failures turn it down. Down: `rise`
    consecutive passes turn it up.
    """
    base = replace(state, last_ok=outcome.ok, last_reason=outcome.reason, detail=outcome.detail,
                   latency=latency, checked_at=now, checks=state.checks + 1)
    if state.up is None:
        if not outcome.ok:
            return replace(base, up=False, since=now, reason=outcome.reason, streak=0)
        if state.streak + 1 >= timers.rise:
            return replace(base, up=True, since=now, reason=OK, streak=0)
        return replace(base, streak=state.streak + 1)
    if outcome.ok == state.up:
        return replace(base, streak=0, reason=OK if state.up else outcome.reason)
    needed = timers.fall if state.up else timers.rise
    if state.streak + 1 >= needed:
        return replace(base, up=outcome.ok, since=now, streak=0,
                       reason=OK if outcome.ok else outcome.reason)
    return replace(base, streak=state.streak + 1)


def in_transition(state: BackendState) -> bool:
    """True while the backend has no verdict or a streak towards a change runs."""
    return state.up is None or state.streak > 0


def next_interval(state: BackendState, timers: Timers) -> float:
    """Seconds from the start of this check to the start of the next."""
    return timers.fast_interval if in_transition(state) else timers.interval


def next_start(started: float, finished: float, state: BackendState, timers: Timers) -> float:
    """When the next check starts: one interval after this one started, never in the past."""
    return max(started + next_interval(state, timers), finished)


def first_delay(timers: Timers, rng: random.Random) -> float:
    """Jittered start: a uniform point within the first interval."""
    return rng.uniform(0.0, timers.interval)


def carry_over(state: BackendState) -> BackendState:
    """State kept when a backend's check parameters change on reload: the verdict
    stays (no flap); the streak restarts so that the new check must earn a change."""
    return replace(state, streak=0)
