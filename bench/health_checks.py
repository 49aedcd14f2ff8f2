"""Benchmark of the health checker: many backends at a 1 s interval.

    .venv/bin/python bench/health_checks.py --type tcp --backends 2000
    .venv/bin/python bench/health_checks.py --type http --backends 1000

Backends are listeners in a few namespaces (one server process each); the
checker runs in this process on a loop in its own namespace, so this process's
CPU time is the checker's. Prints checks/s, CPU as a fraction of one core,
per-check latency, and the detection latency of backend deaths: a killed
server (connection refused) and a cut switch port (timeouts).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from speaker.config import AppConfig
from speaker.health import HealthChecker
from speaker.lab.netns import Lab, Namespace
from speaker.metrics import REGISTRY
from speaker.model import BackendHealth

PREFIX = "eshb"
FIRST_PORT = 20000
SERVER = Path(__file__).resolve().parent / "health_server.py"


class CheckerThread:
    """An event loop on a thread inside a namespace."""

    def __init__(self, netns: str) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            if libc.setns(fd, 0x40000000) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            os.close(fd)
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        ready.wait(10)

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def config(kind: str, hosts: list[str], per_host: int, interval: float) -> AppConfig:
    backends = [{"address": h, "port": FIRST_PORT + i} for h in hosts for i in range(per_host)]
    health: dict[str, Any] = {"type": kind, "interval": interval, "timeout": interval / 2,
                              "rise": 2, "fall": 3, "fast_interval": interval / 4}
    return AppConfig.model_validate({
        "node": {"name": "bench", "router_id": "192.0.2.1",
                 "interfaces": [{"name": "eth0", "role": "both"}]},
        "services": [{"name": "bench", "vip": "203.0.113.10", "ports": [FIRST_PORT],
                      "announce": "l2", "backends": backends, "health": health}],
    })


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> str:
    return (f"n={len(values)} min={min(values):.3f} p50={pct(values, 0.5):.3f} "
            f"p90={pct(values, 0.9):.3f} p99={pct(values, 0.99):.3f} max={max(values):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--type", choices=["tcp", "http"], default="tcp")
    ap.add_argument("--backends", type=int, default=2000)
    ap.add_argument("--namespaces", type=int, default=4)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=512)
    args = ap.parse_args()
    per_host = args.backends // args.namespaces
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with Lab(PREFIX) as lab:
        sw = lab.switch("sw")
        lb = lab.host("lb")
        lab.connect(lb, sw, "eth0", ["192.0.2.1/24"])
        hosts: list[str] = []
        ports: list[str] = []
        servers: list[tuple[Namespace, Any]] = []
        for n in range(args.namespaces):
            ns = lab.host(f"s{n}")
            address = f"192.0.2.{100 + n}"
            ports.append(lab.connect(ns, sw, "eth0", [f"{address}/24"]))
            hosts.append(address)
            proc = ns.spawn([sys.executable, str(SERVER), address, str(FIRST_PORT),
                             str(per_host), args.type], stdout=-1)
            servers.append((ns, proc))
        for _, proc in servers:
            assert proc.stdout.readline().strip() == b"ready"
        cfg = config(args.type, hosts, per_host, args.interval)
        checker = HealthChecker(cfg, lambda _: None, concurrency=args.concurrency)
        loop = CheckerThread(f"{PREFIX}-lb")

        async def snap() -> dict[tuple[str, str], BackendHealth]:
            return dict(checker.snapshot())

        def count() -> float:
            return REGISTRY.get_sample_value("speaker_check_duration_seconds_count",
                                             {"type": args.type}) or 0.0

        async def start() -> asyncio.Future[None]:
            return asyncio.ensure_future(checker.run())

        lags: list[float] = []

        async def lag_probe() -> None:
            while True:
                t = time.monotonic()
                await asyncio.sleep(0.05)
                lags.append(time.monotonic() - t - 0.05)

        async def start_lag() -> asyncio.Future[None]:
            return asyncio.ensure_future(lag_probe())

        task = loop.call(start())
        total = per_host * args.namespaces
        t0 = time.monotonic()
        while sum(1 for h in loop.call(snap()).values() if h.up) < total:
            if time.monotonic() - t0 > 30:
                raise SystemExit("backends did not all come up in 30 s")
            time.sleep(0.2)
        print(f"{total} {args.type} backends up after {time.monotonic() - t0:.2f} s "
              f"(jittered start over {args.interval} s, rise 2)")
        time.sleep(args.interval)
        print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores, shared)")
        c0, r0, w0 = count(), resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        time.sleep(args.seconds)
        c1, r1, w1 = count(), resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        lag_task = loop.call(start_lag())
        time.sleep(2)
        loop.call(_cancel(lag_task))
        print(f"event-loop lag after the window (s): {summary(lags)}")
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        rate = (c1 - c0) / (w1 - w0)
        print(f"checks/s: {rate:.0f} (expected {total / args.interval:.0f})")
        print(f"checker CPU: {cpu / (w1 - w0):.3f} of a core "
              f"(user {r1.ru_utime - r0.ru_utime:.2f} s, sys {r1.ru_stime - r0.ru_stime:.2f} s"
              f" in {w1 - w0:.1f} s); {1e6 * cpu / max(1.0, c1 - c0):.0f} us CPU per check")
        lat = [h.latency for h in loop.call(snap()).values() if h.latency is not None]
        print(f"check latency (s): {summary(lat)}")

        # deaths: server 0 killed (refused), server 1's switch port cut (timeouts)
        killed = dict.fromkeys(hosts[:1], "refused") | dict.fromkeys(hosts[1:2], "timeout")
        cut = time.monotonic()
        servers[0][0].stop(servers[0][1], sig=9)
        if args.namespaces > 1:
            lab.port_down(sw, ports[1])
        victims = per_host * len(killed)
        deadline = cut + 10 * args.interval
        while time.monotonic() < deadline:
            down = [h for h in loop.call(snap()).values() if not h.up]
            if len(down) >= victims:
                break
            time.sleep(0.1)
        for host, reason in killed.items():
            delays = [h.since - cut for h in down if h.backend.startswith(host + ":")]
            print(f"detection after {reason} ({len(delays)} backends, bound interval x fall "
                  f"+ timeout = {args.interval * 3 + args.interval / 2:.2f} s): "
                  f"{summary(delays) if delays else 'none detected'}")
        print(f"mean detection: {statistics.mean(h.since - cut for h in down):.3f} s; "
              f"load average after: {os.getloadavg()[0]:.2f}")
        loop.call(_cancel(task))
        loop.stop()


async def _cancel(task: asyncio.Future[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


if __name__ == "__main__":
    main()
