"""The framed channel, the session specs taken from a config, and the bfd config field."""

from __future__ import annotations

from typing import Any

import pytest

from speaker.bfd.channel import FrameError, FrameReader, encode
from speaker.bfd.spec import SessionSpec, sessions_from_config
from speaker.config import AppConfig, ConfigError
from speaker.config.load import validate


def config(peers: list[dict[str, Any]]) -> AppConfig:
    return AppConfig.model_validate({
        "node": {"name": "a1", "router_id": "192.0.2.10", "interfaces": [{"name": "eth0"}]},
        "bgp": {"local_asn": 65010, "peers": peers}})


def test_frames_split_anywhere() -> None:
    data = encode({"t": "state", "peer": "r1"}) + encode({"t": "stats", "n": [1, 2]})
    reader = FrameReader()
    got = []
    for i in range(len(data)):
        got += reader.feed(data[i:i + 1])
    assert got == [{"t": "state", "peer": "r1"}, {"t": "stats", "n": [1, 2]}]


@pytest.mark.parametrize("data", [b"\x00\x00\x00\x02[]", b"\x00\x00\x00\x01x",
                                  b"\xff\xff\xff\xff"])
def test_bad_frames_are_errors(data: bytes) -> None:
    with pytest.raises(FrameError):
        FrameReader().feed(data)


def test_specs_from_config_with_the_bool_shorthand_and_timers() -> None:
    cfg = config([
        {"name": "r1", "address": "192.0.2.1", "asn": 65000, "bfd": True},
        {"name": "r2", "address": "2001:db8::2", "asn": 65000, "multihop": 3,
         "local_address": "2001:db8::10",
         "bfd": {"min_tx": "100ms", "min_rx": 0.2, "multiplier": 5}},
        {"name": "r3", "address": "192.0.2.3", "asn": 65000},
        {"name": "r4", "address": "192.0.2.4", "asn": 65000, "bfd": {"enabled": False}},
    ])
    r1, r2 = sessions_from_config(cfg)
    assert (r1.peer, r1.min_tx_ms, r1.min_rx_ms, r1.multiplier, r1.port, r1.min_ttl) == (
        "r1", 300, 300, 3, 3784, 255)
    assert (r2.min_tx_ms, r2.min_rx_ms, r2.multiplier, r2.port, r2.min_ttl, r2.local) == (
        100, 200, 5, 4784, 253, "2001:db8::10")
    assert SessionSpec.from_json(r2.to_json()) == r2


@pytest.mark.parametrize(("bfd", "path"), [
    ({"min_tx": "10ms"}, "bgp.peers[0].bfd.min_tx"),
    ({"min_rx": "61s"}, "bgp.peers[0].bfd.min_rx"),
    ({"min_tx": "100.5ms"}, "bgp.peers[0].bfd.min_tx"),
    ({"multiplier": 1}, "bgp.peers[0].bfd.multiplier"),
    ({"multiplier": 256}, "bgp.peers[0].bfd.multiplier"),
    ({"interval": "100ms"}, "bgp.peers[0].bfd.interval"),
    ("yes please", "bgp.peers[0].bfd"),
])
def test_bad_bfd_settings_name_the_field(bfd: object, path: str) -> None:
    raw = {"node": {"name": "a1", "router_id": "192.0.2.10", "interfaces": [{"name": "eth0"}]},
           "bgp": {"local_asn": 65010,
                   "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000, "bfd": bfd}]}}
    with pytest.raises(ConfigError) as err:
        validate(raw)
    assert [i.path for i in err.value.issues] == [path], err.value.issues
