"""The shared DNS registry: who owns a name's records, and the update that moves one
name towards what this appliance wants (pure; no I/O).

Every published name NAME has, besides its A/AAAA records, a TXT record set at
`_edge-speaker.NAME` (the registry name; ExternalDNS's TXT registry is the anchor):

* one owner marker `heritage=edge-speaker,owner=OWNER`;
* one claim per appliance that serves the VIP now,
  `heritage=edge-speaker,owner=OWNER,node=NODE,until=UNIX_TIME`, renewed while it serves.

A name whose addresses or registry exist without our owner's marker belongs to
someone else and is never touched. An appliance that stops serving removes its own
claim; the one that removes the last live claim (stale claims of dead appliances do
not count) removes the records. Every update carries RFC 2136 prerequisites that pin
exactly the record sets it was computed from, so two appliances updating at once
cannot clobber each other: the second one's prerequisites fail, it reads again and
recomputes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

IPAddress = IPv4Address | IPv6Address
REGISTRY_LABEL = "_edge-speaker"
HERITAGE = "heritage=edge-speaker"
ADDRESS_TYPES = ("A", "AAAA")


def registry_name(name: str) -> str:
    """Where the TXT registry of `name` lives."""
    return f"{REGISTRY_LABEL}.{name}"


def marker(owner: str) -> str:
    """The owner marker TXT string."""
    return f"{HERITAGE},owner={owner}"


def claim(owner: str, node: str, until: int) -> str:
    """One appliance's claim TXT string."""
    return f"{HERITAGE},owner={owner},node={node},until={until}"


@dataclass(frozen=True, slots=True)
class NameState:
    """What the server holds for one name: rdata texts per (owner name, type)."""

    addresses: frozenset[str] = frozenset()
    """A and AAAA rdata at NAME (address texts)."""
    txt: frozenset[str] = frozenset()
    """TXT strings at the registry name (unquoted)."""

    def by_type(self) -> dict[str, frozenset[str]]:
        """Addresses split into A and AAAA."""
        out: dict[str, set[str]] = {"A": set(), "AAAA": set()}
        for text in self.addresses:
            out["A" if ip_address(text).version == 4 else "AAAA"].add(text)
        return {k: frozenset(v) for k, v in out.items()}


@dataclass(frozen=True, slots=True)
class Registry:
    """The registry TXT set, parsed for one owner."""

    ours: bool
    """Our owner's marker is present."""
    foreign: bool
    """Someone else's: records or registry without our marker, or another owner's."""
    claims: Mapping[str, tuple[int, str]]
    """node -> (until, the exact TXT string) for our owner's claims."""


def parse(state: NameState, owner: str) -> Registry:
    """Read the registry of one name."""
    ours = marker(owner) in state.txt
    claims: dict[str, tuple[int, str]] = {}
    other_owner = False
    for text in state.txt:
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        if fields.get("heritage") != "edge-speaker":
            continue
        if fields.get("owner") != owner:
            other_owner = True
            continue
        if "node" in fields and fields.get("until", "").isdigit():
            claims[fields["node"]] = (int(fields["until"]), text)
    present = bool(state.addresses or state.txt)
    return Registry(ours=ours, foreign=present and (not ours or other_owner), claims=claims)


@dataclass(frozen=True, slots=True)
class Op:
    """One RFC 2136 update operation. `rdata` None deletes the whole record set."""

    action: str
    """'add' or 'delete'."""
    name: str
    rdtype: str
    rdata: str | None = None
    ttl: int = 0


@dataclass(frozen=True, slots=True)
class Update:
    """An update: prerequisites (each record set exactly as read; empty = absent) and ops."""

    prerequisites: tuple[tuple[str, str, frozenset[str]], ...]
    ops: tuple[Op, ...]
    outcome: str
    """What the name is once it applies: 'published' or 'withdrawn'."""
    recheck_at: float | None = None
    """Unix time to look again although nothing changes here (see Settled)."""


@dataclass(frozen=True, slots=True)
class Settled:
    """Nothing to send; `state` says why ('published', 'absent', 'foreign_owner')."""

    state: str
    recheck_at: float | None = None
    """Withdrawn here but claimed by others: when the earliest of their claims
    expires. If it was not renewed by then (a dead appliance), the records go."""


def _pin(name: str, state: NameState) -> tuple[tuple[str, str, frozenset[str]], ...]:
    types = state.by_type()
    return ((name, "A", types["A"]), (name, "AAAA", types["AAAA"]),
            (registry_name(name), "TXT", state.txt))


def _stale(reg: Registry, now: float, node: str) -> list[str]:
    return [text for n, (until, text) in reg.claims.items() if until < now and n != node]


def plan(name: str, state: NameState, want: IPAddress | None, *, owner: str, node: str,
         now: float, ttl: int, lifetime: float, refresh: float) -> Update | Settled:
    """The update that makes `name` serve `want` from this node (None: stop serving)."""
    reg = parse(state, owner)
    if reg.foreign:
        return Settled("foreign_owner")
    if want is None:
        return _withdraw(name, state, reg, node=node, now=now)
    reg_name = registry_name(name)
    ops: list[Op] = []
    if state.addresses != {str(want)}:
        ops += [Op("delete", name, t) for t, v in state.by_type().items() if v]
        ops.append(Op("add", name, "AAAA" if want.version == 6 else "A", str(want), ttl))
    if not reg.ours:
        ops.append(Op("add", reg_name, "TXT", marker(owner), ttl))
    mine = reg.claims.get(node)
    if mine is None or mine[0] - now < lifetime - refresh:
        if mine is not None:
            ops.append(Op("delete", reg_name, "TXT", mine[1]))
        ops.append(Op("add", reg_name, "TXT", claim(owner, node, int(now + lifetime)), ttl))
    ops += [Op("delete", reg_name, "TXT", text) for text in _stale(reg, now, node)]
    if not ops:
        return Settled("published")
    return Update(_pin(name, state), tuple(ops), "published")


def _withdraw(name: str, state: NameState, reg: Registry, *, node: str,
              now: float) -> Update | Settled:
    if not (state.addresses or state.txt):
        return Settled("absent")
    live_others = [until for n, (until, _) in reg.claims.items() if n != node and until >= now]
    if live_others:
        recheck = min(live_others) + 1.0
        if node not in reg.claims:
            return Settled("absent", recheck)  # served by others; nothing of ours here
        ops = [Op("delete", registry_name(name), "TXT", reg.claims[node][1])]
        ops += [Op("delete", registry_name(name), "TXT", t) for t in _stale(reg, now, node)]
        return Update(_pin(name, state), tuple(ops), "withdrawn", recheck)
    # no live appliance serves it (ours was the last claim, or only stale claims remain)
    ops = [Op("delete", name, t) for t, v in state.by_type().items() if v]
    if state.txt:
        ops.append(Op("delete", registry_name(name), "TXT"))
    return Update(_pin(name, state), tuple(ops), "withdrawn")
