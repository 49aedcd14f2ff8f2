"""Unit tests of the neutral model: what the router is told, decided from the configs."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speaker.config import AppConfig, ConfigError, parse_text
from speaker.routercfg import BuildOptions, RouterConfigError, build_model, render
from speaker.routercfg.build import max_prefix, safe_description
from speaker.routercfg.model import PASSWORD_PLACEHOLDER


def appliance(name: str, asn: int = 65010, local: str | None = "192.0.2.11",
              pools: str = "[203.0.113.0/26]", mode: str = "ecmp", router: str = "192.0.2.1",
              router_asn: int = 65000, password: str | None = "k3y",  # noqa: S107 - test key
              hold: str = "9s",
              ) -> tuple[str, AppConfig]:
    peer_local = f"\n      local_address: {local}" if local else ""
    peer_pw = f"\n      password: '{password}'" if password else ""
    text = f"""
node: {{name: {name}, router_id: 192.0.2.250, interfaces: [{{name: eth0, role: both}}]}}
bgp:
  local_asn: {asn}
  mode: {mode}
  pools: {pools}
  peers:
    - name: tor
      address: {router}
      asn: {router_asn}
      hold_time: {hold}
      families: [ipv4-unicast]{peer_local}{peer_pw}
services:
  - {{name: web, vip: 203.0.113.10, ports: [80], backends: [{{address: 198.51.100.1}}]}}
  - {{name: l2only, vip: 203.0.113.99, ports: [80], announce: l2,
      backends: [{{address: 198.51.100.1}}]}}
