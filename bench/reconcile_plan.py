"""Cost of the reconciler's pure core and of loading a big config.

Prints, for N services x 4 backends: config parse+validate time, compute_desired
time, plan time against an empty and against an up-to-date observed state (the
no-op resync), and a whole reconcile pass with the in-memory fakes.

    .venv/bin/python bench/reconcile_plan.py [N ...]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable

import yaml

from speaker.config import parse_text
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


def main(sizes: list[int]) -> None:
    print(f"{'services':>8} {'parse':>8} {'desired':>8} {'plan0':>8} {'plan-noop':>9} "
          f"{'pass-noop':>9}  (seconds, median of 5; 4 backends each)")
    for n in sizes:
        measure(n)


def measure(n: int) -> None:
    """Print one row of figures for n services."""
    if n > 0:
        text = config_text(n)
        start = time.perf_counter()
        cfg = parse_text(text)
        parse_s = time.perf_counter() - start
        health = FakeHealth(cfg)
        for svc in cfg.services:
            for b in svc.backends:
                health.set(svc.name, svc.backend_label(b), True)
        lead = FakeElection(cfg).leadership()
        snap = health.snapshot()
        desired = compute_desired(cfg, snap, lead, Drains(), 1.0)
        full = Observed(desired.addresses, desired.bgp, desired.l2, desired.ipvs)
        desired_s = best_of(lambda: compute_desired(cfg, snap, lead, Drains(), 1.0))
        plan0_s = best_of(lambda: plan(desired, Observed()))
        noop_s = best_of(lambda: plan(desired, full))
        assert plan(desired, full) == ()
        parts = Parts(FakeAddresses(), FakeForwarder(), FakeBgp(cfg), FakeL2(cfg))
        rec = Reconciler(cfg, parts, health, FakeElection(cfg), link_up=lambda _n: True)
        asyncio.run(rec.reconcile_once())
        pass_s = best_of(lambda: asyncio.run(rec.reconcile_once()))
        print(f"{n:>8} {parse_s:>8.3f} {desired_s:>8.3f} {plan0_s:>8.3f} {noop_s:>9.3f} "
              f"{pass_s:>9.3f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000, 5000])
