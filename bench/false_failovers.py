"""False failovers with the CPU saturated: edge-speaker vs keepalived, same run, same segment.

One bridge, four appliances: a1 (priority 150) and a2 (100) run `speaker run` with
VRRP at the advert interval under test; k1 (150) and k2 (100) run Debian's keepalived
(VRRPv3) at the same interval on another VRID. Nobody dies: every leadership change
on a backup (a2 gaining `front`, k2 entering MASTER) is a false failover. During the
run one busy loop per core (started and killed by PID, nice 0, like any other tenant)
saturates the CPU; a capture on the client's port records the masters' adverts, and
the longest gap between two adverts of a1 / k1 is printed.

    .venv/bin/python bench/false_failovers.py [--seconds 600] [--interval 0.05]
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "l2"))

from l2lab import Group, Segment, Vip, keepalived_conf, keepalived_states, start_keepalived

from speaker.lab.netns import Lab

OURS, THEIRS = "192.0.2.110", "192.0.2.111"
OUR_VRID, THEIR_VRID = 52, 62


def busy_loops(n: int) -> list[subprocess.Popen[bytes]]:
    """One CPU-bound process per core (a tenant that never sleeps)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def advert_gaps(capture: str, vrid: int) -> tuple[int, float]:
    """(adverts seen, longest gap in s) of one VRID's master in a tcpdump -tt capture."""
    times = [float(m.group(1)) for m in re.finditer(
        rf"^(\d+\.\d+) .*vrid {vrid}\b", capture, re.MULTILINE | re.IGNORECASE)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return len(times), max(gaps, default=float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--no-load", action="store_true", help="skip the busy loops")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="esf-bench-") as tmp, Lab("esf") as lab:
        seg = Segment(lab, Path(tmp), ["a1", "a2", "k1", "k2"])
        apps = seg.appliances
        for name, prio in (("a1", 150), ("a2", 100)):
            seg.configure(name, [Group("front", OUR_VRID, prio, preempt=True,
                                       advert_interval=args.interval)],
                          [Vip("web", OURS, "front")]).start()
        apps["a1"].wait_event("vip_owned", vip=OURS, timeout=30)
        apps["a2"].wait_event("ready", timeout=30)
        for name, prio in (("k1", 150), ("k2", 100)):
            start_keepalived(apps[name], keepalived_conf(name, THEIR_VRID, prio, [THEIRS],
                                                         interval=args.interval))
        time.sleep(3.0)
        apps["a2"].mark()
        print("measuring from", time.strftime("%H:%M:%S"), flush=True)
        ka_before = keepalived_states(apps["k2"]).count("MASTER")
        cap_path = Path(tmp) / "adverts.txt"
        with cap_path.open("w") as out:
            # the observer must not be starved by the load it watches: realtime, big buffer
            capture = seg.client.spawn(["chrt", "-f", "50", "tcpdump", "-B", "16384", "-l",
                                        "-tt", "-nni", "eth0", "vrrp"], stdout=out)
        load = [] if args.no_load else busy_loops(os.cpu_count() or 2)
        load1 = os.getloadavg()[0]
        try:
            time.sleep(args.seconds)
        finally:
            for proc in load:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            seg.client.stop(capture)
            # count before anything stops: a stopping master resigns (priority 0)
            gained = [e for e in apps["a2"].events()
                      if e.get("event") == "leader_gained" and e.get("group") == "front"]
            theirs = keepalived_states(apps["k2"]).count("MASTER") - ka_before
            load2 = os.getloadavg()[0]
            text = cap_path.read_text()
            if os.environ.get("ESF_KEEP"):
                keep = Path(os.environ["ESF_KEEP"])
                for name in ("a1", "a2"):
                    (keep / f"{name}.log").write_text(apps[name].log.read_text())
                (keep / "adverts.txt").write_text(text)
            for app in apps.values():
                for proc in list(app.extra):
                    app.ns.stop(proc, signal.SIGKILL)
                    app.extra.remove(proc)
                app.kill(signal.SIGTERM)
        for event in gained:
            print("a2 became leader:", " ".join(f"{k}={v}" for k, v in event.items()))
        ours = len(gained)
        our_seen, our_gap = advert_gaps(text, OUR_VRID)
        their_seen, their_gap = advert_gaps(text, THEIR_VRID)
    print(f"\nfalse failovers, {args.seconds:.0f} s, adverts every {args.interval * 1000:.0f} ms, "
          f"{len(load)} busy loops, load average {load1:.1f} -> {load2:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(f"edge-speaker: {ours} false failovers; {our_seen} adverts seen, "
          f"longest gap {our_gap * 1000:.1f} ms")
    print(f"keepalived:   {theirs} false failovers; {their_seen} adverts seen, "
          f"longest gap {their_gap * 1000:.1f} ms")


if __name__ == "__main__":
    main()
