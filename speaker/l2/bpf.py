"""Classic BPF socket filter: let through only ARP/NDP that concerns owned VIPs.

`program(v4, v6)` is pure and returns the instructions; `attach()` installs
them on an AF_PACKET socket (SO_ATTACH_FILTER replaces the previous filter
atomically, so the responder re-attaches whenever the owned set changes).

What passes, for frames received (not sent) without a stripped VLAN tag:
- ARP whose target or sender protocol address is an owned IPv4 VIP (requests
  to answer; replies and gratuitous ARP from another owner, for conflict
  detection);
- ICMPv6 neighbour solicitations and advertisements whose target is an owned
  IPv6 VIP.
Every jump is short (inline returns), so the 8-bit jump offsets of classic
BPF never overflow; beyond MAX_INSNS the filter lets every ARP/NS/NA through
and the responder's own lookup does the selection.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from collections.abc import Collection
from ipaddress import IPv4Address, IPv6Address

from speaker.l2.frames import ETH_P_ARP, ETH_P_IPV6, ICMP6_NA, ICMP6_NS, IPPROTO_ICMPV6

Insn = tuple[int, int, int, int]
"""(code, jt, jf, k) of one classic BPF instruction."""

LD_W, LD_H, LD_B = 0x20, 0x28, 0x30  # BPF_LD | size | BPF_ABS
JEQ, JA, RET = 0x15, 0x05, 0x06  # BPF_JMP|BPF_JEQ|BPF_K, BPF_JMP|BPF_JA, BPF_RET|BPF_K
SKF_AD_OFF = 0xFFFFF000  # -0x1000 as u32: ancillary data loads
SKF_AD_PKTTYPE = 4
SKF_AD_VLAN_TAG_PRESENT = 48
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
MAX_INSNS = 4096
SNAPLEN = 256
ACCEPT: Insn = (RET, 0, 0, SNAPLEN)
DROP: Insn = (RET, 0, 0, 0)


def _arp_section(v4: Collection[IPv4Address], limit: bool) -> list[Insn]:
    out: list[Insn] = []
    if limit:
        return [ACCEPT]
    for offset in (38, 28):  # target protocol address, then sender protocol address
        out.append((LD_W, 0, 0, offset))
        for vip in sorted(v4):
            out += [(JEQ, 0, 1, int(vip)), ACCEPT]
    out.append(DROP)
    return out


def _ndp_section(v6: Collection[IPv6Address], limit: bool) -> list[Insn]:
    out: list[Insn] = [
        (LD_H, 0, 0, 12), (JEQ, 1, 0, ETH_P_IPV6), DROP,
        (LD_B, 0, 0, 20), (JEQ, 1, 0, IPPROTO_ICMPV6), DROP,
        (LD_B, 0, 0, 54), (JEQ, 2, 0, ICMP6_NS), (JEQ, 1, 0, ICMP6_NA), DROP,
    ]
    if limit:
        return [*out, ACCEPT]
    for vip in sorted(v6):
        words = struct.unpack("!4I", vip.packed)
        for i, word in enumerate(words):
            skip = 7 - 2 * i  # to the next VIP's block
            out += [(LD_W, 0, 0, 62 + 4 * i), (JEQ, 0, skip, word)]
        out.append(ACCEPT)
    out.append(DROP)
    return out


def program(v4: Collection[IPv4Address], v6: Collection[IPv6Address]) -> list[Insn]:
    """The filter for these owned VIPs (pure; deterministic for equal sets)."""
    head: list[Insn] = [
        (LD_W, 0, 0, SKF_AD_OFF + SKF_AD_PKTTYPE), (JEQ, 0, 1, PACKET_OUTGOING), DROP,
        (LD_W, 0, 0, SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT), (JEQ, 1, 0, 0), DROP,
        (LD_H, 0, 0, 12), (JEQ, 0, 1, ETH_P_ARP),
    ]
    size = len(head) + 2 + 4 * len(v4) + 3 + 11 + 9 * len(v6) + 1
    limit = size > MAX_INSNS
    arp = _arp_section(v4, limit)
    ndp = _ndp_section(v6, limit)
    # After JEQ ETH_P_ARP: true falls into a jump to the ARP part, false jumps over it.
    return [*head, (JA, 0, 0, len(ndp)), *ndp, *arp]


def match(prog: list[Insn], frame: bytes, outgoing: bool = False, vlan: bool = False) -> bool:
    """Interpret `prog` on `frame` (for tests and for checking the program's logic)."""
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        if code == RET:
            return k > 0
        if code in (LD_W, LD_H, LD_B):
            if k == SKF_AD_OFF + SKF_AD_PKTTYPE:
                acc = PACKET_OUTGOING if outgoing else 0
            elif k == SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT:
                acc = int(vlan)
            else:
                size = {LD_W: 4, LD_H: 2, LD_B: 1}[code]
                if k + size > len(frame):
                    return False
                acc = int.from_bytes(frame[k:k + size], "big")
            pc += 1
        elif code == JEQ:
            pc += 1 + (jt if acc == k else jf)
        elif code == JA:
            pc += 1 + k
        else:
            raise ValueError(f"unknown BPF opcode {code:#x}")


def attach(sock: socket.socket, prog: list[Insn]) -> None:
    """Install `prog` on `sock` (replacing any previous filter)."""
    raw = b"".join(struct.pack("HBBI", *insn) for insn in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
