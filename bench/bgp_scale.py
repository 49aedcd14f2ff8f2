"""1,000 and 10,000 VIPs announced until all are in BIRD's table; then withdrawn.

    .venv/bin/python bench/bgp_scale.py [COUNT ...] [--reactor-speed S]

Prefixes are /32s from 198.18.0.0/15 (the benchmarking range), carried only as
BGP routes inside the lab namespaces, never routed. The clock starts at
`set()` on an established session and stops when `show route count` reaches
the total (BIRD polled over its control socket every 10 ms).
"""

from __future__ import annotations

import argparse
import time
from ipaddress import IPv4Address, IPv4Network

from bgp_lab import rig

from speaker.model import BgpAnnouncement
from tests.bgp.routers import wait_for

BASE = int(IPv4Address("198.18.0.0"))


def vips(count: int) -> list[BgpAnnouncement]:
    """`count` /32s from 198.18.0.0/15 with the usual attributes."""
    return [BgpAnnouncement(IPv4Network(f"{IPv4Address(BASE + i)}/32"),
                            communities=("65010:100",), large_communities=("65010:1:1",))
            for i in range(count)]


def wait_count(ctl_count: object, target: int, limit: float = 120.0) -> float:
    """Seconds until BIRD's count equals target (polling every 10 ms)."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if ctl_count() == target:  # type: ignore[operator]
            return time.perf_counter() - start
        time.sleep(0.01)
    raise TimeoutError(f"BIRD did not reach {target} routes")


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("counts", nargs="*", type=int, default=[1000, 10000])
    parser.add_argument("--reactor-speed", type=float, default=None)
    args = parser.parse_args()
    with rig(reactor_speed=args.reactor_speed) as r:
        spk = r.speaker
        wait_for(lambda: spk.sync(spk.speaker.sessions)["r1"].state == "up", 30,
                 what="session up")
        for count in args.counts:
            routes = vips(count)
            start = time.perf_counter()
            spk.call(lambda routes=routes: spk.speaker.set(routes), timeout=300)
            acked = time.perf_counter() - start
            seen = acked + wait_count(r.ctl.count, count)
            print(f"{count} VIPs: set() acked {acked:.2f} s, all in BIRD {seen:.2f} s "
                  f"({count / seen:.0f} routes/s) reactor_speed={args.reactor_speed}")
            start = time.perf_counter()
            spk.call(lambda: spk.speaker.set([]), timeout=300)
            gone = (time.perf_counter() - start) + wait_count(r.ctl.count, 0)
            print(f"{count} VIPs: all withdrawn at BIRD {gone:.2f} s")


if __name__ == "__main__":
    main()
