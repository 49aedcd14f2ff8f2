"""Decision to route gone at a BIRD peer (and back), over N runs.

    .venv/bin/python bench/bgp_withdraw.py [RUNS]

The clock starts when the speaker is told the new desired set (`set()`, what
the reconciler calls once a backend is marked down) and stops when BIRD's
table no longer has the VIP. Also reported: the time `set()` takes to return
(ExaBGP's ack) and re-announcement to route present.
"""

from __future__ import annotations

import sys
import time
from ipaddress import ip_network

from bgp_lab import rig, summary

from speaker.model import BgpAnnouncement
from tests.bgp.routers import wait_for

VIP = BgpAnnouncement(ip_network("203.0.113.10/32"), communities=("65010:1",))
OTHER = BgpAnnouncement(ip_network("203.0.113.11/32"))


def main() -> None:
    """Run the benchmark and print the figures."""
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    gone: list[float] = []
    acked: list[float] = []
    back: list[float] = []
    with rig() as r:
        spk = r.speaker
        spk.call(lambda: spk.speaker.set([VIP, OTHER]))
        wait_for(lambda: r.ctl.count() == 2, 30, what="both VIPs at BIRD")
        for _ in range(runs):
            start = time.perf_counter()
            spk.call(lambda: spk.speaker.set([OTHER]))
            acked.append(time.perf_counter() - start)
            while r.ctl.has_route("203.0.113.10/32"):
                pass
            gone.append(time.perf_counter() - start)
            time.sleep(0.05)
            start = time.perf_counter()
            spk.call(lambda: spk.speaker.set([VIP, OTHER]))
            while not r.ctl.has_route("203.0.113.10/32"):
                pass
            back.append(time.perf_counter() - start)
            time.sleep(0.05)
    print(summary("set() -> ExaBGP ack", acked))
    print(summary("set() -> route gone at BIRD", gone))
    print(summary("set() -> route back at BIRD", back))


if __name__ == "__main__":
    main()
