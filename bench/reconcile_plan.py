"""Cost of the reconciler's pure core and of loading a big config.

Prints, for N services x 4 backends, in CPU seconds: config parse+validate,
compute_desired from scratch, plan against an empty and against an up-to-date
observed state, then the reconciler end to end with the in-memory fakes behind
the Protocol seams: the periodic full resync with nothing to do (IPVS dumped,
everything planned), one backend flap (decision -> IPVS weight 0), a whole
service failing (-> BGP withdrawal) and recovering (-> re-announced).

    .venv/bin/python bench/reconcile_plan.py [N ...]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable

import yaml

from speaker.config import AppConfig, parse_text
from speaker.fakes import FakeAddresses, FakeBgp, FakeElection, FakeForwarder, FakeHealth, FakeL2
from speaker.reconcile.apply import Parts
from speaker.reconcile.desired import compute_desired
from speaker.reconcile.inputs import Drains
from speaker.reconcile.loop import Reconciler
from speaker.reconcile.plan import Observed, plan


def config_text(n: int) -> str:
    services = [{
        "name": f"svc{i}", "vip": f"198.18.{i // 250}.{i % 250 + 1}", "ports": [80],
        "backends": [{"address": f"198.51.100.{b}", "port": 8080} for b in range(1, 5)],
    } for i in range(n)]
    return yaml.safe_dump({
        "node": {"name": "lb1", "router_id": "192.0.2.10", "interfaces": [{"name": "eth0"}]},
        "bgp": {"local_asn": 65010, "pools": ["198.18.0.0/15"],
                "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000}]},
        "services": services,
    })


def best_of(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_of(fn: Callable[[], object], runs: int = 3) -> float:
    """Best CPU seconds (every thread of the process) of `runs` calls."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def main(sizes: list[int]) -> None:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; CPU seconds "
          "(all threads of this process), best of 3-5; 4 backends per service")
    print(f"{'services':>8} {'parse':>7} {'desired':>8} {'plan0':>7} {'plan-noop':>9} "
          f"{'resync':>7} {'flap-1':>8} {'flap-svc':>8} {'recover':>8}  (resync: full no-op "
          "pass with an IPVS dump; flap-1: one backend down; flap-svc: a service's 4 "
          "backends down, VIP withdrawn; recover: back up, re-announced)")
    for n in sizes:
        measure(n)


def measure(n: int) -> None:
    """Print one row of figures for n services."""
    text = config_text(n)
    parse_s = cpu_of(lambda: parse_text(text), runs=3)
    cfg = parse_text(text)
    health = FakeHealth(cfg)
    for svc in cfg.services:
        for b in svc.backends:
            health.set(svc.name, svc.backend_label(b), True)
    lead = FakeElection(cfg).leadership()
    snap = health.snapshot()
    desired = compute_desired(cfg, snap, lead, Drains(), 1.0)
    full = Observed(desired.addresses, desired.bgp, desired.l2, desired.ipvs)
    desired_s = cpu_of(lambda: compute_desired(cfg, snap, lead, Drains(), 1.0))
    plan0_s = cpu_of(lambda: plan(desired, Observed()))
    noop_s = cpu_of(lambda: plan(desired, full))
    assert plan(desired, full) == ()
    asyncio.run(passes(n, cfg, health, parse_s, desired_s, plan0_s, noop_s))


async def passes(n: int, cfg: AppConfig, health: FakeHealth, parse_s: float,
                 desired_s: float, plan0_s: float, noop_s: float) -> None:
    """The reconciler end to end with the fakes: resync, one flap, a withdrawal."""
    clock = [100.0]
    forwarder, bgp = FakeForwarder(), FakeBgp(cfg)
    parts = Parts(FakeAddresses(), forwarder, bgp, FakeL2(cfg))
    rec = Reconciler(cfg, parts, health, FakeElection(cfg), link_up=lambda _n: True,
                     clock=lambda: clock[0], resync_interval=2.0)
    await rec.reconcile_once()  # programs everything
    assert len(bgp.current) == n

    async def timed(dump: bool) -> float:
        if dump:
            rec._last_dump = None  # force the periodic resync's dump
        start = time.process_time()
        await rec.reconcile_once()
        return time.process_time() - start

    resync = min([await timed(True) for _ in range(3)])
    svc = cfg.services[n // 2]
    labels = [svc.backend_label(b) for b in svc.backends]
    flap1, flapsvc, recover = [], [], []
    for _ in range(3):
        await timed(True)  # a fresh dump, then events within the resync interval
        clock[0] += 0.1
        applied = len(forwarder.applied)
        health.set(svc.name, labels[0], False, since=clock[0])
        flap1.append(await timed(False))
        assert len(forwarder.applied) == applied + 1  # weight 0 for that dest
        for label in labels[1:]:
            health.set(svc.name, label, False, since=clock[0])
        flapsvc.append(await timed(False))
        assert len(bgp.current) == n - 1  # withdrawn
        for label in labels:
            health.set(svc.name, label, True, since=clock[0])
        recover.append(await timed(False))
        assert len(bgp.current) == n
        assert rec.last is not None
        assert rec.last.ok
    print(f"{n:>8} {parse_s:>7.3f} {desired_s:>8.3f} {plan0_s:>7.3f} {noop_s:>9.3f} "
          f"{resync:>7.3f} {min(flap1) * 1000:>6.1f}ms {min(flapsvc) * 1000:>6.1f}ms "
          f"{min(recover) * 1000:>6.1f}ms")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 5000, 10000])
