"""Planned handover gap: `speaker drain` on the VIP owner, as a client sees it.

Two appliances running `speaker run` (VRRP preset fast) on one bridge, a client
pinging the VIP every 10 ms. Each run drains whichever appliance owns the VIP
(penalty + resign: priority 0 goes out, the old owner keeps answering until
the new master's advert arrives), waits for the client's neighbour entry to
move, then undrains it (it stays backup: a resigned appliance does not preempt).
The figure is the longest gap between two ping answers.

    .venv/bin/python bench/failover_handover.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "l2"))

from l2lab import SPEAKER, Group, Pinger, Segment, Vip

from speaker.lab.netns import Lab

VIP = "192.0.2.100"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    gaps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="esk-bench-") as tmp, Lab("esk") as lab:
        seg = Segment(lab, Path(tmp), ["a1", "a2"])
        apps = seg.appliances
        for name, prio in (("a1", 150), ("a2", 100)):
            seg.configure(name, [Group("front", 51, prio)], [Vip("web", VIP, "front")]).start()
            if name == "a1":
                apps["a1"].wait_event("vip_owned", vip=VIP, timeout=20)
        apps["a2"].wait_event("ready", timeout=20)
        seg.prime(VIP)
        owner, other = apps["a1"], apps["a2"]
        for run in range(args.runs):
            other.mark()
            pinger = Pinger(seg, VIP)
            time.sleep(0.5)
            owner.ns.run(SPEAKER, "drain", "-s", str(owner.sock))
            other.wait_event("vip_owned", vip=VIP)
            deadline = time.monotonic() + 5
            while seg.neigh_mac(VIP) != other.mac and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)
            gaps.append(Pinger.longest_gap(pinger.stop()))
            owner.ns.run(SPEAKER, "undrain", "-s", str(owner.sock))
            print(f"run {run + 1:2d}: gap {gaps[-1] * 1000:.1f} ms", flush=True)
            time.sleep(0.5)
            owner, other = other, owner
    s = sorted(gaps)
    p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
    print(f"\nPlanned handover (speaker drain), client ping every 10 ms, "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"runs={len(s)} median={statistics.median(s) * 1000:.1f} ms p99={p99 * 1000:.1f} ms "
          f"max={s[-1] * 1000:.1f} ms (a gap of ~10 ms is one ping interval: no loss)")


if __name__ == "__main__":
    main()
