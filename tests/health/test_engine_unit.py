"""The engine with fake probes behind the probe seam and an injected clock."""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from health.configs import app, service
from speaker.health import HealthChecker
from speaker.health.outcome import PASSED, Outcome, classify, failed
from speaker.health.probes import Probe
from speaker.health.targets import Target, targets_from_config
from speaker.metrics import REGISTRY


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Script:
    """Probe factory whose results the test sets per backend label."""

    def __init__(self) -> None:
        self.results: dict[str, Outcome | BaseException] = {}
        self.calls: list[str] = []

    def __call__(self, target: Target) -> Probe:
        async def probe() -> Outcome:
            self.calls.append(target.label)
            result = self.results.get(target.label, PASSED)
            if isinstance(result, BaseException):
                raise result
            return result
        return probe


def run(coro: Any) -> Any:
    return asyncio.run(coro)


BACKENDS = [{"address": "192.0.2.11", "name": "b1"}, {"address": "192.0.2.12", "name": "b2"}]


def make(health: dict[str, Any] | None = None, backends: list[dict[str, Any]] | None = None,
         **kw: Any) -> tuple[HealthChecker, Script, FakeClock, list[str]]:
    script, clock, wakes = Script(), FakeClock(), []
    cfg = app(service("web", backends or BACKENDS, health or {"type": "tcp"}))
    checker = HealthChecker(cfg, wakes.append, clock=clock, probes={"tcp": script, **kw})
    return checker, script, clock, wakes


def test_verdicts_follow_rise_and_fall_and_wake_once_per_change() -> None:
    checker, script, clock, wakes = make()
    key = ("web", "b1")

    async def scenario() -> list[bool | None]:
        seen = []
        for result in [PASSED, PASSED, failed("refused"), failed("refused"), failed("refused")]:
            script.results["b1"] = result
            clock.now += 1
            seen.append((await checker.check_once(key)).up)
        return seen

    assert run(scenario()) == [None, True, True, True, False]
    assert wakes.count("backend_up") == 1
    assert wakes.count("backend_down") == 1
    health = checker.snapshot()[key]
    assert (health.up, health.reason, health.since) == (False, "refused", 1005.0)
    assert ("web", "b2") not in checker.snapshot()  # never checked: absent


def test_a_raising_check_is_a_failed_check_with_a_reason() -> None:
    checker, script, _, _ = make()
    script.results["b1"] = ValueError("bug in a probe")
    state = run(checker.check_once(("web", "b1")))
    assert state.up is False
    assert state.reason == "error"
    assert "ValueError" in state.detail


def test_a_hung_check_costs_one_timeout() -> None:
    hang = asyncio.Event()

    def hung(target: Target) -> Probe:
        async def probe() -> Outcome:
            await hang.wait()
            return PASSED
        return probe

    checker, _, _, _ = make({"type": "tcp", "interval": 0.2, "timeout": 0.05}, tcp=hung)

    async def scenario() -> tuple[float, str]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        state = await checker.check_once(("web", "b1"))
        return loop.time() - t0, state.reason

    elapsed, reason = run(scenario())
    assert reason == "timeout"
    assert 0.04 < elapsed < 1.0


def test_concurrency_is_bounded() -> None:
    active, peak = 0, 0

    def slow(target: Target) -> Probe:
        async def probe() -> Outcome:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1
            return PASSED
        return probe

    backends = [{"address": f"192.0.2.{i}"} for i in range(10, 30)]
    cfg = app(service("web", backends))
    checker = HealthChecker(cfg, lambda _: None, concurrency=3, probes={"tcp": slow})

    async def scenario() -> None:
        await asyncio.gather(*(checker.check_once(k) for k in targets_from_config(cfg)))

    run(scenario())
    assert peak == 3


def test_run_checks_until_cancelled_and_leaves_no_task() -> None:
    checker, _, _, wakes = make({"type": "tcp", "interval": 0.05, "timeout": 0.02,
                                      "fast_interval": 0.01})

    async def scenario() -> None:
        task = asyncio.create_task(checker.run())
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(checker.snapshot()) == 2 and all(h.up for h in checker.snapshot().values()):
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(scenario())
    assert wakes.count("backend_up") == 2


def test_reload_keeps_state_of_unchanged_checks_and_retunes_timers() -> None:
    checker, script, _, wakes = make()

    async def up_both() -> None:
        for _ in range(2):
            for key in (("web", "b1"), ("web", "b2")):
                await checker.check_once(key)

    run(up_both())
    before = checker.snapshot()
    wakes.clear()
    retuned = app(service("web", BACKENDS, {"type": "tcp", "interval": 5, "fall": 1}))
    checker.reconfigure(retuned)
    assert checker.snapshot() == before
    assert "backend_down" not in wakes
    script.results["b1"] = failed("refused")
    assert run(checker.check_once(("web", "b1"))).up is False  # new fall=1 applies


