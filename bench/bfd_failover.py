"""Appliance death in BGP mode: route gone at the router with BFD and without, in the
same run; then BFD stability with the CPU saturated and health checks running.

    .venv/bin/python bench/bfd_failover.py [RUNS] [STABILITY_SECONDS] [CHECKS]

Two appliances (`speaker run`) announce one VIP to a BIRD router configured by
`speaker router-config --vendor bird`: lb1 with BFD 100 ms x 3, lb2 without
(hold time 9 s). A death is the switch port cut, then `speaker run` SIGKILLed
(ExaBGP and the BFD child die with it). The clock starts at the port cut and
stops when BIRD no longer has the route via that appliance (control socket
polled every 2 ms). Deaths alternate between lb1 and lb2.

Stability: lb1 alone, BFD 100 ms x 3, CHECKS TCP health checks every 100 ms
(CHECKS x 10 checks/s asked) and two busy loops (one per core, started and
killed by PID) for STABILITY_SECONDS; false downs are counted on both ends. The
router stands in for a separate box, so BIRD runs SCHED_RR 5 (`chrt`) here.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from speaker.lab.netns import Lab
from tests.bfd.bgp_rig import VIP, Rig, build, wait

FAST = {"min_tx": "100ms", "min_rx": "100ms", "multiplier": 3}
ADDRESS = {"lb1": "192.0.2.11", "lb2": "192.0.2.12"}


def until_gone(rig: Rig, address: str, start: float, limit: float = 30.0) -> float:
    """Seconds from `start` (the port cut) until BIRD has no route via `address`."""
    while address in rig.ctl.next_hops(f"{VIP}/32"):
        if time.perf_counter() - start > limit:
            raise TimeoutError(f"route via {address} still there")
        time.sleep(0.002)
    return time.perf_counter() - start


def settle(rig: Rig) -> None:
    """Both next hops at BIRD and lb1's BFD up on both ends."""
    wait(lambda: rig.ctl.next_hops(f"{VIP}/32") >= set(ADDRESS.values()), 90, "both next hops")
    wait(lambda: (rig.apps["lb1"].peer().get("bfd") or {}).get("state") == "up", 30,
         "lb1 BFD up")


def failover(runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"lb1": [], "lb2": []}
    cut_cmd: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ebfb-") as tmp, Lab("ebfb") as lab:
        rig = build(lab, Path(tmp), {"lb1": FAST, "lb2": False})
        try:
            settle(rig)
            for n in range(runs * 2):
                name = "lb1" if n % 2 == 0 else "lb2"
                time.sleep(1.0)
                hold = " ".join(line.strip() for line in rig.router.birdc(
                    "show", "protocols", "all", f"edge_{name}_v4").splitlines()
                    if "Hold timer" in line or "Keepalive timer" in line)
                start = time.perf_counter()
                cut_cmd.append(rig.die(name) - start)  # port cut first, then the kill
                out[name].append(until_gone(rig, ADDRESS[name], start))
                print(f"  {name} ({'BFD 100 ms x 3' if name == 'lb1' else 'no BFD'}): "
                      f"{out[name][-1] * 1000:.0f} ms  [BIRD before the death: {hold}]",
                      flush=True)
                rig.revive(name)
                # skip BIRD's error wait (it doubles per failure): recovery is not measured
                time.sleep(0.5)
                rig.router.birdc("restart", f"edge_{name}_v4")
                settle(rig)
        finally:
            rig.ctl.close()
    print(f"  (the clock includes the port-down command: median "
          f"{statistics.median(cut_cmd) * 1000:.0f} ms until it returned)")
    return out


