"""Which IPVS services belong to edge-speaker: owned VIP ranges plus a state file.

The kernel's IPVS table has no owner field, so edge-speaker decides ownership
itself, and :func:`dataplane.ipvs.plan.plan_ipvs` never adds, edits or deletes a
service (or any of its dests) that is not owned. A service key is owned when

1. its VIP lies in one of the configured *owned VIP ranges* (for example the
   pool the appliance announces), or its firewall mark lies in the configured
   *owned fwmark range*; or
2. it is listed in the *state file* (default ``/var/lib/edge-speaker/ipvs-owned``),
   which records every service key edge-speaker has programmed, one per line
   (``tcp:203.0.113.10:80``, ``udp:[2001:db8::10]:53``, ``fwmark:7/ipv4``). The
   state file lets the appliance delete a service it created outside today's
   ranges (after the ranges shrank in a config change) and is rewritten
   atomically after each successful apply.

Anything else in the table (an operator's ``ipvsadm`` rule, kube-proxy's, a
keepalived virtual server) is foreign and is left alone, dests included.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path

from dataplane.ipvs.model import PROTOCOLS, ServiceKey

DEFAULT_STATE_FILE = Path("/var/lib/edge-speaker/ipvs-owned")
_KEY_RE = re.compile(r"^(?P<proto>[a-z]+):(?:\[(?P<v6>[^\]]+)\]|(?P<v4>[0-9.]+)):(?P<port>\d+)$")
_MARK_RE = re.compile(r"^fwmark:(?P<mark>\d+)/ipv(?P<family>[46])$")


def parse_service_key(text: str) -> ServiceKey:
    """Parse the ``str()`` form of a :class:`ServiceKey` back into a key."""
    text = text.strip()
    mark = _MARK_RE.match(text)
    if mark:
        return ServiceKey.of_fwmark(int(mark["mark"]), 4 if mark["family"] == "4" else 6)
    match = _KEY_RE.match(text)
    if not match or match["proto"] not in PROTOCOLS:
        raise ValueError(f"not a service key: {text!r}")
    address = ip_address(match["v6"] or match["v4"])
    return ServiceKey(match["proto"], address, int(match["port"]))


def read_state_file(path: Path) -> frozenset[ServiceKey]:
    """Keys recorded in the state file; a missing file records none."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return frozenset()
    return frozenset(parse_service_key(line) for line in lines if line.strip())


def write_state_file(path: Path, keys: Iterable[ServiceKey]) -> None:
    """Atomically replace the state file with ``keys`` (sorted, one per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    text = "".join(f"{k}\n" for k in sorted(keys, key=ServiceKey.sort_key))
    with tmp.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


@dataclass(frozen=True, slots=True)
class Ownership:
    """The ownership predicate: ``ownership(key)`` is True for edge-speaker's services."""

    vip_ranges: tuple[IPv4Network | IPv6Network, ...] = ()
    fwmarks: range = range(0)
    recorded: frozenset[ServiceKey] = field(default_factory=frozenset)

    def __call__(self, key: ServiceKey) -> bool:
        if key in self.recorded:
            return True
        if key.protocol == "fwmark":
            return key.fwmark in self.fwmarks
        return any(key.address in net for net in self.vip_ranges)

    def recording(self, keys: Iterable[ServiceKey]) -> Ownership:
        """A copy that also owns ``keys`` (after they were programmed)."""
        return Ownership(self.vip_ranges, self.fwmarks, self.recorded | frozenset(keys))
