"""Route refresh from real routers (FRR `clear bgp * soft in`, BIRD `birdc reload
in`), on ExaBGP 4.2.25 and 5.0.x: FRR and BIRD both negotiate enhanced route
refresh (RFC 7313), which ExaBGP 4.2.25 mishandles unless repaired
(speaker.bgp.refreshfix): with routes announced the session was reset, with
none every later announcement was swallowed.

One scenario per router and ExaBGP version: a refresh in the first moments of
the session (while the replay runs), one while VIPs are announced, one while
none are. After each: the session was never re-established (router side and
speaker side), the router has exactly the announced set, and later changes
still arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from ipaddress import ip_network

import pytest

from speaker.model import BgpAnnouncement
from tests.bgp.conftest import SpeakerThread, appliance_config
from tests.bgp.routers import Neighbor, Router, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.bgp_refresh]

VIPS = [BgpAnnouncement(ip_network(f"203.0.113.{i}/32"), communities=("65010:1",))
        for i in range(10, 40)]
LATER = BgpAnnouncement(ip_network("203.0.113.99/32"), med=7)


def prefixes(anns: list[BgpAnnouncement]) -> set[str]:
    """Prefixes as the routers print them."""
    return {str(a.prefix) for a in anns}


def settle_and_check(router: Router, spk: SpeakerThread, expected: set[str],
                     since: dict[str, str], what: str) -> None:
    """The router ends with exactly `expected` over the same session."""
    wait_for(lambda: set(router.routes()) == expected, 15, what=f"{what}: exact set")
    time.sleep(1.0)  # a reset caused by the refresh would show by now
    assert set(router.routes()) == expected, what
    assert router.sessions_since() == since, f"{what}: the session was re-established"
    assert spk.sync(spk.speaker.sessions)["r1"].state == "up"


@pytest.mark.parametrize("kind", ["frr", "bird"])
def test_route_refresh_is_answered_at_any_moment(
        kind: str, exabgp: str | None, routers: Callable[..., Router],
        speakers: Callable[..., SpeakerThread]) -> None:
    router = routers(kind, "r1", [Neighbor("192.0.2.10", 65010)])
    spk = speakers("a1", appliance_config("a1", [
        {"name": "r1", "address": "192.0.2.1", "asn": 65001, "families": ["ipv4-unicast"]}],
        exabgp=exabgp))
    spk.call(lambda: spk.speaker.set(VIPS))  # before the session: replayed when it comes up

    # 1. refresh at once when the session comes up, while the replay runs
    wait_for(lambda: router.established() == 1, 30, interval=0.02, what="session up")
    for _ in range(3):
        router.refresh()
        time.sleep(0.2)
    since = wait_for(router.sessions_since, 5, what="session uptime at the router")
    settle_and_check(router, spk, prefixes(VIPS), since, "refresh during start-up")
    up_since = spk.sync(spk.speaker.sessions)["r1"].since

    # 2. refresh while VIPs are announced
    router.refresh()
    settle_and_check(router, spk, prefixes(VIPS), since, "refresh with VIPs announced")
    spk.call(lambda: spk.speaker.set([*VIPS, LATER]))
    settle_and_check(router, spk, prefixes([*VIPS, LATER]), since, "announcement after refresh")

    # 3. refresh while nothing is announced; later announcements still arrive
    spk.call(lambda: spk.speaker.set([]))
    settle_and_check(router, spk, set(), since, "everything withdrawn")
    router.refresh()
    time.sleep(0.5)
    spk.call(lambda: spk.speaker.set([LATER]))
    settle_and_check(router, spk, prefixes([LATER]), since, "announcement after empty refresh")

    assert spk.sync(spk.speaker.sessions)["r1"].since == up_since, "speaker saw no reset"
    assert "bgp_session_down" not in spk.wakes
    assert spk.sync(spk.speaker.announced) == frozenset([LATER])
