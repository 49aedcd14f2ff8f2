"""The sysctls each forwarding mode needs, why, and how they are checked and set.

A table, one line of reason per entry (as seesaw's ``ncc/sysctl.go``), the only
one in the appliance: global IPVS/forwarding entries and the per-interface ARP/NDP
entries (``{iface}`` in the name) for every client interface and the devices it
sits on (the parent of an 802.1Q interface receives the same ARP untagged). The
appliance (``speaker.sysctls.SysctlGuard``) writes the entries the configured modes
need at start when ``dataplane.manage_sysctls`` is on, and checks them on every
resync, reporting each mismatch (``speaker status``, ``speaker_sysctl_mismatch``).
Reads and writes go through ``/proc/sys`` (a parameter, so tests use a temporary
directory).

Per-interface IPv4 ARP knobs combine as the kernel does: the effective value is
the maximum of ``conf/all`` and ``conf/IFACE``, and a stricter value is fine.
IPv6 needs no arp_ignore (Linux answers a solicitation only for addresses on the
receiving interface unless proxy_ndp is on), so the table keeps proxy_ndp off; an
interface without IPv6 is not a mismatch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Mode = Literal["nat", "dr", "tunnel", "l2", "ipv6", "sync", "sloppy_tcp", "sloppy_sctp"]
"""Forwarding methods in use, plus ``l2`` (VIPs answered by the L2 announcer),
``ipv6`` (IPv6 services present), ``sync`` (connection sync daemon configured) and
``sloppy_tcp``/``sloppy_sctp`` (mid-stream flows accepted, for ECMP pairs)."""


Combine = Literal["exact", "max", "or"]


@dataclass(frozen=True, slots=True)
class Sysctl:
    """One required setting: ``name`` (dotted; ``{iface}`` for a per-interface entry),
    ``value``, the modes that need it, why, and how the kernel combines a per-interface
    value with ``conf/all`` (``max``, ``or``; ``exact``: no combining)."""

    name: str
    value: str
    modes: frozenset[Mode]
    reason: str
    combine: Combine = "exact"
    interface: str | None = None
    """Set on the entries `required()` expands for one interface."""

    @property
    def per_interface(self) -> bool:
        return "{iface}" in self.name

    def path(self, root: Path) -> Path:
        return root.joinpath(*self.name.split("."))

    def for_interface(self, interface: str) -> Sysctl:
        """This per-interface entry for one interface (dots in VLAN names become '/')."""
        name = self.name.replace("{iface}", interface.replace(".", "/"))
        return Sysctl(name, self.value, self.modes, self.reason, self.combine, interface)

    def display_name(self) -> str:
        return self.name if self.interface is None else self.name.replace(
            self.interface.replace(".", "/"), self.interface)

    def all_scope(self) -> Sysctl:
        """The ``conf.all`` entry a per-interface one is combined with."""
        assert self.interface is not None  # noqa: S101 - only for expanded entries
        name = self.name.replace(self.interface.replace(".", "/"), "all")
        return Sysctl(name, self.value, self.modes, self.reason)


def _s(name: str, value: str, modes: Iterable[Mode], reason: str,
       combine: Combine = "exact") -> Sysctl:
    return Sysctl(name, value, frozenset(modes), reason, combine)


ALL: tuple[Mode, ...] = ("nat", "dr", "tunnel")
"""Every IPVS forwarding method (the net.ipv4.vs.* keys exist only with IPVS)."""
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
    _s("net.ipv4.conf.all.arp_ignore", "1", ["dr", "tunnel"],
       "answer ARP only for addresses on the receiving interface: not for VIPs on lo"),
    _s("net.ipv4.conf.all.arp_announce", "2", ["dr", "tunnel"],
       "never use a VIP as the ARP source address: the VIP's owner is the L2 announcer"),
    _s("net.ipv4.conf.{iface}.arp_ignore", "1", ["l2"],
       "answer ARP only for addresses on the receiving interface, never for VIPs on lo",
       "max"),
    _s("net.ipv4.conf.{iface}.arp_announce", "2", ["l2"],
       "never use a VIP on lo as the sender address of the kernel's own ARP requests", "max"),
    _s("net.ipv6.conf.{iface}.proxy_ndp", "0", ["l2"],
       "no proxy NDP: the kernel must not answer solicitations for addresses on lo", "or"),
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
        return (f"{self.sysctl.display_name()} is {self.actual!r}, want "
                f"{self.sysctl.value!r}: {self.sysctl.reason}")


def with_lower_devices(interfaces: Iterable[str],
                       sysfs: Path = Path("/sys/class/net")) -> list[str]:
    """`interfaces` plus the devices they sit on (the parent of an 802.1Q interface):
    the parent receives the same ARP untagged and must not answer for VIPs either."""
    out: list[str] = []
    todo = list(interfaces)
    while todo:
        name = todo.pop(0)
        if name in out:
            continue
        out.append(name)
        with contextlib.suppress(OSError):
            todo += sorted(p.name.removeprefix("lower_") for p in (sysfs / name).iterdir()
                           if p.name.startswith("lower_"))
    return out


def required(modes: Iterable[Mode], interfaces: Iterable[str] = ()) -> tuple[Sysctl, ...]:
    """The entries needed by any of ``modes``, in table order; per-interface entries
    expanded for each of ``interfaces``."""
    wanted = frozenset(modes)
    names = list(interfaces)
    out: list[Sysctl] = []
    for s in SYSCTLS:
        if not s.modes & wanted:
            continue
        out += [s.for_interface(i) for i in names] if s.per_interface else [s]
    return tuple(out)


def read(sysctl: Sysctl, root: Path = Path("/proc/sys")) -> str | None:
    try:
        return sysctl.path(root).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def effective(sysctl: Sysctl, root: Path = Path("/proc/sys")) -> str | None:
    """The value the kernel applies: a per-interface entry combined with conf/all."""
    own = read(sysctl, root)
    if sysctl.interface is None or sysctl.combine == "exact" or own is None:
        return own
    every = read(sysctl.all_scope(), root)
    if every is None:
        return own
    try:
        a, b = int(own), int(every)
    except ValueError:
        return own
    return str(max(a, b)) if sysctl.combine == "max" else str(int(bool(a or b)))


def _ok(sysctl: Sysctl, actual: str | None) -> bool:
    if actual is None:
        # an interface without IPv6 has nothing to answer: not a mismatch
        return sysctl.interface is not None and sysctl.name.startswith("net.ipv6.")
    if sysctl.combine == "max":
        try:
            return int(actual) >= int(sysctl.value)
        except ValueError:
            return False
    return actual == sysctl.value


def check(modes: Iterable[Mode], root: Path = Path("/proc/sys"),
          interfaces: Iterable[str] = ()) -> tuple[Mismatch, ...]:
    """Every required sysctl whose (effective) value differs from the table's."""
    out = []
    for sysctl in required(modes, interfaces):
        actual = effective(sysctl, root)
        if not _ok(sysctl, actual):
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
        own = read(mismatch.sysctl, root)
        stricter = (mismatch.sysctl.combine == "max" and own is not None
                    and _ok(mismatch.sysctl, own))
        try:
            if not stricter:
                mismatch.sysctl.path(root).write_text(mismatch.sysctl.value + "\n")
        except OSError:
            left.append(mismatch)
            continue
        actual = effective(mismatch.sysctl, root)
        if not _ok(mismatch.sysctl, actual):
            left.append(Mismatch(mismatch.sysctl, actual))
    return tuple(left)
