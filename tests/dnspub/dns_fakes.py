"""An in-memory RFC 2136 zone for unit tests: prerequisites are enforced as a server does."""

from __future__ import annotations

from collections import defaultdict
from ipaddress import ip_address

from speaker.dns.client import DnsConflictError
from speaker.dns.registry import NameState, Update, registry_name


class FakeZone:
    """Record sets keyed by (owner name, type); `apply` is atomic like a real update."""

    def __init__(self) -> None:
        self.rrsets: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.updates = 0

    def read(self, name: str) -> NameState:
        return NameState(addresses=frozenset(self.rrsets[(name, "A")]
                                             | self.rrsets[(name, "AAAA")]),
                         txt=frozenset(self.rrsets[(registry_name(name), "TXT")]))

    def apply(self, update: Update) -> None:
        for owner, rdtype, values in update.prerequisites:
            if frozenset(self.rrsets[(owner, rdtype)]) != values:
                raise DnsConflictError("conflict", f"{owner} {rdtype} changed")
        for op in update.ops:
            rrset = self.rrsets[(op.name, op.rdtype)]
            if op.action == "add":
                assert op.rdata is not None
                if op.rdtype in ("A", "AAAA"):
                    ip_address(op.rdata)
                rrset.add(op.rdata)
            elif op.rdata is None:
                rrset.clear()
            else:
                rrset.discard(op.rdata)
        self.updates += 1

    def add_foreign(self, name: str, address: str) -> None:
        self.rrsets[(name, "A")].add(address)


class FakeClient:
    """DnsClient's interface over a FakeZone (async like the real one)."""

    def __init__(self, zone: FakeZone, server: object = None) -> None:
        self.zone = zone
        self.server = server
        self.fail: Exception | None = None
        self.reads = 0

    async def read(self, name: str) -> NameState:
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        return self.zone.read(name)

    async def apply(self, update: Update) -> None:
        if self.fail is not None:
            raise self.fail
        self.zone.apply(update)
