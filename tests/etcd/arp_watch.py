"""Run in the client namespace: ask who has VIP every INTERVAL and log every reply.

    ip netns exec NS python arp_watch.py IFACE VIP SECONDS [INTERVAL]
prints one JSON object {"replies": [[monotonic_time, mac], ...], "sent": n}; stops early
when the file STOP (next to this script's output, argv[5]) appears. Frames are built
with struct (fast enough for a 10 ms cadence); the observer on the wire for the
"never two owners" claim of the etcd lab.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import sys
import time

ETH_P_ARP = 0x0806


def main() -> None:
    iface, vip, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.01
    stop_file = sys.argv[5] if len(sys.argv) > 5 else ""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    sock.bind((iface, ETH_P_ARP))
    mac = sock.getsockname()[4]
    with open(f"/sys/class/net/{iface}/address") as f:
        mac = bytes.fromhex(f.read().strip().replace(":", ""))
    src_ip = socket.inet_aton("192.0.2.50")
    target = socket.inet_aton(vip)
    frame = (b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
             + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + src_ip + b"\0" * 6 + target)
    replies: list[tuple[float, str]] = []
    sent = 0
    end = time.monotonic() + seconds
    next_send = time.monotonic()
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_send:
            sock.send(frame)
            sent += 1
            next_send = now + interval
            if stop_file and sent % 20 == 0 and os.path.exists(stop_file):
                break
        ready, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
        if ready:
            data = sock.recv(2048)
            if len(data) >= 42 and struct.unpack("!H", data[20:22])[0] == 2 \
                    and data[28:32] == target:
                replies.append((time.monotonic(), data[22:28].hex(":")))
    print(json.dumps({"replies": replies, "sent": sent}))


if __name__ == "__main__":
    main()
