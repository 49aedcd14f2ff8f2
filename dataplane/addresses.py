"""VIP addresses on the VIP interface (``lo``): list, add, remove, idempotently.

IPVS only sees packets addressed to a local address, so every VIP an appliance
serves is added to ``lo`` as a /32 (/128); ``arp_ignore``/``arp_announce`` (see
:mod:`dataplane.sysctl`) keep the kernel from answering ARP for it, the L2
announcer answers instead. Through pyroute2's rtnetlink ``IPRoute``.

Only *managed* addresses are listed and removed: those inside the configured
VIP ranges, as host routes (/32, /128). Loopback addresses (127.0.0.1, ::1) and
anything an operator put on ``lo`` outside the ranges are never touched.
Adding an address that is there, or removing one that is gone, is success.
"""

from __future__ import annotations

import errno
from collections.abc import Collection, Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from socket import AF_INET, AF_INET6
from typing import Any

IPAddress = IPv4Address | IPv6Address
IFA_F_NODAD = 0x02
_GONE = (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH)


class VipAddresses:
    """Implements ``speaker.seams.VipAddresses`` on one interface (blocking calls).

    ``ranges``: the managed VIP ranges; empty means every global-scope /32 or
    /128 on the interface is managed. ``netns``: a named network namespace
    (tests), ``None`` for the current one.
    """

    def __init__(self, interface: str = "lo",
                 ranges: Iterable[IPv4Network | IPv6Network] = (),
                 netns: str | None = None) -> None:
        from pyroute2 import IPRoute

        self.interface = interface
        self.ranges = tuple(ranges)
        self._ipr: Any = IPRoute(netns=netns) if netns else IPRoute()
        links = self._ipr.link_lookup(ifname=interface)
        if not links:
            self._ipr.close()
            raise LookupError(f"no interface {interface!r}")
        self.index: int = links[0]

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> VipAddresses:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def managed(self, address: IPAddress) -> bool:
        if address.is_loopback or address.is_link_local or address.is_unspecified:
            return False
        if not self.ranges:
            return True
        return any(address in net for net in self.ranges)

    def set_ranges(self, ranges: Iterable[IPv4Network | IPv6Network]) -> None:
        """Manage the addresses inside ``ranges`` from now on (a reload changed them)."""
        self.ranges = tuple(ranges)

    def list(self) -> frozenset[IPAddress]:
        """Managed VIPs present on the interface."""
        found = set()
        for msg in self._ipr.get_addr(index=self.index):
            full = 32 if msg["family"] == AF_INET else 128
            if msg["prefixlen"] != full:
                continue
            address = ip_address(msg.get_attr("IFA_ADDRESS"))
            if self.managed(address):
                found.add(address)
        return frozenset(found)

    def add(self, address: IPAddress) -> None:
        """Add ``address``/32 (/128); already present is success."""
        from pyroute2.netlink.exceptions import NetlinkError

        family = AF_INET if address.version == 4 else AF_INET6
        extra = {} if family == AF_INET else {"flags": IFA_F_NODAD}
        try:
            self._ipr.addr("add", index=self.index, address=str(address),
                           prefixlen=address.max_prefixlen, family=family, **extra)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise

    def remove(self, address: IPAddress) -> None:
        """Remove ``address``; already absent is success. Unmanaged ones are refused."""
        from pyroute2.netlink.exceptions import NetlinkError

        if not self.managed(address):
            raise ValueError(f"{address} is not a managed VIP; refusing to remove it")
        family = AF_INET if address.version == 4 else AF_INET6
        try:
            self._ipr.addr("del", index=self.index, address=str(address),
                           prefixlen=address.max_prefixlen, family=family)
        except NetlinkError as exc:
            if exc.code not in _GONE:
                raise

    def set(self, vips: Collection[IPAddress]) -> tuple[tuple[IPAddress, ...], ...]:
        """Make the managed VIPs exactly ``vips``; returns (added, removed)."""
        present = self.list()
        added = tuple(sorted((a for a in vips if a not in present), key=_order))
        removed = tuple(sorted((a for a in present if a not in vips), key=_order))
        for address in added:
            self.add(address)
        for address in removed:
            self.remove(address)
        return added, removed


def _order(address: IPAddress) -> tuple[int, int]:
    return (address.version, int(address))
