"""Connection survival across an L2 failover: N long-lived TCP flows through the VIP.

Boots the appliance pair of the vm_e2e tier (two TCG VMs running `speaker run`
with IPVS, VRRP and the IPVS sync daemon following the election; see
tests/vm_e2e/pair.py), opens N echo connections from the client namespace to the
DR VIP (each sends 8 bytes every 100 ms and checks the echo), waits until the
backup's IPVS table holds every flow (sync messages leave within ~2 s), then:

1. ``drain``: `speaker drain` on the leader (planned handover);
2. ``death``: the (new) leader's switch ports cut and its VM killed.

For each it prints how many flows survived and the longest stall any flow saw.
Run as root: ``.venv/bin/python -m bench.conn_survival [N]``.

Not measured here yet (see docs/performance.md): the BGP ECMP death, and the
keepalived + lvs_sync_daemon anchor in the same VMs.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.vm.image import build_image
from tests.vm.netns import namespaces, run_id
from tests.vm_e2e.flows import Backends, FlowReport, Flows
from tests.vm_e2e.pair import CLIENT_DR, VIP_DR, Appliance, Pair, build_pair, wait_for


def _synced(node: Appliance) -> int:
    out = node.vm.run("ipvsadm", "-Lnc", check=False)
    return sum(1 for line in out.splitlines()
               if "ESTABLISHED" in line and f"{VIP_DR}:9000" in line)


def _leader(pair: Pair) -> tuple[Appliance, Appliance]:
    lead = next(n for n in pair.nodes.values() if n.alive and n.leader())
    other = next(n for n in pair.nodes.values() if n is not lead)
    return lead, other


def _scenario(pair: Pair, count: int, kind: str) -> FlowReport:
    lead, other = _leader(pair)
    flows = Flows(pair.client, VIP_DR, count, CLIENT_DR, give_up=30.0)
    try:
        wait_for("flows echoing", lambda: flows.healthy() == count, timeout=120)
        wait_for("backup knows every flow", lambda: _synced(other) >= count, timeout=60)
        if kind == "drain":
            lead.api("drain")
        else:
            pair.kill(lead.name)
        wait_for("the other appliance leads", other.leader, timeout=120, every=0.5)
        wait_for("flows settle", lambda: flows.healthy(2.0) + len(flows.broken) == count,
                 timeout=60)
        time.sleep(2)
        return flows.report()
    finally:
        flows.close()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    image = build_image()
    workdir = Path(tempfile.mkdtemp(prefix="eve-bench-"))
    try:
        with namespaces("eve-") as nss:
            pair = build_pair(image, workdir, nss, run_id())
            backends = Backends(pair.backends)
            try:
                for node in pair.nodes.values():
                    wait_for(f"{node.name} API", node.ready, timeout=300, every=2)
                wait_for("one leader", lambda: sum(n.leader() for n in pair.nodes.values())
                         == 1, timeout=120, every=1)
                time.sleep(10)  # first health verdicts
                for kind in ("drain", "death"):
                    report = _scenario(pair, count, kind)
                    print(f"speaker {kind:5s} N={count}: {report}", flush=True)
                    if kind == "drain":
                        drained = next(n for n in pair.nodes.values() if not n.leader())
                        drained.api("undrain")
            finally:
                backends.close()
                pair.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
