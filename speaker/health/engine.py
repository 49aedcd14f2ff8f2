"""The health-check engine: schedules every backend's checks and keeps verdicts.

One asyncio task per backend sleeps until its next check, runs the probe
under a shared concurrency bound and the check's timeout (a hung backend costs
one timeout), and feeds the result to the pure hysteresis in
`speaker.health.hysteresis`. A verdict change updates the metrics, is logged
and wakes the reconciler. Quorum, fail-open and drains are the reconciler's:
this engine only reports verdicts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from speaker.config import AppConfig
from speaker.health import metrics
from speaker.health.hysteresis import (
    BackendState,
    carry_over,
    first_delay,
    initial_state,
    next_start,
    record,
    static_up,
)
from speaker.health.outcome import CheckFailedError, Outcome, classify
from speaker.health.probes import Probe, ProbeFactory, default_factories
from speaker.health.probes.http import tls_context
from speaker.health.targets import Key, Target, targets_from_config
from speaker.logs import event_log
from speaker.model import BackendHealth
from speaker.seams import Wake

LOG = event_log(__name__)


@dataclass(eq=False)
class _Worker:
    """Mutable bookkeeping of one backend (engine-internal)."""

    target: Target
    probe: Probe | None
    state: BackendState
    start_delay: float
    task: asyncio.Task[None] | None = None
    reasons_seen: set[str] = field(default_factory=set)


def _broken_probe(reason: str, detail: str) -> Probe:
    async def probe() -> Outcome:
        raise CheckFailedError(reason, detail)
    return probe


class HealthChecker:
    """Checks every backend of every service and reports verdicts (a HealthSource).

    `wake` is called with 'backend_up' / 'backend_down' when a verdict changes.
    `clock` gives the monotonic time used for timestamps and scheduling;
    `concurrency` bounds how many checks run at once. `probes` replaces the
    probe factory of some check types (fakes for unit tests); `rng` makes the
    jittered start reproducible.
    """

    def __init__(self, config: AppConfig, wake: Wake, *,
                 clock: Callable[[], float] = time.monotonic, concurrency: int = 512,
                 probes: Mapping[str, ProbeFactory] | None = None,
                 rng: random.Random | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._wake = wake
        self._clock = clock
        self._concurrency = concurrency
        self._factories: dict[str, ProbeFactory] = {**default_factories(), **(probes or {})}
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._workers: dict[Key, _Worker] = {}
        self._healthy: dict[str, int] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self._running = False
        self._durations = {kind: metrics.CHECK_DURATION.labels(kind)
                           for kind in ("tcp", "http", "https", "dns", "exec")}
        self._adopt(config)

    # -- Component -----------------------------------------------------------------------

    async def run(self) -> None:
        """Check every backend until cancelled; on the way out, end every check task."""
        self._semaphore = asyncio.Semaphore(self._concurrency)
        self._running = True
        for worker in self._workers.values():
            self._start(worker)
        try:
            await asyncio.Event().wait()
        finally:
            self._running = False
            tasks = [w.task for w in self._workers.values() if w.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for worker in self._workers.values():
                worker.task = None

    def reconfigure(self, config: AppConfig) -> None:
        """Adopt a new config. Backends whose check did not change keep their state and
        schedule (timer changes apply from the next check); a backend whose check
        parameters changed keeps its verdict and is re-checked soon under the new check
        (which must earn any change through rise/fall); a new or moved backend
        (new address or port) starts without a verdict; a removed one is forgotten."""
        tls_context.cache_clear()  # re-read CA bundles of changed checks
        self._adopt(config)

    def status(self) -> dict[str, object]:
        """Per service: check type, healthy/total, and per backend {up, reason, latency,
        since, last_ok, checked_at} plus last_reason, detail, streak, address, port.
        Times are the monotonic clock's; `age` is seconds since the last change."""
        now = self._clock()
        services: dict[str, dict[str, Any]] = {}
        for (service, label), worker in self._workers.items():
            entry = services.setdefault(service, {
                "check": worker.target.kind, "healthy": self._healthy.get(service, 0),
                "total": 0, "backends": {}})
            entry["total"] += 1
            state, timers = worker.state, worker.target.timers
            towards = timers.rise if (state.up is None or not state.up) else timers.fall
            entry["backends"][label] = {
                "up": state.up, "reason": state.reason, "latency": state.latency,
                "since": state.since, "age": round(now - state.since, 3),
                "last_ok": state.last_ok, "checked_at": state.checked_at,
                "last_reason": state.last_reason, "detail": state.detail,
                "streak": f"{state.streak}/{towards}",
                "address": str(worker.target.address), "port": worker.target.port,
            }
        return {"concurrency": self._concurrency, "services": services}

    def snapshot(self) -> Mapping[tuple[str, str], BackendHealth]:
        """Verdict per (service, backend label); backends without a verdict are absent."""
        return {key: BackendHealth(service=key[0], backend=key[1], up=s.up, since=s.since,
                                   reason=s.reason, latency=s.latency, last_ok=s.last_ok,
                                   checked_at=s.checked_at)
                for key, w in self._workers.items() if (s := w.state).up is not None}

    # -- checks --------------------------------------------------------------------------

    async def check_once(self, key: Key) -> BackendState:
        """Run one check of one backend now and record it (also used by unit tests)."""
        worker = self._workers[key]
        target, probe = worker.target, worker.probe
        if probe is None:
            return worker.state
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._concurrency)
        async with self._semaphore:
            started = self._clock()
            try:
                async with asyncio.timeout(target.timers.timeout):
                    outcome = await probe()
            except Exception as exc:  # a raising check is a failed check, never a crash
                outcome = classify(exc)
                if outcome.reason == "error":
                    LOG.warning("check_raised", service=target.service,
                                backend=target.label, reason="error", detail=outcome.detail)
            finished = self._clock()
        if self._workers.get(key) is worker:
            self._record(worker, outcome, finished - started, finished)
        return worker.state

    async def _run_worker(self, worker: _Worker) -> None:
        # Scheduled from the planned start, not from when the loop got round to it,
        # so a busy loop does not stretch every interval by its lag.
        due = self._clock() + worker.start_delay
        await asyncio.sleep(worker.start_delay)
        key = worker.target.key
        while True:
            state = await self.check_once(key)
            due = next_start(due, self._clock(), state, worker.target.timers)
            await asyncio.sleep(max(0.0, due - self._clock()))

    def _record(self, worker: _Worker, outcome: Outcome, latency: float, now: float) -> None:
        target = worker.target
        before = worker.state.up
        worker.state = record(worker.state, outcome, latency, now, target.timers)
        self._durations[target.kind].observe(latency)
        if not outcome.ok:
            metrics.CHECK_FAILURES.labels(target.service, target.label, outcome.reason).inc()
            worker.reasons_seen.add(outcome.reason)
        if worker.state.up != before:
            self._verdict_changed(worker, before)

    def _verdict_changed(self, worker: _Worker, before: bool | None) -> None:
        target, state = worker.target, worker.state
        self._healthy[target.service] = (self._healthy.get(target.service, 0)
                                         + int(bool(state.up)) - int(bool(before)))
        metrics.BACKEND_UP.labels(target.service, target.label).set(1 if state.up else 0)
        metrics.SERVICE_HEALTHY.labels(target.service).set(self._healthy[target.service])
        event = "backend_up" if state.up else "backend_down"
        LOG.info(event, service=target.service, backend=target.label, reason=state.reason,
                 detail=state.detail, checks=state.checks, latency=state.latency)
        self._wake(event)

    # -- config --------------------------------------------------------------------------

    def _probe_for(self, target: Target) -> Probe | None:
        factory = self._factories.get(target.kind)
        if target.kind == "none" or factory is None:
            return None
        try:
            return factory(target)
        except Exception as exc:  # e.g. an unreadable ca_bundle: report, don't crash
            LOG.warning("check_setup_failed", service=target.service, backend=target.label,
                        reason="config_error", detail=repr(exc))
            return _broken_probe("config_error", repr(exc))

    def _adopt(self, config: AppConfig) -> None:
        now = self._clock()
        targets = targets_from_config(config)
        for key in [k for k in self._workers if k not in targets]:
            self._forget(self._workers.pop(key))
        for key, target in targets.items():
            old = self._workers.get(key)
            if old is not None and old.target.fingerprint == target.fingerprint:
                old.target = target  # timers may differ; the running task reads them
                continue
            if old is not None:
                self._stop(old)
            state = static_up(now) if target.kind == "none" else initial_state(now)
            delay = first_delay(target.timers, self._rng)
            moved = old is None or (old.target.address, old.target.port) != (
                target.address, target.port)
            if not moved and old is not None and target.kind != "none":
                state = carry_over(old.state)
                delay = self._rng.uniform(0.0, target.timers.fast_interval)
            worker = _Worker(target, self._probe_for(target), state, delay)
            self._workers[key] = worker
            self._count(worker, old)
            if self._running:
                self._start(worker)
        self._wake("health_reconfigured")

    def _count(self, worker: _Worker, old: _Worker | None) -> None:
        service = worker.target.service
        delta = int(bool(worker.state.up)) - int(bool(old is not None and old.state.up))
        self._healthy[service] = self._healthy.get(service, 0) + delta
        metrics.BACKEND_UP.labels(service, worker.target.label).set(
            1 if worker.state.up else 0)
        metrics.SERVICE_HEALTHY.labels(service).set(self._healthy[service])

    def _start(self, worker: _Worker) -> None:
        if worker.probe is not None and worker.task is None:
            worker.task = asyncio.get_running_loop().create_task(
                self._run_worker(worker), name=f"health:{worker.target.service}:"
                                               f"{worker.target.label}")

    @staticmethod
    def _stop(worker: _Worker) -> None:
        if worker.task is not None:
            worker.task.cancel()
            worker.task = None

    def _forget(self, worker: _Worker) -> None:
        self._stop(worker)
        service, label = worker.target.key
        self._healthy[service] = self._healthy.get(service, 0) - int(bool(worker.state.up))
        metrics.BACKEND_UP.remove(service, label)
        for reason in worker.reasons_seen:
            metrics.CHECK_FAILURES.remove(service, label, reason)
        if any(k[0] == service for k in self._workers):
            metrics.SERVICE_HEALTHY.labels(service).set(self._healthy[service])
        else:
            self._healthy.pop(service, None)
            metrics.SERVICE_HEALTHY.remove(service)
