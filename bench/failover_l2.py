"""L2 failover as a client sees it: edge-speaker `fast` vs keepalived, same run, same segment.

One bridge, one client, four appliances:
- a1, a2: `speaker run`, VRRP preset fast (50 ms adverts), VIP 192.0.2.100;
- k1, k2: Debian's keepalived (VRRPv3), two instances: advert_int of our fast preset for VIP
  192.0.2.101 (same interval as ours) and advert_int 1 (keepalived's default)
  for VIP 192.0.2.102.
Preemption is off everywhere, so each run kills whichever appliance is master.
A drill is an appliance death: cut its switch port AND kill its processes
(DESIGN.md: kill -9 alone measures nothing, the old kernel keeps answering).
The client pings each VIP every 10 ms; the figure is the longest gap between
two answers. Runs alternate ours / keepalived.

    .venv/bin/python bench/failover_l2.py [--runs 20]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "l2"))

from l2lab import Appliance, Group, Pinger, Segment, Vip, keepalived_states, start_keepalived

from speaker.config.election import ADVERT_INTERVAL_S
from speaker.lab.netns import Lab

OURS, KA_FAST, KA_DEFAULT = "192.0.2.100", "192.0.2.101", "192.0.2.102"
KA_PRIORITY = {"k1": 150, "k2": 100}


def ka_conf(name: str, priority: int, interval: float) -> str:
    def instance(label: str, vrid: int, interval: float, vip: str) -> str:
        return (f"vrrp_instance {label} {{\n  state BACKUP\n  nopreempt\n  interface eth0\n"
                f"  virtual_router_id {vrid}\n  priority {priority}\n  advert_int {interval}\n"
                f"  virtual_ipaddress {{\n    {vip}/32 dev eth0\n  }}\n}}\n")
    return (f"global_defs {{\n  router_id {name}\n  vrrp_version 3\n}}\n"
            + instance("fast", 61, interval, KA_FAST) + instance("default", 71, 1, KA_DEFAULT))


def kill_keepalived(app: Appliance) -> None:
    """keepalived forks a VRRP child: end it by its pid file, then the parent we started."""
    pidfile = app.workdir / "ka-vrrp.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        pidfile.unlink(missing_ok=True)
    for proc in list(app.extra):
        app.ns.stop(proc, signal.SIGKILL)
        app.extra.remove(proc)


def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def summary(name: str, gaps: list[float]) -> str:
    s = sorted(gaps)
    p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
    return (f"{name:28} runs={len(s):3d} median={statistics.median(s):.3f}s "
            f"p99={p99:.3f}s min={s[0]:.3f}s max={s[-1]:.3f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--interval", type=float, default=None,
                        help="advert interval for ours and the fast keepalived instance "
                             "(default: our preset fast)")
    args = parser.parse_args()
    interval = args.interval or ADVERT_INTERVAL_S["fast"]
    ours_label = (f"edge-speaker advert {interval} s" if args.interval
                  else f"edge-speaker fast ({interval} s)")
    ka_label = f"keepalived advert {interval} s"
    gaps: dict[str, list[float]] = {ours_label: [], ka_label: [],
                                    "keepalived default (1 s)": []}
    local: list[float] = []
    with tempfile.TemporaryDirectory(prefix="esl-bench-") as tmp, Lab("esl") as lab:
        seg = Segment(lab, Path(tmp), ["a1", "a2", "k1", "k2"])
        apps = seg.appliances
        for name, prio in (("a1", 150), ("a2", 100)):
            seg.configure(name, [Group("front", 51, prio, preempt=False,
                                       advert_interval=args.interval)],
                          [Vip("web", OURS, "front")]).start()
            if name == "a1":
                apps["a1"].wait_event("vip_owned", vip=OURS, timeout=20)
        apps["a2"].wait_event("ready", timeout=20)
        for name, prio in KA_PRIORITY.items():
            start_keepalived(apps[name], ka_conf(name, prio, interval))
            if name == "k1":
                wait_for(lambda: keepalived_states(apps["k1"]).count("MASTER") >= 2, 10)
        time.sleep(1.0)
        ours_master, ka_master = apps["a1"], apps["k1"]
        for vip in (OURS, KA_FAST, KA_DEFAULT):
            seg.prime(vip)
        for run in range(args.runs):
            # --- ours ---
            other = apps["a2"] if ours_master is apps["a1"] else apps["a1"]
            other.mark()
            pinger = Pinger(seg, OURS)
            time.sleep(0.5)
            seg.death(ours_master)
            ok = wait_for(lambda o=other: seg.neigh_mac(OURS) == o.mac, 10)
            time.sleep(0.3)
            gap = Pinger.longest_gap(pinger.stop())
            gaps[ours_label].append(gap)
            event = other.wait_event("leader_gained", group="front")
            local.append(float(event["failover_s"]))
            seg.revive(ours_master)
            ours_master.wait_event("ready", timeout=20)
            time.sleep(0.5)
            ours_master = other
            # --- keepalived, both intervals at once ---
            kother = apps["k2"] if ka_master is apps["k1"] else apps["k1"]
            masters_before = keepalived_states(kother).count("MASTER")
            p_fast, p_default = Pinger(seg, KA_FAST), Pinger(seg, KA_DEFAULT)
            time.sleep(0.5)
            lab.port_down(seg.switch, ka_master.port)
            kill_keepalived(ka_master)
            kok = wait_for(lambda k=kother: seg.neigh_mac(KA_FAST) == k.mac
                           and seg.neigh_mac(KA_DEFAULT) == k.mac, 15)
            time.sleep(0.3)
            gaps[ka_label].append(Pinger.longest_gap(p_fast.stop()))
            gaps["keepalived default (1 s)"].append(Pinger.longest_gap(p_default.stop()))
            for vip in (KA_FAST, KA_DEFAULT):  # as after a reboot: no VIP left behind
                ka_master.ns.run("ip", "addr", "del", f"{vip}/32", "dev", "eth0", check=False)
            lab.port_up(seg.switch, ka_master.port)
            short = ka_master.name.split("-", 1)[1]
            start_keepalived(ka_master, ka_conf(short, KA_PRIORITY[short], interval))
            wait_for(lambda k=kother, n=masters_before: keepalived_states(k).count("MASTER")
                     >= n + 2, 5)
            time.sleep(1.5)
            ka_master = kother
            print(f"run {run + 1:2d}: ours {gaps[ours_label][-1]:.3f}s "
                  f"(local {local[-1]:.3f}s{'' if ok else ', NEIGH NOT MOVED'})  "
                  f"keepalived {interval}s {gaps[ka_label][-1]:.3f}s  "
                  f"keepalived 1s {gaps['keepalived default (1 s)'][-1]:.3f}s"
                  f"{'' if kok else ' (KA NEIGH NOT MOVED)'}", flush=True)
    print(f"\nL2 failover after appliance death (port cut + kill), client ping every 10 ms, "
          f"{time.strftime('%Y-%m-%d')}")
    for name, values in gaps.items():
        print(summary(name, values))
    print(summary("ours, local takeover time", local))


if __name__ == "__main__":
    main()
