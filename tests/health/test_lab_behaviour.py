"""The running engine against real servers: hysteresis, detection time, reload, quorum.

The checker's `run()` runs on a loop in namespace esh-lb with short timers;
servers run in esh-b1 / esh-b2; a backend death is a cut switch port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from health.configs import app, service
from health.conftest import HealthLab
from health.servers import HttpServer, TcpListener
from speaker.config import AppConfig
from speaker.health import HealthChecker
from speaker.model import BackendHealth, Leadership, Reason
from speaker.reconcile.desired import compute_desired
from speaker.reconcile.inputs import Drains

pytestmark = pytest.mark.lab

B1, B2 = "192.0.2.11", "192.0.2.12"
QUICK = {"interval": 0.2, "timeout": 0.1, "rise": 2, "fall": 3, "fast_interval": 0.1}


class Running:
    """A HealthChecker running on the lb loop, with every wake-up recorded."""

    def __init__(self, lab: HealthLab, config: AppConfig,
                 on_wake: Callable[[str], Any] | None = None) -> None:
        self.lab = lab
        self.events: list[tuple[str, float, Any]] = []
        self._on_wake = on_wake
        self.checker = HealthChecker(config, self._wake)
        self.task = lab.lb.spawn(self.checker.run())

    def _wake(self, event: str) -> None:
        extra = self._on_wake(event) if self._on_wake else None
        self.events.append((event, time.monotonic(), extra))

    def snapshot(self) -> dict[tuple[str, str], BackendHealth]:
        async def snap() -> dict[tuple[str, str], BackendHealth]:
            return dict(self.checker.snapshot())
        return self.lab.lb.call(snap())

    def reconfigure(self, config: AppConfig) -> None:
        async def apply() -> None:
            self.checker.reconfigure(config)
        self.lab.lb.call(apply())

    def wait(self, predicate: Callable[[dict[tuple[str, str], BackendHealth]], bool],
             timeout: float = 5.0) -> dict[tuple[str, str], BackendHealth]:
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if predicate(snap):
                return snap
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout} s: {snap}")
            time.sleep(0.02)

    def wait_event(self, name: str, after: int, timeout: float = 5.0) -> tuple[float, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event, at, extra in self.events[after:]:
                if event == name:
                    return at, extra
            time.sleep(0.01)
        raise AssertionError(f"no {name} event in {timeout} s: {self.events[after:]}")

    def stop(self) -> None:
        self.lab.lb.cancel(self.task)


@contextmanager
def running(lab: HealthLab, config: AppConfig,
            on_wake: Callable[[str], Any] | None = None) -> Iterator[Running]:
    checker = Running(lab, config, on_wake)
    try:
        yield checker
    finally:
        checker.stop()


@contextmanager
def servers(loop: Any, *items: HttpServer | TcpListener) -> Iterator[None]:
    started = []
    try:
        for item in items:
            loop.call(item.start())
            started.append(item)
        yield
    finally:
        for item in started:
            loop.call(item.stop())


def all_up(count: int) -> Callable[[dict[tuple[str, str], BackendHealth]], bool]:
    return lambda snap: len(snap) == count and all(h.up for h in snap.values())


def test_state_changes_after_exactly_fall_then_rise_results(health_lab: HealthLab) -> None:
    web = HttpServer(B1, 8180)
    cfg = app(service("web", [{"address": B1, "name": "b1"}], {"type": "http", **QUICK},
                      ports=[8180]))
    with servers(health_lab.b1, web), \
            running(health_lab, cfg, on_wake=lambda _: dict(web.served)) as run:
        run.wait(all_up(1))
        mark = len(run.events)
        web.mode = "503"
        _, served = run.wait_event("backend_down", mark)
        assert served.get("503") == 3  # fall
        assert run.snapshot()[("web", "b1")].reason == "status_503"
        ok_before = web.served["ok"]
        mark = len(run.events)
        web.mode = "ok"
        _, served = run.wait_event("backend_up", mark)
        assert served["ok"] - ok_before == 2  # rise


def test_detection_time_of_a_dead_backend(health_lab: HealthLab) -> None:
    listener = TcpListener(B2, 8181)
    timers = {"interval": 0.3, "timeout": 0.1, "rise": 2, "fall": 3, "fast_interval": 0.1}
    bound = timers["interval"] * timers["fall"] + timers["timeout"]
    cfg = app(service("db", [{"address": B2, "name": "b2"}], {"type": "tcp", **timers},
                      ports=[8181]))
    detections = []
    with servers(health_lab.b2, listener), running(health_lab, cfg) as run:
        for _ in range(3):
            run.wait(all_up(1))
            mark = len(run.events)
            cut = time.monotonic()
            health_lab.lab.port_down(health_lab.switch, health_lab.b2_port)
            try:
                down_at, _ = run.wait_event("backend_down", mark)
                assert run.snapshot()[("db", "b2")].reason == "timeout"
            finally:
                health_lab.lab.port_up(health_lab.switch, health_lab.b2_port)
            detections.append(down_at - cut)
    print("detection times (s):", [round(d, 3) for d in detections])
    assert max(detections) <= bound, detections


def test_reload_keeps_state_and_does_not_flap(health_lab: HealthLab) -> None:
    web, db = HttpServer(B1, 8182), TcpListener(B2, 8183)
    web_svc = service("web", [{"address": B1, "name": "w1"}], {"type": "http", **QUICK},
                      ports=[8182])
    db_svc = service("db", [{"address": B2, "name": "d1"}], {"type": "tcp", **QUICK},
                     ports=[8183], vip="203.0.113.11")
    with servers(health_lab.b1, web), servers(health_lab.b2, db), \
            running(health_lab, app(web_svc, db_svc)) as run:
        before = run.wait(all_up(2))
        mark = len(run.events)
        # web: other timers and another path (still answered 200): the verdict stays;
        # db: one more backend; plus a new service
        web_new = service("web", [{"address": B1, "name": "w1"}],
                          {"type": "http", **QUICK, "interval": 0.3, "rise": 3,
                           "http": {"path": "/ready"}}, ports=[8182])
        db_new = service("db", [{"address": B2, "name": "d1"}, {"address": B2, "name": "d2",
                                                                "port": 8183}],
                         {"type": "tcp", **QUICK}, ports=[8183], vip="203.0.113.11")
        extra = service("extra", [{"address": B1, "name": "e1"}], {"type": "tcp", **QUICK},
                        ports=[8182], vip="203.0.113.12")
        run.reconfigure(app(web_new, db_new, extra))
        after = run.wait(all_up(4))
        time.sleep(0.5)  # a few more rounds of checks under the new config
        after = run.snapshot()
        events = [e for e, _, _ in run.events[mark:]]
        assert "backend_down" not in events
        assert events.count("backend_up") == 2  # d2 and e1, nothing else
        for key in (("web", "w1"), ("db", "d1")):
            assert after[key].up
            assert after[key].since == before[key].since
        assert any(r["request"].startswith("GET /ready ") for r in web.requests)


def _decision(config: AppConfig, snap: dict[tuple[str, str], BackendHealth]) -> Any:
    leader = {"default": Leadership("default", True, 0.0)}
    desired = compute_desired(config, snap, leader, Drains(), time.monotonic())
    (decision,) = desired.decisions
    return decision, desired.bgp


@pytest.mark.parametrize("below", ["withdraw", "fail-open"])
def test_quorum_withdraws_and_restores_the_vips_desired_announcement(
        health_lab: HealthLab, below: str) -> None:
    ports = [8184, 8185, 8186]
    listeners = [TcpListener(B1, p) for p in ports]
    cfg = app(service("api", [{"address": B1, "port": p, "name": f"p{p}"} for p in ports],
                      {"type": "tcp", **QUICK}, ports=[8184], announce="bgp",
                      quorum={"min_healthy": 2, "below": below}), bgp=True)
    with servers(health_lab.b1, *listeners), running(health_lab, cfg) as run:
        decision, routes = _decision(cfg, run.wait(all_up(3)))
        assert (decision.bgp, decision.healthy, len(routes)) == (Reason.ANNOUNCED, 3, 1)
        health_lab.b1.call(listeners[0].stop())
        decision, routes = _decision(cfg, run.wait(
            lambda s: [h.up for h in s.values()].count(True) == 2))
        assert (decision.bgp, len(routes)) == (Reason.ANNOUNCED, 1)
        health_lab.b1.call(listeners[1].stop())
        decision, routes = _decision(cfg, run.wait(
            lambda s: [h.up for h in s.values()].count(True) == 1))
        if below == "withdraw":
            assert (decision.bgp, len(routes)) == (Reason.BELOW_QUORUM, 0)
        else:
            assert (decision.bgp, decision.fail_open, len(routes)) == (
                Reason.FAIL_OPEN, True, 1)
        health_lab.b1.call(listeners[0].start())
        decision, routes = _decision(cfg, run.wait(
            lambda s: [h.up for h in s.values()].count(True) == 2))
        assert (decision.bgp, decision.fail_open, len(routes)) == (Reason.ANNOUNCED, False, 1)


def test_run_ends_cleanly_on_cancel(health_lab: HealthLab) -> None:
    cfg = app(service("web", [{"address": B1, "name": "b1"}], {"type": "tcp", **QUICK},
                      ports=[8187]))
    run = Running(health_lab, cfg)
    time.sleep(0.3)
    run.stop()

    async def leftovers() -> list[str]:
        return [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()
                and t.get_name().startswith("health:")]
    assert health_lab.lb.call(leftovers()) == []