def test_reload_with_changed_check_keeps_verdict_until_new_check_decides() -> None:
    http = Script()
    checker, _, _, _ = make({"type": "http"}, http=http)

    async def up_both() -> None:
        for _ in range(2):
            for key in (("web", "b1"), ("web", "b2")):
                await checker.check_once(key)

    run(up_both())
    changed = app(service("web", [BACKENDS[0], {"address": "192.0.2.99", "name": "b2"}],
                          {"type": "http", "http": {"path": "/ready"}}))
    checker.reconfigure(changed)
    snap = checker.snapshot()
    assert snap[("web", "b1")].up is True  # same backend, new path: verdict kept
    assert ("web", "b2") not in snap  # moved to another address: checked afresh
    http.results["b1"] = failed("status_404")
    for _ in range(2):
        assert run(checker.check_once(("web", "b1"))).up is True
    assert run(checker.check_once(("web", "b1"))).up is False


def test_removed_backends_and_services_leave_status_and_metrics() -> None:
    checker, _, _, _ = make()
    run(checker.check_once(("web", "b1")))
    run(checker.check_once(("web", "b1")))
    labels = {"service": "web", "backend": "b1"}
    assert REGISTRY.get_sample_value("speaker_backend_up", labels) == 1.0
    assert REGISTRY.get_sample_value("speaker_service_healthy_backends", {"service": "web"}) == 1
    checker.reconfigure(app(service("api", BACKENDS, vip="203.0.113.20")))
    assert REGISTRY.get_sample_value("speaker_backend_up", labels) is None
    assert REGISTRY.get_sample_value("speaker_service_healthy_backends", {"service": "web"}) \
        is None
    assert set(checker.status()["services"]) == {"api"}  # type: ignore[call-overload]


def test_failures_are_counted_by_reason() -> None:
    checker, script, _, _ = make(backends=[{"address": "192.0.2.13", "name": "b3"}])
    labels = {"service": "web", "backend": "b3", "reason": "status_503"}
    start = REGISTRY.get_sample_value("speaker_check_failures_total", labels) or 0.0
    script.results["b3"] = failed("status_503")
    for _ in range(3):
        run(checker.check_once(("web", "b3")))
    assert REGISTRY.get_sample_value("speaker_check_failures_total", labels) == start + 3


def test_check_type_none_is_up_without_checking() -> None:
    checker, script, _, _ = make({"type": "none"})
    assert {h.up for h in checker.snapshot().values()} == {True}
    assert checker.snapshot()[("web", "b1")].reason == "none"
    assert script.calls == []


def test_status_shows_every_backend_with_its_reason() -> None:
    checker, script, clock, _ = make()
    script.results["b1"] = failed("timeout")
    run(checker.check_once(("web", "b1")))
    svc = checker.status()["services"]["web"]  # type: ignore[index]
    assert svc["check"] == "tcp"
    assert svc["total"] == 2
    assert svc["healthy"] == 0
    b1 = svc["backends"]["b1"]
    assert {k: b1[k] for k in ("up", "reason", "last_ok", "checked_at")} == {
        "up": False, "reason": "timeout", "last_ok": False, "checked_at": clock.now}
    assert svc["backends"]["b2"]["up"] is None
    assert svc["backends"]["b2"]["reason"] == "pending"


def test_multi_port_service_checks_each_backend_once() -> None:
    cfg = app(service("multi", [{"address": "192.0.2.11"}, {"address": "192.0.2.12",
                                                             "port": 8443}],
                      ports=[443, 80]),
              service("hport", [{"address": "192.0.2.13"}], {"type": "tcp", "port": 9000},
                      vip="203.0.113.11", ports=[443, 80]))
    targets = targets_from_config(cfg)
    assert {k: t.port for k, t in targets.items()} == {
        ("multi", "192.0.2.11:443"): 443,  # the first service port
        ("multi", "192.0.2.12:8443"): 8443,  # the backend's own port
        ("hport", "192.0.2.13:443"): 9000,  # health.port wins
    }


@pytest.mark.parametrize(("exc", "reason"), [
    (TimeoutError(), "timeout"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "refused"),
    (ConnectionResetError(errno.ECONNRESET, "reset"), "reset"),
    (OSError(errno.EHOSTUNREACH, "no route"), "unreachable"),
    (OSError(errno.ENETUNREACH, "net unreachable"), "unreachable"),
    (ssl.SSLCertVerificationError("bad cert"), "tls_error"),
    (EOFError(), "closed"),
    (OSError(errno.EACCES, "denied"), "error_eacces"),
    (RuntimeError("boom"), "error"),
])
def test_exceptions_map_to_stable_reasons(exc: BaseException, reason: str) -> None:
    assert classify(exc).reason == reason


def test_unreadable_ca_bundle_is_a_failed_check_not_a_crash() -> None:
    cfg: Callable[[], Any] = lambda: app(service(  # noqa: E731
        "tls", BACKENDS, {"type": "https", "http": {"ca_bundle": "/nonexistent/ca.pem"}}))
    checker = HealthChecker(cfg(), lambda _: None)
    state = run(checker.check_once(("tls", "b1")))
    assert (state.up, state.reason) == (False, "config_error")
