"""ExaBGP text-API lines for announcements, withdrawals and End-of-RIB.

Pure functions. Every value that reaches ExaBGP is checked again here
(defence in depth on top of the config model): communities, next hops and
numbers must match a strict grammar, and no rendered line may contain a
newline or another control character, so nothing can become an extra API
command. Announcements that share their attributes are batched into one
`announce attributes ... nlri P1 P2 ...` line (about 2x faster in ExaBGP than
one line per prefix).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Literal

from speaker.model import BgpAnnouncement, IPNetwork

CommandKind = Literal["announce", "withdraw", "eor", "query"]

_COMMUNITY = re.compile(r"^(\d{1,5}):(\d{1,5})$")
_LARGE = re.compile(r"^(\d{1,10}):(\d{1,10}):(\d{1,10})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
MAX_PREPEND = 16
BATCH_PREFIXES = 50
"""Prefixes per bulk line. ExaBGP works through 50 routes per reactor turn and
sleeps between turns unless new API input arrived; lines of one turn's work,
fed as the acks come back, keep it busy (10,000 routes: 1.3 s vs 3.9 s with
400-prefix lines; see docs/performance.md)."""


class UnsafeValueError(ValueError):
    """A value would not be a single, well-formed ExaBGP API token."""


@dataclass(frozen=True, slots=True)
class Command:
    """One API line plus what it is about (for acks, metrics and state)."""

    line: str
    kind: CommandKind
    peer: str
    """Peer name (not address) the line targets; '' for global queries."""
    prefixes: tuple[IPNetwork, ...] = ()
    announcements: tuple[BgpAnnouncement, ...] = ()


def check_line(line: str) -> str:
    """Refuse a line with control characters (it could smuggle a second command)."""
    if _CONTROL.search(line):
        raise UnsafeValueError(f"control character in API line {line[:60]!r}")
    return line


def _community(value: str) -> str:
    match = _COMMUNITY.match(value)
    if not match or any(int(g) > _U16 for g in match.groups()):
        raise UnsafeValueError(f"not a community: {value!r}")
    return value


def _large_community(value: str) -> str:
    match = _LARGE.match(value)
    if not match or any(int(g) > _U32 for g in match.groups()):
        raise UnsafeValueError(f"not a large community: {value!r}")
    return value


def _u32(name: str, value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U32:
        raise UnsafeValueError(f"{name} must be an integer 0..{_U32}: {value!r}")
    return str(value)


def next_hop_token(next_hop: str) -> str:
    """'self' or a literal IP address, re-rendered from ipaddress (canonical)."""
    if next_hop == "self":
        return "self"
    try:
        return str(ip_address(next_hop))
    except ValueError:
        raise UnsafeValueError(f"next hop must be 'self' or an IP address: {next_hop!r}") from None


def prefix_token(prefix: IPNetwork) -> str:
    """A prefix as ExaBGP reads it (always rendered by ipaddress)."""
    if not isinstance(prefix, IPv4Network | IPv6Network):
        raise UnsafeValueError(f"not an IP network: {prefix!r}")
    return prefix.with_prefixlen


def as_path(local_asn: int, prepend: int, ibgp: bool) -> tuple[int, ...]:
    """AS path to send for a prepend count. ExaBGP sends an explicit as-path
    exactly as written (it does not add the local AS), so on eBGP the local AS
    appears prepend+1 times; on iBGP prepend times."""
    if isinstance(prepend, bool) or not 0 <= prepend <= MAX_PREPEND:
        raise UnsafeValueError(f"as_path_prepend must be 0..{MAX_PREPEND}: {prepend!r}")
    if prepend == 0:
        return ()
    return (local_asn,) * (prepend if ibgp else prepend + 1)


def attributes(ann: BgpAnnouncement, *, local_asn: int, ibgp: bool) -> str:
    """The attribute part of an announce line (everything but the prefixes)."""
    parts = ["next-hop", next_hop_token(ann.next_hop)]
    if ann.communities:
        parts.append("community [" + " ".join(_community(c) for c in ann.communities) + "]")
    if ann.large_communities:
        parts.append("large-community ["
                     + " ".join(_large_community(c) for c in ann.large_communities) + "]")
    if ann.med is not None:
        parts += ["med", _u32("med", ann.med)]
    if ann.local_pref is not None and ibgp:
        parts += ["local-preference", _u32("local_pref", ann.local_pref)]
    path = as_path(int(_u32("local_asn", local_asn)), ann.as_path_prepend, ibgp)
    if path:
        parts.append("as-path [" + " ".join(str(a) for a in path) + "]")
    return " ".join(parts)


def _sort_key(ann: BgpAnnouncement) -> tuple[int, bytes, int]:
    return (ann.prefix.version, ann.prefix.network_address.packed, ann.prefix.prefixlen)


def _selector(address: str) -> str:
    return f"neighbor {ip_address(address)}"


def announce_commands(peer: str, address: str, announcements: Iterable[BgpAnnouncement], *,
                      local_asn: int, ibgp: bool, batch: int = BATCH_PREFIXES
                      ) -> list[Command]:
    """Bulk announce lines for one peer, grouped by identical attributes, sorted."""
    groups: dict[str, list[BgpAnnouncement]] = {}
    for ann in sorted(announcements, key=_sort_key):
        groups.setdefault(attributes(ann, local_asn=local_asn, ibgp=ibgp), []).append(ann)
    out: list[Command] = []
    head = _selector(address)
    for attrs, anns in sorted(groups.items()):
        for start in range(0, len(anns), batch):
            chunk = tuple(anns[start:start + batch])
            nlri = " ".join(prefix_token(a.prefix) for a in chunk)
            line = check_line(f"{head} announce attributes {attrs} nlri {nlri}")
            out.append(Command(line, "announce", peer, tuple(a.prefix for a in chunk), chunk))
    return out


def withdraw_commands(peer: str, address: str, routes: Iterable[BgpAnnouncement], *,
                      batch: int = BATCH_PREFIXES) -> list[Command]:
    """Bulk withdraw lines for one peer. The next hop the route was announced with
    is repeated: ExaBGP 4.2 builds a broken UPDATE for an IPv4 withdrawal without
    one and resets the session."""
    out: list[Command] = []
    head = _selector(address)
    groups: dict[tuple[int, str], list[IPNetwork]] = {}
    for ann in sorted(routes, key=_sort_key):
        groups.setdefault((ann.prefix.version, next_hop_token(ann.next_hop)), []).append(ann.prefix)
    for (_version, hop), items in sorted(groups.items()):
        for start in range(0, len(items), batch):
            chunk: Sequence[IPNetwork] = items[start:start + batch]
            nlri = " ".join(prefix_token(p) for p in chunk)
            line = check_line(f"{head} withdraw attributes next-hop {hop} nlri {nlri}")
            out.append(Command(line, "withdraw", peer, tuple(chunk)))
    return out


def eor_command(peer: str, address: str, family: str) -> Command:
    """End-of-RIB for one family ('ipv4-unicast' / 'ipv6-unicast')."""
    afi, _, safi = family.partition("-")
    if afi not in ("ipv4", "ipv6") or safi != "unicast":
        raise UnsafeValueError(f"unsupported family {family!r}")
    return Command(check_line(f"{_selector(address)} announce eor {afi} {safi}"), "eor", peer)


SUMMARY = Command("show neighbor summary", "query", "")
"""Which peers are established (used after the API process was respawned)."""