def stability(seconds: float, checks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ebfs-") as tmp, Lab("ebfs") as lab:
        rig = build(lab, Path(tmp), {"lb1": FAST}, checks=checks, check_interval="100ms")
        app = rig.apps["lb1"]
        # the router stands in for a separate box: its own CPU is not the appliance's,
        # so BIRD (all its threads, BFD's included) runs SCHED_RR here, out of the
        # busy loops' way, below the appliance's BFD child (RR 10) that it shares the
        # two cores with. The child raises itself; nothing else on the appliance does.
        rig.router.ns.run("chrt", "-a", "-r", "-p", "5", str(rig.router.proc.pid))
        try:
            wait(lambda: ADDRESS["lb1"] in rig.ctl.next_hops(f"{VIP}/32"), 90, "route via lb1")
            wait(lambda: (app.peer().get("bfd") or {}).get("state") == "up", 30, "BFD up")
            time.sleep(3)
            before = app.peer()["bfd"]["changes"]
            bird_before = rig.router.birdc("show", "bfd", "sessions")
            checks_before = _checks(app.metrics())
            child = (app.status() or {})["components"]["BfdRunner"]["child"]["pid"]
            cpu_before = _cpu_s(child)
            hogs = [app.ns.spawn([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
            late: list[float] = []
            down_seen = 0
            start = time.monotonic()
            try:
                while time.monotonic() - start < seconds:
                    time.sleep(1.0)
                    doc = app.status() or {}
                    detail = doc.get("components", {}).get("BfdRunner", {}).get(
                        "sessions", {}).get("r1", {}).get("detail", {})
                    if detail:
                        late.append(detail.get("max_tx_late_ms", 0.0))
                    if (app.peer().get("bfd") or {}).get("state") != "up":
                        down_seen += 1
            finally:
                for hog in hogs:
                    app.ns.stop(hog, sig=9)
            elapsed = time.monotonic() - start
            child_cpu = (_cpu_s(child) - cpu_before) / elapsed
            checks_after = _checks(app.metrics())
            after = app.peer()["bfd"]["changes"]
            bird_after = rig.router.birdc("show", "bfd", "sessions")
            reasons: dict[str, int] = {}
            for line in app.log_path.read_text().splitlines():
                if "bfd_session_down" in line:
                    why = re.search(r"reason=(\S+)", line)
                    key = why.group(1) if why else "?"
                    reasons[key] = reasons.get(key, 0) + 1
            return {"seconds": round(elapsed), "down_reasons": reasons,
                    "appliance_state_changes": after - before,
                    "down_samples": down_seen,
                    "bird_session_since_unchanged": _since(bird_before) == _since(bird_after),
                    "bird_bfd": bird_after.strip().splitlines()[-1],
                    "bfd_child_cpu_percent": round(child_cpu * 100, 2),
                    "sched": (app.status() or {})["components"]["BfdRunner"]["child"]["sched"],
                    "checks_per_s": round((checks_after - checks_before) / elapsed),
                    "max_tx_late_ms": max(late) if late else None,
                    "p50_of_per_second_max_late_ms": statistics.median(late) if late else None}
        finally:
            rig.ctl.close()
            if app.proc is not None:
                app.ns.stop(app.proc)


def _cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _checks(metrics: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("speaker_check_duration_seconds_count"):
            total += float(line.split()[-1])
    return total


def _since(text: str) -> list[str]:
    return [line.split()[3] for line in text.splitlines() if "192.0.2.11" in line]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 150.0
    checks = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    if runs > 0:
        print(f"failover, {runs} deaths per appliance:", flush=True)
        out = failover(runs)
        for name, label in (("lb1", "BFD 100 ms x 3"), ("lb2", "no BFD, hold 9 s")):
            vals = sorted(out[name])
            print(f"{label}: median {statistics.median(vals) * 1000:.0f} ms, "
                  f"min {vals[0] * 1000:.0f} ms, max {vals[-1] * 1000:.0f} ms (n={len(vals)})")
    if seconds > 0:
        print(f"stability, {seconds:.0f} s, {checks} TCP checks every 100 ms, "
              "2 busy loops:", flush=True)
        print(stability(seconds, checks))


if __name__ == "__main__":
    main()
