"""Kernel knobs that keep the kernel from answering ARP/NDP for VIPs on `lo`.

Every appliance has every VIP on `lo`; only the owner's responder may answer
for it. A table of sysctls, each with its reason, is set and then read back
per client-facing interface (the dataplane's own IPVS sysctls live in
dataplane/sysctl.py).

IPv4: the effective value of arp_ignore/arp_announce is the maximum of
`conf/all` and `conf/IFACE`, so setting the interface is enough when `all`
is lower, and `verify()` checks the maximum.

IPv6 needs no equivalent of arp_ignore: Linux answers a neighbour
solicitation only for addresses on the receiving interface (a global address
on `lo` is not answered on eth0) unless proxy_ndp is on, so the table keeps
proxy_ndp off and `verify()` reports if something turned it on.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from speaker.logs import event_log

LOG = event_log(__name__)
PROC = Path("/proc/sys/net")


@dataclass(frozen=True, slots=True)
class Knob:
    """One per-interface sysctl, its required value and why."""

    family: str
    name: str
    value: int
    combine: str
    """How the kernel merges conf/all with conf/IFACE: 'max', 'or' or 'iface'."""
    why: str


KNOBS: tuple[Knob, ...] = (
    Knob("ipv4", "arp_ignore", 1, "max",
         "answer ARP only for addresses on the receiving interface, never for VIPs on lo"),
    Knob("ipv4", "arp_announce", 2, "max",
         "never use a VIP on lo as the sender address of the kernel's own ARP requests"),
    Knob("ipv6", "proxy_ndp", 0, "or",
         "no proxy NDP: the kernel must not answer solicitations for addresses on lo"),
)


@dataclass(frozen=True, slots=True)
class Finding:
    """A knob whose effective value on an interface is not the required one."""

    interface: str
    knob: str
    want: int
    have: int | None


def with_lower_devices(interfaces: list[str], sysfs: Path = Path("/sys/class/net")) -> list[str]:
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


def _path(knob: Knob, scope: str, root: Path) -> Path:
    return root / knob.family / "conf" / scope / knob.name


def _read(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def effective(knob: Knob, interface: str, root: Path = PROC) -> int | None:
    """The value the kernel applies on `interface` (None: unreadable, e.g. no IPv6)."""
    iface = _read(_path(knob, interface, root))
    every = _read(_path(knob, "all", root))
    if iface is None or every is None:
        return iface
    if knob.combine == "max":
        return max(iface, every)
    if knob.combine == "or":
        return int(bool(iface or every))
    return iface


def verify(interfaces: list[str], root: Path = PROC) -> list[Finding]:
    """Every knob not at its required effective value, per interface (empty: all good)."""
    out: list[Finding] = []
    for interface in interfaces:
        for knob in KNOBS:
            have = effective(knob, interface, root)
            if knob.family == "ipv6" and have is None:
                continue  # IPv6 disabled on this interface: nothing to answer
            ok = have is not None and (have >= knob.value if knob.combine == "max"
                                       else have == knob.value)
            if not ok:
                out.append(Finding(interface, knob.name, knob.value, have))
    return out


def apply(interfaces: list[str], root: Path = PROC) -> list[Finding]:
    """Set the knobs on each interface, then return what is still wrong (e.g. `all`
    forces proxy_ndp on) so the caller can log and expose it."""
    for interface in interfaces:
        for knob in KNOBS:
            path = _path(knob, interface, root)
            current = _read(path)
            if current is None or current == knob.value:
                continue
            if knob.combine == "max" and current > knob.value:
                continue  # stricter than required (e.g. arp_ignore 2) is fine
            try:
                path.write_text(f"{knob.value}\n")
                LOG.info("sysctl_set", reason="l2_vip_on_lo", interface=interface,
                         knob=knob.name, value=knob.value, was=current)
            except OSError as exc:
                LOG.error("sysctl_set_failed", reason="os_error", interface=interface,
                          knob=knob.name, error=str(exc))
    findings = verify(interfaces, root)
    for f in findings:
        LOG.warning("sysctl_wrong", reason="kernel_may_answer_for_vip", interface=f.interface,
                    knob=f.knob, want=f.want, have=f.have)
    return findings
