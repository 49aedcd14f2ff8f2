"""One AF_PACKET socket on one interface: receive filtered frames, send frames.

The edge of the L2 announcer that touches the kernel. `PacketPort` is what
the responder uses in production; unit tests give the responder a fake with
the same methods (`Port` protocol).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from speaker.l2 import bpf
from speaker.l2.frames import mac_bytes

ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33
RCVBUF = 4 << 20
"""Receive buffer: ~5,000 queued requests, i.e. ~1 s of a 5,000/s ARP storm."""
RECV_BATCH = 256
"""Frames read per readiness callback before yielding to the event loop."""


class Port(Protocol):
    """What the responder needs from an interface."""

    name: str
    mac: bytes

    def fileno(self) -> int:
        """File descriptor to watch for readability (-1: nothing to watch)."""
        ...

    def set_filter(self, prog: list[bpf.Insn]) -> None:
        """Replace the receive filter."""
        ...

    def send(self, frame: bytes) -> None:
        """Send one complete Ethernet frame; raises OSError on failure."""
        ...

    def receive(self) -> Iterator[bytes]:
        """Frames waiting now (non-blocking, at most RECV_BATCH)."""
        ...

    def close(self) -> None:
        """Release the socket."""
        ...

    def stale(self) -> bool:
        """True if the interface went away or was re-created (the socket is dead)."""
        ...


def interface_mac(name: str) -> bytes:
    """Hardware address of interface `name` (from sysfs, in the caller's namespace)."""
    return mac_bytes(Path(f"/sys/class/net/{name}/address").read_text().strip())


class PacketPort:
    """AF_PACKET raw socket bound to one interface, non-blocking."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mac = interface_mac(name)
        self.ifindex = socket.if_nametoindex(name)
        self.filter_len = 0
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            # Drop everything until the real filter is attached, then bind.
            bpf.attach(sock, [bpf.DROP])
            # Room for bursts while the event loop is busy elsewhere (root: FORCE).
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((name, ETH_P_ALL))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self._sock.fileno()

    def set_filter(self, prog: list[bpf.Insn]) -> None:
        """Attach `prog` (atomic replacement of the previous filter)."""
        bpf.attach(self._sock, prog)
        self.filter_len = len(prog)

    def send(self, frame: bytes) -> None:
        """Send one frame on the interface."""
        self._sock.send(frame)

    def receive(self) -> Iterator[bytes]:
        """Drain what is queued now."""
        recv = self._sock.recv
        for _ in range(RECV_BATCH):
            try:
                yield recv(bpf.SNAPLEN)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ENETDOWN once when the link goes down: the socket stays usable

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def stale(self) -> bool:
        """The interface is gone, re-created (new ifindex) or has a new MAC."""
        try:
            return (socket.if_nametoindex(self.name) != self.ifindex
                    or interface_mac(self.name) != self.mac)
        except OSError:
            return True
