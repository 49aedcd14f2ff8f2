"""Benchmark IPVS sync through dataplane.ipvs against ``ipvsadm -R`` (run in the VM).

Needs root, a kernel with IPVS and ``ipvsadm``; it flushes the IPVS table, so run it
only in a throwaway guest: ``python -m tests.vm.bench`` on the host boots one and runs
this there. Inside a guest: ``python3 -m bench.ipvs_sync [--sizes 1000x4,10000x3]``.

For each size, on the same rule set in the same run:

* ``ipvsadm -R``: restore the rules from text into an empty table;
* ours: ``IpvsForwarder.sync(desired)`` into an empty table (dump, plan, encode, send);
* the ratio ours / ipvsadm (goal: <= 1.5);
* no-op resync: dump + plan with nothing to change, next to ``ipvsadm -Sn`` (a dump);
* single change: one dest's weight, ``apply`` of the one op (median of 50), a full
  resync (dump + plan + apply) that finds it, and an event-driven pass that plans
  against ``IpvsForwarder.known()`` (no dump) and applies (median of 20; this one
  includes building the desired table's dicts).

Rule set: services on VIPs of 203.0.113.0/24, 100 ports each, dests in
198.51.100.0/24 (TEST-NET; nothing is sent anywhere).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address, ip_network

from dataplane.ipvs.forwarder import IpvsForwarder
from dataplane.ipvs.model import Dest, DestKey, IpvsTable, Service, ServiceKey
from dataplane.ipvs.ownership import Ownership
from dataplane.ipvs.plan import EditDest, plan_ipvs

OWNED = Ownership(vip_ranges=(ip_network("203.0.113.0/24"),))


def rule_set(services: int, dests: int) -> IpvsTable:
    svcs, dsts = [], []
    for i in range(services):
        key = ServiceKey.tcp(IPv4Address("203.0.113.1") + i // 100, 1000 + i % 100)
        svcs.append(Service(key, "wrr"))
        dsts += [Dest(DestKey(key, IPv4Address("198.51.100.11") + j, 8080), 1 + j, "nat")
                 for j in range(dests)]
    return IpvsTable.of(svcs, dsts)


def ipvsadm_rules(table: IpvsTable) -> str:
    lines = [f"-A -t {k.address}:{k.port} -s {s.scheduler}" for k, s in table.services.items()]
    lines += [f"-a -t {k.service.address}:{k.service.port} -r {k.address}:{k.port} -m -w {d.weight}"
              for k, d in table.dests.items()]
    return "\n".join(lines) + "\n"


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def ipvsadm(*args: str, stdin: str | None = None) -> None:
    subprocess.run(["ipvsadm", *args], input=stdin, text=True, check=True,
                   stdout=subprocess.DEVNULL)


def bench_size(fwd: IpvsForwarder, services: int, dests: int) -> dict[str, float]:
    table = rule_set(services, dests)
    rules = ipvsadm_rules(table)
    out: dict[str, float] = {}
    ipvsadm("-C")
    out["ipvsadm_restore_s"] = timed(lambda: ipvsadm("-R", stdin=rules))
    out["ipvsadm_dump_s"] = timed(lambda: ipvsadm("-Sn"))
    ipvsadm("-C")
    result = None

    def ours() -> None:
        nonlocal result
        result = fwd.sync(table)

    out["ours_full_sync_s"] = timed(ours)
    assert result is not None
    assert not result.failures, result.failures[:3]
    out["ratio"] = out["ours_full_sync_s"] / out["ipvsadm_restore_s"]
    observed = fwd.observe()
    assert observed == table, "kernel table differs from the desired one"
    out["ours_dump_s"] = timed(fwd.observe)
    out["ours_noop_resync_s"] = timed(lambda: plan_ipvs(table, fwd.observe(), fwd.owned))
    # Single change: one dest's weight.
    dest = next(iter(table.dests.values()))
    samples = []
    for i in range(50):
        op = EditDest(replace(dest, weight=100 + i % 2))
        samples.append(timed(lambda op=op: fwd.kernel.apply([op])))  # type: ignore[misc]
    out["single_change_apply_ms"] = statistics.median(samples) * 1000
    changed = IpvsTable.of(table.services.values(),
                           [*table.dests.values(), replace(dest, weight=7)])
    out["single_change_resync_s"] = timed(lambda: fwd.sync(changed))
    # Event-driven pass: plan against the known table (no dump), apply one op.
    samples = []
    for i in range(20):
        want = IpvsTable.of(table.services.values(),
                            [*table.dests.values(), replace(dest, weight=20 + i)])
        samples.append(timed(lambda want=want: fwd.apply(
            plan_ipvs(want, fwd.known(), fwd.owned))))  # type: ignore[misc]
    out["single_change_known_ms"] = statistics.median(samples) * 1000
    ipvsadm("-C")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000x4,10000x3")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fwd = IpvsForwarder(OWNED)
    report = {}
    for size in args.sizes.split(","):
        services, dests = (int(x) for x in size.split("x"))
        report[size] = bench_size(fwd, services, dests)
    fwd.close()
    if args.json:
        print(json.dumps(report))
        return
    for size, r in report.items():
        print(f"{size}: ipvsadm -R {r['ipvsadm_restore_s']:.3f} s, "
              f"ours {r['ours_full_sync_s']:.3f} s "
              f"(ratio {r['ratio']:.2f}); no-op resync {r['ours_noop_resync_s']:.3f} s "
              f"(dump {r['ours_dump_s']:.3f} s, ipvsadm -Sn {r['ipvsadm_dump_s']:.3f} s); "
              f"one change: apply {r['single_change_apply_ms']:.2f} ms, "
              f"resync {r['single_change_resync_s']:.3f} s, "
              f"plan on known table + apply {r['single_change_known_ms']:.1f} ms")


if __name__ == "__main__":
    main()
