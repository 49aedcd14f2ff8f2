"""Which routes each peer must carry, and the difference to what it carries.

Pure functions over frozen values: the speaker keeps, per peer, what ExaBGP
acknowledged, asks `desired_for()` what the peer should have, and sends only
`diff()` (withdrawals first, then announcements, each sorted).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address

from speaker.config.bgp import BgpConfig
from speaker.model import BgpAnnouncement, IPAddress, IPNetwork

Rib = Mapping[IPNetwork, BgpAnnouncement]
"""Routes of one peer, by prefix."""


@dataclass(frozen=True, slots=True)
class Peer:
    """What the speaker needs to know about one neighbor."""

    name: str
    address: IPAddress
    asn: int
    families: tuple[str, ...]
    ibgp: bool
    md5: bool
    """A TCP-MD5 password is configured (used to explain a silent peer)."""
    hold_time: float


def peers_from_config(bgp: BgpConfig) -> tuple[Peer, ...]:
    """Peers of the bgp section, in config order."""
    return tuple(
        Peer(name=p.name, address=p.address, asn=p.asn, families=tuple(p.families),
             ibgp=p.asn == bgp.local_asn, md5=p.password is not None, hold_time=p.hold_time)
        for p in bgp.peers)


def family_of(prefix: IPNetwork) -> str:
    """'ipv4-unicast' or 'ipv6-unicast'."""
    return f"ipv{prefix.version}-unicast"


def accepts(peer: Peer, ann: BgpAnnouncement) -> bool:
    """Whether `ann` goes to `peer`: named (or no names given), family negotiated,
    and a next hop the session can carry ('self' only within the session's own
    IP version: ExaBGP cannot derive an IPv6 next hop from an IPv4 session)."""
    if ann.peers and peer.name not in ann.peers:
        return False
    if family_of(ann.prefix) not in peer.families:
        return False
    if ann.next_hop == "self":
        return ann.prefix.version == peer.address.version
    try:
        return ip_address(ann.next_hop).version == ann.prefix.version
    except ValueError:
        return False


def sort_key(ann: BgpAnnouncement) -> tuple[object, ...]:
    """Total order over announcements of both IP versions (the dataclass order
    compares prefixes, which raises across versions)."""
    return (ann.prefix.version, ann.prefix.network_address.packed, ann.prefix.prefixlen,
            ann.next_hop, ann.communities, ann.large_communities,
            -1 if ann.med is None else ann.med, -1 if ann.local_pref is None else ann.local_pref,
            ann.as_path_prepend, ann.peers)


def desired_for(peer: Peer, announcements: Iterable[BgpAnnouncement]) -> dict[IPNetwork,
                                                                                BgpAnnouncement]:
    """Routes `peer` must carry. Two announcements of one prefix: the smallest
    (sort order) wins, so the choice is deterministic."""
    out: dict[IPNetwork, BgpAnnouncement] = {}
    for ann in sorted(announcements, key=sort_key):
        if accepts(peer, ann):
            out.setdefault(ann.prefix, ann)
    return out


def unplaced(peers: Collection[Peer], announcements: Iterable[BgpAnnouncement]
             ) -> tuple[BgpAnnouncement, ...]:
    """Announcements that no peer takes (wrong family, unknown peer names)."""
    return tuple(sorted((a for a in announcements if not any(accepts(p, a) for p in peers)),
                        key=sort_key))


def diff(desired: Rib, announced: Rib) -> tuple[tuple[IPNetwork, ...],
                                                tuple[BgpAnnouncement, ...]]:
    """(prefixes to withdraw, announcements to send). A prefix whose attributes
    changed is re-announced (an implicit replace), never withdrawn first."""
    withdraw = tuple(sorted((p for p in announced if p not in desired),
                            key=lambda p: (p.version, p)))
    announce = tuple(sorted((a for p, a in desired.items() if announced.get(p) != a),
                           key=sort_key))
    return withdraw, announce
