"""How long `config check` (load_config) takes on a config with many backends.

    .venv/bin/python bench/config_check.py [BACKENDS]

Two shapes of BACKENDS backends (default 50,000): one service holding all of
them (the worst case for per-service duplicate checks) and services of 100
backends each. Each is written to a temporary file and loaded the way the daemon
and `speaker config check` load it (read, parse, validate, cross-section rules);
the best of three runs is printed (wall clock and CPU time) with the file size.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import tempfile
import time
from pathlib import Path

from speaker.config import load_config

HEAD = """node:
  name: lb1
  router_id: 192.0.2.10
  interfaces: [{name: eth0, role: both}]
services:
"""


def backend_lines(count: int, first: int) -> list[str]:
    base = int(ipaddress.IPv4Address("198.19.0.0"))
    return [f"      - {{address: {ipaddress.IPv4Address(base + first + i)}, port: 8080}}"
            for i in range(count)]


def config(backends: int, per_service: int) -> str:
    lines = [HEAD.rstrip("\n")]
    for s in range(0, backends, per_service):
        vip = ipaddress.IPv4Address(int(ipaddress.IPv4Address("198.18.0.0")) + s // per_service)
        lines += [f"  - name: svc{s // per_service}", f"    vip: {vip}", "    ports: [80]",
                  "    announce: l2", "    backends:"]
        lines += backend_lines(min(per_service, backends - s), s)
    return "\n".join(lines) + "\n"


def best_of(path: Path, runs: int = 3) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of `runs` loads (the previous result is
    freed before the clock starts, so freeing it is not counted)."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        cfg = load_config(path)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        del cfg
    return min(wall), min(cpu)


def main() -> None:
    backends = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for label, per_service in (("1 service", backends), ("services of 100", 100)):
            path = Path(tmp) / "cfg.yaml"
            path.write_text(config(backends, per_service))
            size = path.stat().st_size / 1e6
            wall, cpu = best_of(path)
            print(f"{backends} backends, {label}: {wall:.2f} s wall, {cpu:.2f} s CPU "
                  f"({size:.1f} MB)")


if __name__ == "__main__":
    main()
