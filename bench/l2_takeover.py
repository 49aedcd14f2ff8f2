"""Takeover latency: `L2Responder.set()` to the first gratuitous ARP / NA at the client.

A process in the appliance namespace builds an L2Responder and alternates
set([vip]) / set([]) N times, noting CLOCK_REALTIME just before each takeover;
a capture process at the client records the kernel receive timestamp
(SO_TIMESTAMPNS, same clock) of each first GARP request / unsolicited NA.

    .venv/bin/python bench/l2_takeover.py [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from ipaddress import ip_address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "l2"))

from l2lab import Group, Segment, Vip

from speaker.lab.netns import Lab

VIPS = ("192.0.2.100", "2001:db8::100")
ETH_P_ALL, SO_TIMESTAMPNS, PACKET_OUTGOING = 0x0003, 35, 4


def owner(config_path: str, runs: int) -> None:
    """In the appliance namespace: take over and release `runs` times per VIP."""
    from speaker.config import load_config
    from speaker.l2 import L2Options, L2Responder
    from speaker.model import L2Vip

    responder = L2Responder(load_config(Path(config_path)), lambda _e: None,
                            options=L2Options(announce_count=1, probe_interval=0))
    marks: dict[str, list[int]] = {v: [] for v in VIPS}
    for _ in range(runs):
        for vip in VIPS:
            item = L2Vip(ip_address(vip), ("eth0",), "default")
            marks[vip].append(time.time_ns())
            responder.apply([item])  # the body of `await set()`, without a loop around it
            time.sleep(0.02)
            responder.apply([])
            time.sleep(0.02)
    print(json.dumps(marks))


def capture(seconds: float) -> None:
    """At the client: kernel timestamps of GARP requests and unsolicited NAs per VIP."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind(("eth0", ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.settimeout(0.2)
    seen: dict[str, list[int]] = {v: [] for v in VIPS}
    v4, v6 = ip_address(VIPS[0]).packed, ip_address(VIPS[1]).packed
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, anc, _flags, addr = sock.recvmsg(256, 64)
        except TimeoutError:
            continue
        if addr[2] == PACKET_OUTGOING or not anc:
            continue
        sec, nsec = struct.unpack("ll", anc[0][2][:16])
        stamp = sec * 1_000_000_000 + nsec
        if data[12:14] == b"\x08\x06" and data[21] == 1 and data[28:32] == data[38:42] == v4:
            seen[VIPS[0]].append(stamp)
        elif (data[12:14] == b"\x86\xdd" and len(data) >= 78 and data[54] == 136
              and data[62:78] == v6):
            seen[VIPS[1]].append(stamp)
    print(json.dumps(seen), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--owner", help=argparse.SUPPRESS)
    parser.add_argument("--capture", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.owner:
        owner(args.owner, args.runs)
        return
    if args.capture:
        capture(args.capture)
        return
    with tempfile.TemporaryDirectory(prefix="esl-bench-") as tmp, Lab("esl") as lab:
        seg = Segment(lab, Path(tmp), ["a1"])
        app = seg.configure("a1", [Group("default", 1, 100)],
                            [Vip("web", VIPS[0], "default"), Vip("web6", VIPS[1], "default")],
                            engine="single")
        seconds = args.runs * 0.1 + 15
        cap = seg.client.spawn([sys.executable, __file__, "--capture", str(seconds)],
                               stdout=subprocess.PIPE, stderr=None)
        assert cap.stdout is not None
        cap.stdout.readline()
        out = app.ns.run(sys.executable, __file__, "--owner", str(app.config), "--runs",
                         str(args.runs), timeout=seconds)
        marks = json.loads(out.stdout)
        seen = json.loads(cap.stdout.readline())
        cap.wait(30)
    print(f"Takeover: set() -> first GARP request / unsolicited NA at the client, "
          f"{args.runs} takeovers per family, {time.strftime('%Y-%m-%d')}")
    for vip in VIPS:
        frames = sorted(seen[vip])
        lat = []
        for t0 in marks[vip]:
            first = next((t for t in frames if t >= t0), None)
            if first is not None and first - t0 < 1_000_000_000:
                lat.append((first - t0) / 1e6)
        lat.sort()
        print(f"{vip:16} n={len(lat)} p50={statistics.median(lat):.3f} ms "
              f"p99={lat[int(0.99 * (len(lat) - 1))]:.3f} ms max={lat[-1]:.3f} ms "
              f"(goal: first frame within 10 ms)")


if __name__ == "__main__":
    main()
