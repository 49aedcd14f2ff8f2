"""Real routers (BIRD 2, FRR, GoBGP) receive the VIPs with the right attributes.

IPv4 and IPv6 sessions, with TCP-MD5, and a withdrawal reaching the router.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from ipaddress import ip_network
from pathlib import Path

import pytest

from speaker.lab.netns import Lab
from speaker.model import BgpAnnouncement
from tests.bgp.conftest import PREFIX, SpeakerThread, appliance_config
from tests.bgp.routers import Neighbor, Router, wait_for

pytestmark = pytest.mark.lab

V4 = ip_network("203.0.113.10/32")
V4B = ip_network("203.0.113.11/32")
V6 = ip_network("2001:db8:100::10/128")


def announcements() -> list[BgpAnnouncement]:
    """Two IPv4 VIPs with different attributes and one IPv6 VIP."""
    return [
        BgpAnnouncement(V4, communities=("65010:100", "65535:0"),
                        large_communities=("65010:1:2",), med=50),
        BgpAnnouncement(V4B, as_path_prepend=2, med=150),
        BgpAnnouncement(V6, communities=("65010:600",), large_communities=("65010:6:6",),
                        med=60),
    ]


@pytest.mark.parametrize("kind", ["bird", "frr", "gobgp"])
def test_router_receives_vips_with_attributes_over_md5(
        kind: str, routers: Callable[..., Router],
        speakers: Callable[..., SpeakerThread]) -> None:
    # Characters the config allows but that mean something elsewhere reach the kernel intact.
    password = "s3cret=+/%$@-P4ss"
    router = routers(kind, "r1", [Neighbor("192.0.2.10", 65010, password),
                                  Neighbor("2001:db8::10", 65010, password)])
    config = appliance_config("a1", [
        {"name": "r1v4", "address": "192.0.2.1", "asn": 65001, "password": password,
         "families": ["ipv4-unicast"]},
        {"name": "r1v6", "address": "2001:db8::1", "asn": 65001, "password": password,
         "families": ["ipv6-unicast"]},
    ])
    spk = speakers("a1", config)
    spk.call(lambda: spk.speaker.set(announcements()))
    # 60 s: FRR resets a session that arrives before its config is active ("No AFI/SAFI
    # activated for peer") and ExaBGP then backs off its reconnects
    try:
        wait_for(lambda: router.established() == 2, 60, what=f"{kind}: two sessions established")
    except AssertionError as exc:  # say why: the speaker's view and ExaBGP's
        status = spk.sync(spk.speaker.status)
        raise AssertionError(f"{exc}; speaker: {status['sessions']}; "
                             f"exabgp: {status['processes']}") from None
    routes = wait_for(lambda: (r := router.routes()) and len(r) == 3 and r, 20,
                      what=f"{kind}: three VIPs received")

    v4 = routes[str(V4)]
    assert v4.next_hops == ("192.0.2.10",)
    assert v4.as_path == (65010,)
    assert v4.med == 50
    assert set(v4.communities) == {"65010:100", "65535:0"}
    assert v4.large_communities == ("65010:1:2",)
    v4b = routes[str(V4B)]
    assert v4b.as_path == (65010, 65010, 65010)
    assert v4b.med == 150
    v6 = routes[str(V6)]
    assert "2001:db8::10" in v6.next_hops
    assert v6.med == 60
    assert v6.communities == ("65010:600",)
    assert v6.large_communities == ("65010:6:6",)

    # the router may hold the routes a moment before the speaker has read ExaBGP's acks
    try:
        wait_for(lambda: {(n, s.state, s.announced) for n, s in
                          spk.sync(spk.speaker.sessions).items()}
                 == {("r1v4", "up", 2), ("r1v6", "up", 1)}, 10,
                 what=f"{kind}: the speaker sees both sessions up with their routes")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; speaker: {spk.sync(spk.speaker.status)['sessions']}") \
            from None
    sessions = spk.sync(spk.speaker.sessions)

    spk.call(lambda: spk.speaker.set(announcements()[1:]))
    wait_for(lambda: str(V4) not in router.routes(), 10, what=f"{kind}: {V4} withdrawn")
    time.sleep(0.5)  # a withdrawal that broke the session would show by now
    assert set(router.routes()) == {str(V4B), str(V6)}
    assert spk.sync(spk.speaker.announced) == frozenset(announcements()[1:])
    after = spk.sync(spk.speaker.sessions)
    assert all(after[n].state == "up" and after[n].since == sessions[n].since for n in after), \
        "the withdrawal must not reset a session"


def test_multihop_peer_behind_a_router(lab: Lab, tmp_path: Path,
                                       routers: Callable[..., Router],
                                       speakers: Callable[..., SpeakerThread]) -> None:
    """eBGP multihop: BIRD in esb-r3 sits behind esb-r2; ExaBGP's packets leave with
    TTL 2 (outgoing-ttl) and the source address comes from `ip route get`."""
    r2, a1 = lab.namespaces[f"{PREFIX}-r2"], lab.namespaces[f"{PREFIX}-a1"]
    r3 = lab.host("r3")
    lab.wire(r2, r3, "eth1", "eth0", ["198.51.100.1/30"], ["198.51.100.2/30"])
    a1.run("ip", "route", "add", "198.51.100.0/30", "via", "192.0.2.2")
    r3.run("ip", "route", "add", "192.0.2.0/24", "via", "198.51.100.1")
    capture = tmp_path / "ttl.txt"
    errors = tmp_path / "tcpdump.err"
    with capture.open("w") as out, errors.open("w") as err:
        tcpdump = r3.spawn(["tcpdump", "-l", "-n", "-v", "-i", "eth0", "-c", "3",
                            "tcp port 179 and src host 192.0.2.10"], stdout=out,
                           stderr=err)
    # start BGP only once tcpdump is capturing (a fixed sleep lost the packets under load)
    wait_for(lambda: "listening on" in errors.read_text(), 10, what="tcpdump to attach")
    bird = routers("bird", "r3", [Neighbor("192.0.2.10", 65010, multihop=2)],
                   router_id="198.51.100.2")
    spk = speakers("a1", appliance_config("a1", [
        {"name": "r3", "address": "198.51.100.2", "asn": 65001, "multihop": 2,
         "families": ["ipv4-unicast"]}]))
    spk.call(lambda: spk.speaker.set(announcements()[:2]))
    wait_for(lambda: set(bird.routes()) == {str(V4), str(V4B)}, 30,
             what="VIPs over the multihop session")
    assert "BGP.next_hop: 192.0.2.10" in bird.birdc("show", "route", "all")
    # either side may open the session: any segment from the appliance counts
    wait_for(lambda: tcpdump.poll() is not None, 10, what="tcpdump to see 3 segments")
    r3.stop(tcpdump)
    ttls = re.findall(r"ttl (\d+)", capture.read_text())
    assert ttls, capture.read_text()
    assert set(ttls) == {"1"}, "ExaBGP sends with TTL 2 (multihop 2): one hop leaves 1"
