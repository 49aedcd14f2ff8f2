"""etcd election figures: failover time, overlap, and etcd requests/s at 100 groups.

1. The etcd lab (tests/etcd/etcdlab.py: three TLS members, two appliances running
   `speaker run`, L2 + BGP to BIRD, an ARP observer on the client segment). For each
   lease TTL, RUNS times each:
   - death: the blue leader's switch ports are cut and its speaker is killed; the
     figure is the time from the cut to the first ARP reply from the new owner;
   - partition: the leader (and the member it reaches) are cut off from the etcd
     majority, the leader still on the client segment; the figures are the overlap
     (both MACs answering; goal 0) and the gap between the two owners.
2. One engine in-process with 100 groups on a loopback member: etcd requests/s in
   steady state, as leader of all 100 and as follower of all 100.

    .venv/bin/python bench/etcd_failover.py [--runs 5] [--ttls 2,5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "etcd"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "l2"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "bgp"))

from etcdkit import single, wait_healthy
from etcdlab import WEB, EtcdLab, owners_timeline, settle

from speaker.lab.netns import Lab

PRIO = {"a1": {"blue": 200, "green": 100}, "a2": {"blue": 100, "green": 200}}


def lab_runs(ttl: int, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"death": [], "overlap": [], "gap": []}
    with tempfile.TemporaryDirectory(prefix="eet-bench-") as tmp, Lab("eetb") as netlab:
        lab = EtcdLab(netlab, Path(tmp), ttl=ttl)
        for name, prio in PRIO.items():
            lab.configure(name, prio).start()
        settle(lab, timeout=60)
        for i in range(runs):
            lab.client.run("ping", "-c", "1", "-W", "1", WEB, check=False)
            watch = lab.watch_arp(WEB, 60)
            time.sleep(0.3)
            cut = time.monotonic()
            lab.death("a1")
            lab.appliances["a2"].mark()
            lab.appliances["a2"].wait_event("etcd_leading", group="blue", timeout=30)
            time.sleep(0.3)
            replies = watch.stop()
            took = min(t for t, m in replies if m.endswith("0c")) - cut
            out["death"].append(took)
            lab.revive("a1")
            settle(lab, timeout=60)

            lab.client.run("ping", "-c", "1", "-W", "1", WEB, check=False)
            watch = lab.watch_arp(WEB, 60)
            time.sleep(0.3)
            lab.appliances["a2"].mark()
            lab.partition("a1")
            lab.appliances["a2"].wait_event("etcd_leading", group="blue", timeout=30)
            time.sleep(0.3)
            overlap, gap = owners_timeline(watch.stop())
            out["overlap"].append(overlap)
            out["gap"].append(gap)
            lab.heal("a1")
            settle(lab, timeout=60)
            print(f"  ttl {ttl} run {i + 1}: death {took:.2f} s, partition overlap "
                  f"{overlap * 1000:.0f} ms gap {gap * 1000:.0f} ms", flush=True)
        for m in lab.members:
            m.stop()
    return out


def requests_per_second(groups: int = 100, seconds: float = 10.0) -> tuple[float, float, int]:
    """(leader req/s, follower req/s, start-up requests) for one engine with `groups`."""
    from test_engine_etcd import Node, config

    from speaker.election import etcd_metrics as em

    def total() -> float:
        return sum(s.value for metric in em.REQUESTS.collect() for s in metric.samples
                   if s.name.endswith("_total"))

    with tempfile.TemporaryDirectory(prefix="eet-rps-") as tmp:
        member = single(Path(tmp))
        try:
            wait_healthy(member.client_url)

            async def main() -> tuple[float, float, int]:
                names = {f"g{i:03d}": 200 for i in range(groups)}
                before = total()
                a = Node(config("a", member.client_url, names))
                a.start()
                while not all(a.leads(g) for g in names):  # noqa: ASYNC110 - polls verdicts
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)
                startup = int(total() - before)
                t0, c0 = time.monotonic(), total()
                await asyncio.sleep(seconds)
                leader = (total() - c0) / (time.monotonic() - t0)
                b = Node(config("b", member.client_url, dict.fromkeys(names, 100)))
                b.start()
                await asyncio.sleep(2.0)
                t1, c1 = time.monotonic(), total()
                await asyncio.sleep(seconds)
                both = (total() - c1) / (time.monotonic() - t1)
                for n in (a, b):
                    with contextlib.suppress(Exception):
                        await n.stop()
                return leader, both - leader, startup

            return asyncio.run(main())
        finally:
            member.stop()


def summary(name: str, values: list[float], unit: float = 1.0, fmt: str = "{:.2f}") -> str:
    vs = sorted(v * unit for v in values)
    p = statistics.quantiles(vs, n=20, method="inclusive")[-1] if len(vs) >= 2 else vs[0]
    return (f"{name}: n={len(vs)} min {fmt.format(vs[0])} median "
            f"{fmt.format(statistics.median(vs))} p95 {fmt.format(p)} max {fmt.format(vs[-1])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ttls", default="2,5")
    parser.add_argument("--skip-lab", action="store_true")
    args = parser.parse_args()
    if not args.skip_lab:
        for ttl in (int(t) for t in args.ttls.split(",")):
            res = lab_runs(ttl, args.runs)
            print(f"TTL {ttl} s (renew {ttl / 4:g} s, margin {ttl / 4:g} s):")
            print("  " + summary("death -> new owner answers ARP (s)", res["death"]))
            print("  " + summary("partition overlap (ms)", res["overlap"], 1000, "{:.0f}"))
            print("  " + summary("partition gap (ms)", res["gap"], 1000, "{:.0f}"))
    leader, follower, startup = requests_per_second()
    print(f"100 groups, TTL 2 s: leader {leader:.1f} req/s, follower {follower:.1f} req/s, "
          f"start-up {startup} requests")


if __name__ == "__main__":
    main()
