"""ExaBGP kill -9 to every VIP back at the BIRD peer.

    .venv/bin/python bench/bgp_restart.py [RUNS] [VIPS]

No graceful restart, so BIRD flushes the routes when the TCP session dies; the
clock starts at the kill and stops when BIRD has every VIP again (restart
immediate for a first crash, ExaBGP start-up, session, replay, End-of-RIB).
ESB_EXABGP=/path/to/exabgp selects another ExaBGP (e.g. 5.0.x).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from bgp_lab import rig, summary
from bgp_scale import vips

from tests.bgp.routers import wait_for


def main() -> None:
    """Run the benchmark and print the figures."""
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    routes = vips(count)
    back: list[float] = []
    with rig() as r:
        spk = r.speaker
        spk.call(lambda: spk.speaker.set(routes))
        wait_for(lambda: r.ctl.count() == count, 60, what="VIPs at BIRD")
        for _ in range(runs):
            pid = spk.sync(spk.speaker.status)["exabgp"]["pid"]  # type: ignore[index]
            assert isinstance(pid, int)
            start = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            while r.ctl.count() == count:  # BIRD notices the dead session
                time.sleep(0.001)
            while r.ctl.count() != count:
                time.sleep(0.005)
            back.append(time.perf_counter() - start)
            time.sleep(11)  # past STABLE_AFTER_S: each kill is a first crash
        restarts = spk.sync(spk.speaker.status)["exabgp"]["restarts"]  # type: ignore[index]
    print(summary(f"kill -9 -> all {count} VIPs back at BIRD", back))
    print(f"restarts counted: {restarts}")


if __name__ == "__main__":
    main()
