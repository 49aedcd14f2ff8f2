"""Why a BGP session does not come up, in words an operator can act on.

ExaBGP reports nothing while its TCP connect hangs, and a wrong TCP-MD5
password looks exactly like that: Linux drops segments whose MD5 signature is
wrong or missing without an answer. So the speaker looks at the kernel's
sockets in ExaBGP's network namespace (`/proc/PID/net/tcp{,6}`; works across
namespaces) and explains a connect stuck in SYN-SENT. Parsing and the verdict
are pure; only `read_sockets()` touches /proc.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from speaker.model import IPAddress

BGP_PORT = 179
_STATES = {"01": "established", "02": "syn_sent", "03": "syn_recv", "06": "time_wait",
           "07": "close", "08": "close_wait", "0A": "listen"}


@dataclass(frozen=True, slots=True)
class Socket:
    """One TCP socket from /proc/net/tcp{,6}."""

    remote: IPAddress
    remote_port: int
    state: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """Stable reason code plus a sentence for `speaker status`."""

    reason: str
    detail: str


def _address(hexaddr: str) -> IPAddress:
    raw = bytes.fromhex(hexaddr)
    # The kernel prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return IPv4Address(words) if len(words) == 4 else IPv6Address(words)


def parse_proc_tcp(text: str) -> list[Socket]:
    """Sockets listed in the text of /proc/net/tcp or /proc/net/tcp6."""
    out: list[Socket] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        host, _, port = fields[2].partition(":")
        try:
            out.append(Socket(_address(host), int(port, 16), _STATES.get(fields[3], fields[3])))
        except ValueError:
            continue
    return out


def read_sockets(pid: int) -> list[Socket]:
    """TCP sockets in the network namespace of process `pid` (empty if gone)."""
    out: list[Socket] = []
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            out += parse_proc_tcp(Path(f"/proc/{pid}/net/{name}").read_text())
    return out


def explain(peer: IPAddress, md5: bool, sockets: list[Socket]) -> Verdict | None:
    """A verdict when the connect to `peer` hangs in SYN-SENT; None otherwise."""
    if not any(s.remote == peer and s.remote_port == BGP_PORT and s.state == "syn_sent"
               for s in sockets):
        return None
    if md5:
        return Verdict("tcp_md5_mismatch_suspected",
                       "TCP connect unanswered while a TCP-MD5 password is set: the router "
                       "drops segments whose MD5 signature does not match; check that both "
                       "sides use the same password (or that the router is reachable)")
    return Verdict("tcp_connect_unanswered",
                   "TCP connect to port 179 unanswered: router unreachable, filtered, or it "
                   "expects a TCP-MD5 password that is not configured here")
