"""Connection survival across failovers, beside keepalived + lvs_sync_daemon in the same VMs.

Boots the appliance pair of the vm_e2e tier (two TCG VMs, tests/vm_e2e/pair.py) twice
in one run, from the same image, with the same addresses, backends and drills:

1. **speaker**: `speaker run` in each VM (IPVS, VRRP ``default`` preset, the IPVS sync
   daemon following the election, the BGP VIP announced by both appliances to BIRD,
   which merges the routes: ECMP). N echo flows go to the L2 DR VIP and N to the BGP
   VIP; then ``drain`` (`speaker drain` API on the leader: the L2 VIP moves, the BGP
   VIP is withdrawn there) and ``death`` (the leader's switch ports cut, its VM killed:
   the L2 VIP moves, BIRD drops its route after the hold time).
2. **keepalived** (tests/vm_e2e/keepalived.py): keepalived 2.2 in the same VMs with
   the same VRRP instance and ``lvs_sync_daemon``; N flows to the L2 VIP; ``drain`` is
   a planned stop of the master's keepalived (priority-0 advert), ``death`` the same
   kill as above. keepalived has no BGP, so there is no BGP anchor.

Each flow sends 8 bytes every 100 ms and checks the echo; a scenario starts once the
backup's IPVS table holds every L2 flow (the sync daemon sends a new connection's
state within ~2 s; a younger flow can be lost by either implementation). Prints a
line per scenario, then the side-by-side table with the survival ratio speaker /
keepalived. Run as root:
``.venv/bin/python -m bench.conn_survival [N] [--no-keepalived | --only-keepalived]``.
"""

from __future__ import annotations

import ipaddress
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.vm.image import VmImage, build_image
from tests.vm.netns import namespaces
from tests.vm_e2e.flows import Backends, FlowReport, Flows
from tests.vm_e2e.keepalived import is_master, start_keepalived, stop_keepalived
from tests.vm_e2e.pair import (
    CLIENT_DR,
    NODES,
    PREFIX,
    VIP_BGP,
    VIP_DR,
    Appliance,
    Pair,
    build_pair,
    run_tag,
    wait_for,
)

Results = dict[tuple[str, str, str], FlowReport]  # (implementation, scenario, VIP kind)


def _established(node: Appliance, vip: str, flows: Flows) -> int:
    """ESTABLISHED entries in the node's IPVS table for these flows (by client port:
    entries of closed flows of an earlier scenario stay ESTABLISHED on an appliance
    that did not see them close, and must not count)."""
    ports = flows.ports()
    vip_hex = f"{int(ipaddress.IPv4Address(vip)):08X}"
    out = node.vm.run("cat", "/proc/net/ip_vs_conn_sync", check=False)
    return sum(1 for f in (line.split() for line in out.splitlines()[1:])
               if len(f) >= 8 and f[7] == "ESTABLISHED" and f[3] == vip_hex
               and int(f[2], 16) in ports)


def _ecmp(pair: Pair) -> bool:
    return pair.nexthops(VIP_BGP) == {str(NODES[n]["front"]) for n in pair.nodes}


def _drill(pair: Pair, count: int, lead: Appliance, other: Appliance, act: Callable[[], None],
           leads: Callable[[Appliance], bool], bgp: bool) -> dict[str, FlowReport]:
    """Open the flows, wait until the backup knows them, ``act``, wait for ``other``
    to lead and for every flow to echo again or break; the flows' reports by VIP."""
    flows = {"l2": Flows(pair.client, VIP_DR, count, CLIENT_DR, give_up=30.0)}
    if bgp:
        flows["bgp"] = Flows(pair.client, VIP_BGP, count, CLIENT_DR, give_up=30.0)
    try:
        wait_for("flows echoing", lambda: all(f.healthy() == count for f in flows.values()),
                 timeout=120)
        wait_for("backup knows every flow",
                 lambda: _established(other, VIP_DR, flows["l2"]) >= count, timeout=60)
        act()
        wait_for("the other appliance leads", lambda: leads(other), timeout=120, every=0.5)
        if bgp:
            wait_for("one route left", lambda: len(pair.nexthops(VIP_BGP)) == 1, timeout=60)
        wait_for("flows settle", lambda: all(f.healthy(2.0) + len(f.broken) == count
                                             for f in flows.values()), timeout=60)
        time.sleep(2)
        return {kind: f.report() for kind, f in flows.items()}
    finally:
        for f in flows.values():
            f.close()