"""
    return f"{name}.yaml", parse_text(text, f"{name}.yaml")


def test_one_neighbor_per_appliance_with_its_own_address_and_asn() -> None:
    m = build_model([appliance("lb1"), appliance("lb2", local="192.0.2.12", asn=65011)],
                    BuildOptions(), "1.2.3")
    (router,) = m.routers
    assert router.asn == 65000
    assert router.router_id == ip_address("192.0.2.1")
    assert [(str(n.address), n.asn, n.appliance) for n in router.neighbors] == [
        ("192.0.2.11", 65010, "lb1"), ("192.0.2.12", 65011, "lb2")]
    assert all(str(n.local_address) == "192.0.2.1" for n in router.neighbors)


def test_missing_local_address_is_an_error_naming_the_field() -> None:
    with pytest.raises(RouterConfigError) as err:
        build_model([appliance("lb1", local=None)], BuildOptions(), "1")
    assert err.value.issues[0].startswith("lb1.yaml: bgp.peers[0].local_address:")
    assert "192.0.2.1" in err.value.issues[0]


def test_filter_is_the_pools_or_else_each_bgp_vip_exactly() -> None:
    (pooled,) = build_model([appliance("a", pools="[203.0.113.0/26, 2001:db8:1::/64]")],
                            BuildOptions(), "1").routers
    assert pooled.policies[0].ipv4 == (ip_network("203.0.113.0/26"),)
    assert pooled.policies[0].ipv6 == (ip_network("2001:db8:1::/64"),)
    assert pooled.policies[0].from_pools
    (derived,) = build_model([appliance("a", pools="[]")], BuildOptions(), "1").routers
    # the L2-only VIP is not announced by BGP, so the router must not accept it
    assert derived.policies[0].ipv4 == (ip_network("203.0.113.10/32"),)
    assert not derived.policies[0].from_pools


def test_same_pools_share_one_policy_different_pools_get_their_own() -> None:
    same = build_model([appliance("a"), appliance("b", local="192.0.2.12")],
                       BuildOptions(), "1").routers[0]
    assert [p.name for p in same.policies] == ["EDGE-SPEAKER-IN"]
    other = build_model([appliance("a"), appliance("b", local="192.0.2.12",
                                                    pools="[203.0.113.0/25]")],
                        BuildOptions(), "1").routers[0]
    assert [p.name for p in other.policies] == ["EDGE-SPEAKER-IN-1", "EDGE-SPEAKER-IN-2"]
    assert [n.import_policy for n in other.neighbors] == ["EDGE-SPEAKER-IN-1",
                                                          "EDGE-SPEAKER-IN-2"]


def test_ecmp_and_med_knobs() -> None:
    one = build_model([appliance("a")], BuildOptions(), "1").routers[0]
    assert (one.multipath, one.multipath_relax, one.deterministic_med) == (1, False, False)
    pair = build_model([appliance("a"), appliance("b", local="192.0.2.12")],
                       BuildOptions(), "1").routers[0]
    assert (pair.multipath, pair.multipath_relax, pair.always_compare_med) == (2, False, False)
    backup = build_model([appliance("a", mode="active-backup"),
                          appliance("b", local="192.0.2.12", asn=65011, mode="active-backup")],
                         BuildOptions(), "1").routers[0]
    assert backup.multipath_relax  # two ASNs: ECMP must not require the same AS
    assert backup.deterministic_med
    assert backup.always_compare_med  # the backup's MED is compared across the two ASNs


def test_max_prefix_leaves_room_to_grow() -> None:
    assert max_prefix(0) == 100
    assert max_prefix(10) == 110
    assert max_prefix(10_000) == 20_000
    (router,) = build_model([appliance("a")], BuildOptions(), "1").routers
    assert router.neighbors[0].vips_ipv4 == 1
    assert router.neighbors[0].max_prefix_ipv4 == 101


def test_timers_are_whole_seconds_matching_the_appliance() -> None:
    n = build_model([appliance("a", hold="3s")], BuildOptions(), "1").routers[0].neighbors[0]
    assert (n.hold_time, n.keepalive) == (3, 1)
    n = build_model([appliance("a", hold="4.4s")], BuildOptions(), "1").routers[0].neighbors[0]
    assert (n.hold_time, n.keepalive) == (4, 1)


def test_passwords_kept_redacted_or_refused_when_unsafe() -> None:
    n = build_model([appliance("a")], BuildOptions(), "1").routers[0].neighbors[0]
    assert n.password == "k3y"
    n = build_model([appliance("a")], BuildOptions(redact_passwords=True),
                    "1").routers[0].neighbors[0]
    assert n.password == PASSWORD_PLACEHOLDER
    n = build_model([appliance("a", password=None)], BuildOptions(), "1").routers[0].neighbors[0]
    assert n.password is None
    # a key that would break router syntax is now refused when the config is loaded
    with pytest.raises(ConfigError, match="error"):
        appliance("a", password='with"quote')


def test_routers_by_address_and_peer_selection() -> None:
    a = appliance("a")
    b = appliance("b", router="192.0.2.2", local="192.0.2.11")
    both = build_model([a, b], BuildOptions(), "1")
    assert [str(r.addresses[0]) for r in both.routers] == ["192.0.2.1", "192.0.2.2"]
    one = build_model([a, b], BuildOptions(peers=(ip_address("192.0.2.2"),)), "1")
    assert [r.neighbors[0].appliance for r in one.routers] == ["b"]
    with pytest.raises(RouterConfigError, match="no appliance peers with a router"):
        build_model([a, b], BuildOptions(peers=(ip_address("192.0.2.3"),)), "1")


def test_conflicts_are_errors() -> None:
    with pytest.raises(RouterConfigError, match="several ASNs"):
        build_model([appliance("a"), appliance("b", local="192.0.2.12", router_asn=65001)],
                    BuildOptions(), "1")
    with pytest.raises(RouterConfigError, match="also the name in"):
        build_model([appliance("a"), appliance("a", local="192.0.2.12")], BuildOptions(), "1")
    with pytest.raises(RouterConfigError, match="also used by"):
        build_model([appliance("a"), appliance("b")], BuildOptions(), "1")
    with pytest.raises(RouterConfigError, match="--appliance nope"):
        build_model([appliance("a")], BuildOptions(appliances=("nope",)), "1")


def test_ibgp_session_when_the_appliance_shares_the_router_asn() -> None:
    m = build_model([appliance("a", asn=65000), appliance("b", asn=65000, local="192.0.2.12")],
                    BuildOptions(), "1")
    assert all(n.internal for n in m.routers[0].neighbors)
    frr = render(m, "frr")
    assert "maximum-paths ibgp 2" in frr
    assert "ebgp-multihop" not in frr
    assert "type internal;" in render(m, "junos")


def test_same_input_same_bytes_whatever_the_config_order() -> None:
    a, b = appliance("a"), appliance("b", local="192.0.2.12", pools="[203.0.113.0/25]")
    for vendor in ("frr", "bird", "gobgp", "junos", "eos", "iosxr"):
        first = render(build_model([a, b], BuildOptions(), "1"), vendor)
        assert render(build_model([a, b], BuildOptions(), "1"), vendor) == first
        assert render(build_model([b, a], BuildOptions(), "1"), vendor) == first


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=80))
def test_descriptions_cannot_break_out_of_any_config(text: str) -> None:
    safe = safe_description(text)
    assert safe
    assert not set(safe) & set("\"'\\;{}#!\n\r\t")
