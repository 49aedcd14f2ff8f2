"""Render-time figures for a large site (not a test; prints figures).

    .venv/bin/python -m tests.routercfg.perf_render 10000

Two appliances with N BGP VIPs each and no bgp.pools, so every router filter holds
N exact entries (the worst case: with pools a filter holds one line per pool).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from speaker.config import AppConfig, parse_text
from speaker.routercfg import VENDORS, BuildOptions, build_model, render


def appliance(name: str, local: str, vips: int) -> AppConfig:
    """An appliance config with `vips` services in 198.18.0.0/15 (benchmark range)."""
    services = "\n".join(
        f"  - {{name: s{i}, vip: 198.18.{i // 256}.{i % 256}, ports: [80], "
        "backends: [{address: 192.0.2.200}]}" for i in range(vips))
    return parse_text(f"""
node: {{name: {name}, router_id: {local}, interfaces: [{{name: eth0, role: both}}]}}
bgp:
  local_asn: 65010
  peers: [{{name: tor, address: 192.0.2.1, asn: 65000, local_address: {local},
           families: [ipv4-unicast]}}]
services:
{services}
""", name)


def main() -> None:
    """Print parse time and per-vendor build+render time (median of 5)."""
    vips = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    start, start_cpu = time.perf_counter(), time.process_time()
    configs = [("a.yaml", appliance("a", "192.0.2.11", vips)),
               ("b.yaml", appliance("b", "192.0.2.12", vips))]
    print(f"parse + validate 2 configs x {vips} services: {time.perf_counter() - start:.2f} s "
          f"wall, {time.process_time() - start_cpu:.2f} s CPU "
          f"(load average {os.getloadavg()[0]:.1f})")
    for vendor in VENDORS:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            text = render(build_model(configs, BuildOptions(), "x"), vendor)
            times.append(time.perf_counter() - start)
        print(f"{vendor:6} build + render: {statistics.median(times) * 1000:4.0f} ms "
              f"(output {len(text) // 1024} KiB)")


if __name__ == "__main__":
    main()
