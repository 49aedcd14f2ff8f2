"""Cost of the status document at N services, without a lab: the supervisor with fakes
and a real (not running) health checker whose backends all have a verdict.

    .venv/bin/python bench/status_cost.py [N ...] [--runs 5]

Services have two HTTP-checked backends each (shared addresses) and IPVS enabled
(in-memory forwarder). Per N it prints, median of --runs: the one-go build
(`status_document` + `json.dumps`), the API's sliced build (`encode_status`): wall
time, CPU time and the longest the loop went without running another task (a 1 ms
ticker), and the document's size.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speaker.api.status_body import encode_status
from speaker.config import AppConfig, load_config
from speaker.factory import BuildContext
from speaker.fakes import FakeAddresses, FakeBgp, FakeElection, FakeForwarder, FakeL2
from speaker.health.engine import HealthChecker
from speaker.health.hysteresis import static_up
from speaker.sdnotify import Notifier
from speaker.status import status_document
from speaker.supervisor import Supervisor

BASE = int(IPv4Address("198.18.0.0"))


def config(count: int) -> dict[str, Any]:
    """`count` services with VIPs from 198.18.0.0/15 (never leaves this process)."""
    backends = [{"address": "198.51.100.21", "port": 8080},
                {"address": "198.51.100.22", "port": 8080}]
    return {"node": {"name": "lb1", "router_id": "192.0.2.10", "interfaces": [{"name": "lo"}]},
            "bgp": {"local_asn": 65010, "pools": ["198.18.0.0/15"],
                    "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000}]},
            "services": [{"name": f"s{i}", "vip": str(IPv4Address(BASE + i)), "ports": [80],
                          "backends": backends, "health": {"type": "http"}}
                         for i in range(count)],
            "dataplane": {"ipvs": True}}


def build(kind: str, cfg: AppConfig, ctx: BuildContext) -> object | None:
    """Fakes, and a real health checker with every backend up."""
    if kind == "health":
        checker = HealthChecker(cfg, ctx.wake)
        for worker in checker._workers.values():  # bench set-up: every backend up
            worker.state = replace(static_up(time.monotonic()), reason="ok", latency=0.001)
        return checker
    makers: dict[str, Any] = {"election": FakeElection, "bgp": FakeBgp, "l2": FakeL2,
                              "addresses": lambda _c: FakeAddresses(),
                              "forwarder": lambda _c: FakeForwarder()}
    maker = makers.get(kind)
    return None if maker is None else maker(cfg)


async def sliced(sup: Supervisor) -> tuple[float, float, float, int]:
    """(wall s, CPU s, longest loop gap s, bytes) of one encode_status."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    gaps.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    body = await encode_status(sup)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done.set()
    await task
    return wall, cpu, max(gaps), len(body)


def measure(count: int, runs: int) -> dict[str, Any]:
    """The figures for one N."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speaker.yaml"
        path.write_text(yaml.safe_dump(config(count)))
        sup = Supervisor(path, load_config(path), build_part=build, notifier=Notifier(""))

        async def scenario() -> dict[str, Any]:
            await sup.reconciler.reconcile_once()
            gc.collect()
            gc.freeze()  # as `speaker run` does (speaker.gcpolicy)
            whole = []
            for _ in range(runs):
                start = time.process_time()
                json.dumps(status_document(sup), default=str)
                whole.append(time.process_time() - start)
            results = [await sliced(sup) for _ in range(runs)]
            return {"services": count, "one_go_cpu_s": round(statistics.median(whole), 3),
                    "sliced_wall_s": round(statistics.median(r[0] for r in results), 3),
                    "sliced_cpu_s": round(statistics.median(r[1] for r in results), 3),
                    "longest_loop_gap_ms": round(1000 * max(r[2] for r in results), 1),
                    "bytes": results[-1][3]}

        return asyncio.run(scenario())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("counts", nargs="*", type=int, default=[1000, 2000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for count in args.counts:
        print(json.dumps(measure(count, args.runs)), flush=True)


if __name__ == "__main__":
    main()
