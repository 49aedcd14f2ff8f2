"""Hostile adverts against VrrpElection (fake wire): non-peers, absurd intervals: no effect."""

from __future__ import annotations

from ipaddress import IPv4Address, ip_address

import pytest
from test_vrrp_engine import Clock, Wire, config, engine, leader, run_for

from speaker.config import ConfigError, parse_text
from speaker.election.metrics import VRRP_DISCARDED
from speaker.election.vrrp_packet import VRRP_GROUP_V4, Advert, encode
from speaker.election.vrrp_socket import Received

FORGER = ip_address("192.0.2.66")


def forged(priority: int = 254, interval_cs: int = 4095) -> bytes:
    advert = Advert(51, priority, interval_cs, (IPv4Address("192.0.2.100"),))
    return encode(advert, FORGER, VRRP_GROUP_V4, with_checksum=True)


def discarded(reason: str) -> float:
    return VRRP_DISCARDED.labels(reason)._value.get()


def with_peers(text: str, peers: str) -> str:
    return text.replace("unicast_peers: []", f"unicast_peers: [], peers: {peers}")


@pytest.fixture
def wire() -> Wire:
    return Wire(Clock())


def blast(wire: Wire, victim: object, payload: bytes, times: int = 30) -> None:
    sock = next(s for s, e in wire.members if e is victim)
    for _ in range(times):
        victim.handle(sock, Received(FORGER, VRRP_GROUP_V4, 255, payload),  # type: ignore[attr-defined]
                      wire.clock.now)
        run_for(wire, [e for _, e in wire.members], 0.1)


def test_forged_advert_from_a_non_peer_is_ignored(wire: Wire) -> None:
    a = engine(wire, with_peers(config("a1", "192.0.2.11", 150), "[192.0.2.12]"))
    b = engine(wire, with_peers(config("a2", "192.0.2.12", 100), "[192.0.2.11]"))
    run_for(wire, [a, b], 1.0)
    assert leader(a)
    before = discarded("not_a_peer")
    blast(wire, a, forged(interval_cs=100))  # a sane interval: only the peer list stops it
    assert leader(a)
    assert a.leadership()["front"].leader_id == "a1"
    assert discarded("not_a_peer") - before == 30


def test_forged_long_interval_is_ignored_without_a_peer_list(wire: Wire) -> None:
    a = engine(wire, config("a1", "192.0.2.11", 150))
    b = engine(wire, config("a2", "192.0.2.12", 100))
    run_for(wire, [a, b], 1.0)
    before = discarded("interval_out_of_range")
    blast(wire, a, forged())
    blast(wire, b, forged())
    assert leader(a)
    assert not leader(b)
    assert b.leadership()["front"].leader_id == "192.0.2.11"
    assert discarded("interval_out_of_range") - before == 60


def test_check_source_off_obeys_any_source(wire: Wire) -> None:
    text = with_peers(config("a1", "192.0.2.11", 150), "[192.0.2.12]").replace(
        "peers: [192.0.2.12]", "peers: [192.0.2.12], check_source: false")
    a = engine(wire, text)
    run_for(wire, [a], 1.0)
    assert leader(a)
    blast(wire, a, forged(interval_cs=100), times=3)
    assert not leader(a)  # priority 254 from anyone wins: what check_source prevents


def test_own_interval_must_lie_inside_the_accepted_range() -> None:
    text = config("a1", "192.0.2.11", 150).replace(
        "unicast_peers: []", "unicast_peers: [], peer_interval_max: 0.03")
    with pytest.raises(ConfigError) as err:
        parse_text(text)
    assert "peer_interval_min..max" in str(err.value.issues[0])
