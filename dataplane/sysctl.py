"""The sysctls each forwarding mode needs, why, and how they are checked and set.

A table, one line of reason per entry (as seesaw's ``ncc/sysctl.go``). The
appliance verifies the table at start and on every resync and reports each
mismatch (``speaker status``, logs with reason ``sysctl_mismatch``); it writes a
value only when the config allows it (``dataplane.manage_sysctls``) and only the
entries the configured modes need. Reads and writes go through ``/proc/sys``
(the root is a parameter so tests use a temporary directory).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Mode = Literal["nat", "dr", "tunnel", "l2", "ipv6", "sync", "sloppy_tcp", "sloppy_sctp"]
"""Forwarding methods in use, plus ``l2`` (VIPs answered by the L2 announcer),
``ipv6`` (IPv6 services present), ``sync`` (connection sync daemon configured) and
``sloppy_tcp``/``sloppy_sctp`` (mid-stream flows accepted, for ECMP pairs)."""


@dataclass(frozen=True, slots=True)
class Sysctl:
    """One required setting: ``name`` (dotted), ``value``, the modes that need it, why."""

    name: str
    value: str
    modes: frozenset[Mode]
    reason: str

    def path(self, root: Path) -> Path:
        return root.joinpath(*self.name.split("."))


def _s(name: str, value: str, modes: Iterable[Mode], reason: str) -> Sysctl:
    return Sysctl(name, value, frozenset(modes), reason)


ALL: tuple[Mode, ...] = ("nat", "dr", "tunnel", "l2")
SYSCTLS: tuple[Sysctl, ...] = (
    _s("net.ipv4.ip_forward", "1", ["nat"],
       "NAT replies from the backends are routed through the director to the client"),
    _s("net.ipv6.conf.all.forwarding", "1", ["ipv6"],
       "the same for IPv6 NAT services (only set when IPv6 services exist)"),
    _s("net.ipv4.vs.conntrack", "1", ["nat"],
       "keep netfilter conntrack entries for IPVS NAT flows so firewall rules see them"),
    _s("net.ipv4.vs.expire_nodest_conn", "1", ALL,
       "drop connections to a removed backend at once instead of blackholing them"),
    _s("net.ipv4.vs.expire_quiescent_template", "1", ALL,
       "persistence templates of a weight-0 backend expire: drained backends get no new clients"),
    _s("net.ipv4.vs.conn_reuse_mode", "1", ALL,
       "a reused client port after a backend change is rescheduled, not sent to the old one"),
    _s("net.ipv4.conf.all.arp_ignore", "1", ["l2", "dr", "tunnel"],
       "answer ARP only for addresses on the receiving interface: not for VIPs on lo"),
    _s("net.ipv4.conf.all.arp_announce", "2", ["l2", "dr", "tunnel"],
       "never use a VIP as the ARP source address: the VIP's owner is the L2 announcer"),
    _s("net.ipv4.conf.all.rp_filter", "0", ["tunnel"],
       "tunnelled replies and asymmetric DR paths fail strict reverse-path filtering"),
    _s("net.ipv4.vs.sync_version", "1", ["sync"],
       "sync protocol v1 (IPv6, persistence templates, firewall marks); both ends must agree"),
    _s("net.ipv4.vs.sloppy_tcp", "1", ["sloppy_tcp"],
       "schedule a TCP flow first seen mid-stream: a flow ECMP moved here keeps going (mh)"),
    _s("net.ipv4.vs.sloppy_sctp", "1", ["sloppy_sctp"],
       "the same for SCTP flows first seen without an INIT"),
)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A required sysctl whose current value differs (``None``: the key does not exist)."""

    sysctl: Sysctl
    actual: str | None

    def __str__(self) -> str:
        return (f"{self.sysctl.name} is {self.actual!r}, want {self.sysctl.value!r}: "
                f"{self.sysctl.reason}")


def required(modes: Iterable[Mode]) -> tuple[Sysctl, ...]:
    """The entries needed by any of ``modes``, in table order."""
    wanted = frozenset(modes)
    return tuple(s for s in SYSCTLS if s.modes & wanted)


def read(sysctl: Sysctl, root: Path = Path("/proc/sys")) -> str | None:
    try:
        return sysctl.path(root).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def check(modes: Iterable[Mode], root: Path = Path("/proc/sys")) -> tuple[Mismatch, ...]:
    """Every required sysctl whose value differs from the table's."""
    out = []
    for sysctl in required(modes):
        actual = read(sysctl, root)
        if actual != sysctl.value:
            out.append(Mismatch(sysctl, actual))
    return tuple(out)


def fix(mismatches: Iterable[Mismatch], allowed: bool,
        root: Path = Path("/proc/sys")) -> tuple[Mismatch, ...]:
    """Write the wanted values if ``allowed``; return what is still wrong afterwards.

    A key that does not exist (module not loaded, IPv6 disabled) is never
    created; it stays in the result.
    """
    left = []
    for mismatch in mismatches:
        if not allowed or mismatch.actual is None:
            left.append(mismatch)
            continue
        try:
            mismatch.sysctl.path(root).write_text(mismatch.sysctl.value + "\n")
        except OSError:
            left.append(mismatch)
            continue
        actual = read(mismatch.sysctl, root)
        if actual != mismatch.sysctl.value:
            left.append(Mismatch(mismatch.sysctl, actual))
    return tuple(left)
