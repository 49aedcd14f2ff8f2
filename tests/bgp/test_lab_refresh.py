"""Route refresh from real routers (FRR `clear bgp * soft in`, BIRD `birdc reload
in`), on ExaBGP 4.2.25 and 5.0.x: FRR and BIRD both negotiate enhanced route
refresh (RFC 7313), which ExaBGP 4.2.25 mishandles unless repaired
(speaker.bgp.refreshfix): with routes announced the session was reset, with
none every later announcement was swallowed.

The routers run the config `speaker router-config --vendor frr|bird` generates
for the appliance. One scenario per router and ExaBGP version: a refresh in the first moments of
the session (while the replay runs), one while VIPs are announced, one while
none are. After each: the session was never re-established (router side and
speaker side), the router has exactly the announced set, and later changes
still arrive.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from ipaddress import ip_network
from pathlib import Path

import pytest
from click.testing import CliRunner

from speaker.config import AppConfig, parse_text
from speaker.model import BgpAnnouncement
from speaker.routercfg.cli import router_config
from tests.bgp.conftest import SpeakerThread
from tests.bgp.routers import Router, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.bgp_refresh]

VIPS = [BgpAnnouncement(ip_network(f"203.0.113.{i}/32"), communities=("65010:1",))
        for i in range(10, 40)]
LATER = BgpAnnouncement(ip_network("203.0.113.99/32"), med=7)
APPLIANCE = """
node: {name: a1, router_id: 192.0.2.10, interfaces: [{name: eth0}]}
bgp:
  local_asn: 65010
  pools: [203.0.113.0/24]
  peers:
    - {name: r1, address: 192.0.2.1, asn: 65001, local_address: 192.0.2.10, hold_time: 9s,
       families: [ipv4-unicast], graceful_restart: {enabled: true, restart_time: 30s}}
"""


def appliance(tmp_path: Path, exabgp: str | None) -> tuple[AppConfig, Path]:
    """The appliance config (with the ExaBGP under test) and its file."""
    path = tmp_path / "a1.yaml"
    path.write_text(APPLIANCE)
    config = parse_text(APPLIANCE)
    assert config.bgp is not None
    bgp = config.bgp.model_copy(update={"exabgp": exabgp or os.environ.get("ESB_EXABGP")})
    return config.model_copy(update={"bgp": bgp}), path


def generated(vendor: str, path: Path) -> str:
    """The router side exactly as `speaker router-config` writes it."""
    result = CliRunner().invoke(router_config, ["-c", str(path), "--peer", "192.0.2.1",
                                                "--vendor", vendor])
    assert result.exit_code == 0, result.output
    return result.output


def prefixes(anns: list[BgpAnnouncement]) -> set[str]:
    """Prefixes as the routers print them."""
    return {str(a.prefix) for a in anns}


def settle_and_check(router: Router, spk: SpeakerThread, expected: set[str],
                     since: dict[str, str], what: str) -> None:
    """The router ends with exactly `expected` over the same session."""
    wait_for(lambda: set(router.routes()) == expected, 15, what=f"{what}: exact set")
    time.sleep(0.5)  # a reset caused by the refresh shows within milliseconds
    assert set(router.routes()) == expected, what
    assert router.same_sessions(since), f"{what}: the session was re-established"
    assert spk.sync(spk.speaker.sessions)["r1"].state == "up"


@pytest.mark.parametrize("kind", ["frr", "bird"])
def test_route_refresh_is_answered_at_any_moment(
        kind: str, exabgp: str | None, tmp_path: Path, routers: Callable[..., Router],
        speakers: Callable[..., SpeakerThread]) -> None:
    config, path = appliance(tmp_path, exabgp)
    router = routers(kind, "r1", [], config_text=generated(kind, path))
    spk = speakers("a1", config)
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