def _speaker(image: VmImage, count: int, results: Results) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}bench-"))
    try:
        with namespaces(PREFIX) as nss:
            pair = build_pair(image, workdir, nss, run_tag())
            backends = Backends(pair.backends)
            try:
                for node in pair.nodes.values():
                    wait_for(f"{node.name} API", node.ready, timeout=300, every=2)
                wait_for("one leader", lambda: sum(n.leader() for n in pair.nodes.values())
                         == 1, timeout=120, every=1)
                wait_for("ECMP at the router", lambda: _ecmp(pair), timeout=600, every=2)
                for kind in ("drain", "death"):
                    lead = next(n for n in pair.nodes.values() if n.alive and n.leader())
                    other = next(n for n in pair.nodes.values() if n is not lead)
                    act = ((lambda lead=lead: lead.api("drain")) if kind == "drain"
                           else (lambda lead=lead: pair.kill(lead.name)))
                    reports = _drill(pair, count, lead, other, act, Appliance.leader, bgp=True)
                    for vip, report in reports.items():
                        results["speaker", kind, vip] = report
                        print(f"speaker {kind:5s} {vip:3s} N={count}: {report}", flush=True)
                    if kind == "drain":
                        lead.api("undrain")
                        wait_for("ECMP again", lambda: _ecmp(pair), timeout=120, every=1)
            finally:
                backends.close()
                pair.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _keepalived(image: VmImage, count: int, results: Results) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}bench-ka-"))
    try:
        with namespaces(PREFIX) as nss:
            pair = build_pair(image, workdir, nss, run_tag(), start_speakers=False)
            backends = Backends(pair.backends)
            try:
                for node in pair.nodes.values():
                    start_keepalived(node)
                wait_for("one master", lambda: sum(is_master(n) for n in pair.nodes.values())
                         == 1, timeout=120, every=1)
                time.sleep(6)  # first TCP checks put the real servers in
                for kind in ("drain", "death"):
                    lead = next(n for n in pair.nodes.values() if n.alive and is_master(n))
                    other = next(n for n in pair.nodes.values() if n is not lead)
                    act = ((lambda lead=lead: stop_keepalived(lead)) if kind == "drain"
                           else (lambda lead=lead: pair.kill(lead.name)))
                    reports = _drill(pair, count, lead, other, act, is_master, bgp=False)
                    results["keepalived", kind, "l2"] = reports["l2"]
                    print(f"keepalived {kind:5s} l2  N={count}: {reports['l2']}", flush=True)
                    if kind == "drain":
                        start_keepalived(lead)  # back as the backup (nopreempt)
                        time.sleep(6)
            finally:
                backends.close()
                pair.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def table(results: Results) -> str:
    rows = ["| scenario | VIP | speaker survived | speaker longest stall | keepalived "
            "survived | keepalived longest stall | survival ratio speaker/keepalived |",
            "|---|---|---|---|---|---|---|"]
    for kind in ("drain", "death"):
        for vip in ("l2", "bgp"):
            ours = results.get(("speaker", kind, vip))
            theirs = results.get(("keepalived", kind, vip))
            if ours is None:
                continue
            anchor = (f"{theirs.survived}/{theirs.total} ({100 * theirs.ratio:.1f} %) | "
                      f"{theirs.longest_stall:.2f} s | "
                      + (f"{ours.ratio / theirs.ratio:.2f}" if theirs.ratio else "∞ (0 survived)")
                      if theirs else "n/a (no BGP in keepalived) | | ")
            rows.append(f"| {kind} | {vip} | {ours.survived}/{ours.total} "
                        f"({100 * ours.ratio:.1f} %) | {ours.longest_stall:.2f} s | {anchor} |")
    return "\n".join(rows)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    count = int(args[0]) if args else 200
    image = build_image()
    results: Results = {}
    start = time.monotonic()
    if "--only-keepalived" not in sys.argv:
        _speaker(image, count, results)
    if "--no-keepalived" not in sys.argv:
        _keepalived(image, count, results)
    print(f"\n{table(results)}\n\nwall time {time.monotonic() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
