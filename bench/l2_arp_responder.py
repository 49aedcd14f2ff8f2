"""ARP responder latency and loss at a fixed request rate, ours vs the kernel, same run.

Topology: client and one appliance on a bridge. The appliance runs `speaker run`
(engine single) and owns VIP 192.0.2.100 (on lo; our responder answers); the
kernel answers for the appliance's own 192.0.2.11 on eth0. The client sends
ARP requests at RATE/s from a raw socket, alternating phases (ours, kernel,
ours, kernel); each request carries a sequence number in its sender MAC, so
the reply (sent to that MAC; the client listens promiscuously) is matched
exactly. Latency = kernel receive timestamp of the reply minus the kernel
timestamp of the request leaving the client (both SO_TIMESTAMPNS on one
packet socket).

    .venv/bin/python bench/l2_arp_responder.py [--rate 5000] [--seconds 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "l2"))

from l2lab import Group, Segment, Vip

from speaker.lab.netns import Lab

ETH_P_ARP = 0x0806
ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC = 1, 1
SOL_PACKET = 263
VIP, IFADDR = "192.0.2.100", "192.0.2.11"
CLIENT_IP = "192.0.2.50"


def request(seq: int, target: str) -> bytes:
    sha = b"\x02\xee" + struct.pack("!I", seq)
    return (b"\xff" * 6 + sha + struct.pack("!H", ETH_P_ARP)
            + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + sha
            + socket.inet_aton(CLIENT_IP) + b"\x00" * 6 + socket.inet_aton(target)
            + b"\x00" * 18)


def _receiver(ifname: str, duration: float, ready: Connection, out: Connection) -> None:
    """Child process: timestamp every request leaving and every reply arriving."""
    # ETH_P_ALL: only "all protocols" taps see the frames this host sends.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
    mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), PACKET_MR_PROMISC, 0, b"")
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
    sock.settimeout(0.2)
    sent_at: dict[int, int] = {}
    got_at: dict[int, int] = {}
    ready.send(True)
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        try:
            data, anc, _flags, addr = sock.recvmsg(128, 64)
        except TimeoutError:
            continue
        if len(data) < 42 or data[12:14] != b"\x08\x06" or not anc:
            continue
        sec, nsec = struct.unpack("ll", anc[0][2][:16])
        stamp = sec * 1_000_000_000 + nsec
        op = data[21]
        if op == 1 and addr[2] == PACKET_OUTGOING and data[6:8] == b"\x02\xee":
            sent_at[struct.unpack_from("!I", data, 8)[0]] = stamp
        elif op == 2 and data[0:2] == b"\x02\xee":
            got_at.setdefault(struct.unpack_from("!I", data, 2)[0], stamp)
    _packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    out.send((sent_at, got_at, drops))
    sock.close()


def measure(ifname: str, target: str, rate: int, seconds: float) -> dict[str, float]:
    """Send `rate` ARP requests/s for `seconds` to `target`; runs in the client namespace.
    The receiver is a separate process so the paced sender never starves it."""
    ctx = multiprocessing.get_context("fork")
    ready_r, ready_w = ctx.Pipe(duplex=False)
    out_r, out_w = ctx.Pipe(duplex=False)
    rx = ctx.Process(target=_receiver, args=(ifname, seconds + 1.0, ready_w, out_w))
    rx.start()
    ready_r.recv()
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    tx.bind((ifname, ETH_P_ARP))
    total = int(rate * seconds)
    frames = [request(seq, target) for seq in range(total)]
    period = 1.0 / rate
    start = time.perf_counter()
    for seq, frame in enumerate(frames):
        due = start + seq * period
        while (now := time.perf_counter()) < due:
            if due - now > 0.002:
                time.sleep(0.001)
        tx.send(frame)
    elapsed = time.perf_counter() - start
    sent_at, got_at, drops = out_r.recv()
    rx.join()
    tx.close()
    lat = sorted((got_at[s] - sent_at[s]) / 1e6 for s in got_at if s in sent_at)
    seen = len(sent_at)
    return {"sent": total, "seen_sent": seen, "answered": len(got_at),
            "loss": 1 - len(got_at) / total, "capture_drops": drops,
            "rate": total / elapsed, "p50_ms": statistics.median(lat) if lat else float("nan"),
            "p99_ms": lat[int(0.99 * (len(lat) - 1))] if lat else float("nan"),
            "max_ms": lat[-1] if lat else float("nan")}


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child mode, in the client ns
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure("eth0", args.measure, args.rate, args.seconds)))
        return
    with tempfile.TemporaryDirectory(prefix="esl-bench-") as tmp, Lab("esl") as lab:
        seg = Segment(lab, Path(tmp), ["a1"])
        app = seg.configure("a1", [Group("default", 1, 100)], [Vip("web", VIP, "default")],
                            engine="single")
        app.start()
        app.wait_event("vip_owned", vip=VIP, timeout=20)
        results: dict[str, list[dict[str, float]]] = {"ours": [], "kernel": []}
        assert app.proc is not None  # `ip netns exec` execs: this PID is `speaker run`
        for _ in range(args.rounds):
            for name, target in (("ours", VIP), ("kernel", IFADDR)):
                cpu_before = cpu_seconds(app.proc.pid)
                out = seg.client.run(sys.executable, __file__, "--measure", target, "--rate",
                                     str(args.rate), "--seconds", str(args.seconds),
                                     timeout=args.seconds * 4 + 30)
                row = json.loads(out.stdout)
                row["speaker_cpu_us_per_request"] = (
                    (cpu_seconds(app.proc.pid) - cpu_before) / row["sent"] * 1e6)
                results[name].append(row)
        status = app.status()["components"]["L2Responder"]
        print(f"ARP responder bench: {args.rate}/s, {args.seconds}s x {args.rounds} rounds "
              f"per responder, {time.strftime('%Y-%m-%d')}")
        print(f"{'responder':10} {'sent':>7} {'answered':>9} {'loss':>7} {'cap.drop':>8} "
              f"{'rate/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'speaker µs/req':>14}")
        for name, rows in results.items():
            for r in rows:
                print(f"{name:10} {r['sent']:7.0f} {r['answered']:9.0f} {r['loss']:7.2%} "
                      f"{r['capture_drops']:8.0f} {r['rate']:8.0f} {r['p50_ms']:8.3f} "
                      f"{r['p99_ms']:8.3f} {r['max_ms']:8.3f} "
                      f"{r['speaker_cpu_us_per_request']:14.1f}")
        print(f"responder status: owned={status['owned']}")


if __name__ == "__main__":
    main()
