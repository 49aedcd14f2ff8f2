"""Unit tests: API lines, injection guards, per-peer plans and diffs."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speaker.bgp import commands as cmd
from speaker.bgp.plan import Peer, accepts, desired_for, diff, unplaced
from speaker.model import BgpAnnouncement

V4PEER = Peer("r1", ip_address("192.0.2.1"), 65001, ("ipv4-unicast", "ipv6-unicast"), False,
              False, 9.0)
V6PEER = Peer("r1v6", ip_address("2001:db8::1"), 65001, ("ipv6-unicast",), False, False, 9.0)
IBGP = Peer("rr", ip_address("192.0.2.3"), 65010, ("ipv4-unicast",), True, False, 9.0)


def ann(prefix: str, **kw: object) -> BgpAnnouncement:
    """An announcement of `prefix` with attributes."""
    return BgpAnnouncement(ip_network(prefix), **kw)  # type: ignore[arg-type]


def test_announce_line_carries_every_attribute() -> None:
    a = ann("203.0.113.10/32", communities=("65010:100", "65535:0"),
            large_communities=("65010:1:2",), med=50, local_pref=200, as_path_prepend=2)
    [line] = cmd.announce_commands("r1", "192.0.2.1", [a], local_asn=65010, ibgp=False)
    assert line.line == (
        "neighbor 192.0.2.1 announce attributes next-hop self community [65010:100 65535:0] "
        "large-community [65010:1:2] med 50 as-path [65010 65010 65010] nlri 203.0.113.10/32")
    assert line.prefixes == (a.prefix,)


def test_local_pref_and_prepend_on_ibgp() -> None:
    a = ann("203.0.113.10/32", local_pref=200, as_path_prepend=2)
    [line] = cmd.announce_commands("rr", "192.0.2.3", [a], local_asn=65010, ibgp=True)
    assert "local-preference 200" in line.line
    assert "as-path [65010 65010]" in line.line


def test_same_attributes_are_batched_and_chunked() -> None:
    anns = [ann(f"198.18.0.{i}/32", med=5) for i in range(10)] + [ann("198.18.1.1/32")]
    lines = cmd.announce_commands("r1", "192.0.2.1", anns, local_asn=65010, ibgp=False, batch=4)
    assert [len(c.prefixes) for c in lines] == [1, 4, 4, 2]
    assert sum(len(c.announcements) for c in lines) == 11


def test_withdraw_repeats_the_announced_next_hop() -> None:
    routes = [ann("203.0.113.1/32"), ann("2001:db8:100::1/128", next_hop="2001:db8::10")]
    lines = [c.line for c in cmd.withdraw_commands("r1", "192.0.2.1", routes)]
    assert lines == [
        "neighbor 192.0.2.1 withdraw attributes next-hop self nlri 203.0.113.1/32",
        "neighbor 192.0.2.1 withdraw attributes next-hop 2001:db8::10 nlri 2001:db8:100::1/128"]


def test_eor_line() -> None:
    assert cmd.eor_command("r1", "2001:db8::1", "ipv6-unicast").line == \
        "neighbor 2001:db8::1 announce eor ipv6 unicast"
    with pytest.raises(cmd.UnsafeValueError):
        cmd.eor_command("r1", "192.0.2.1", "ipv4-flow")


@pytest.mark.parametrize("bad", [
    {"communities": ("65010:1]\nannounce route 0.0.0.0/0 next-hop self",)},
    {"communities": ("65536:1",)},
    {"large_communities": ("1:2",)},
    {"large_communities": ("1:2:4294967296",)},
    {"next_hop": "self\nshutdown"},
    {"next_hop": "router"},
    {"med": -1},
    {"med": 2**32},
    {"local_pref": True},
    {"as_path_prepend": 17},
])
def test_unsafe_values_are_refused(bad: dict[str, object]) -> None:
    a = ann("203.0.113.10/32", **bad)
    with pytest.raises(cmd.UnsafeValueError):
        cmd.announce_commands("r1", "192.0.2.1", [a], local_asn=65010, ibgp=True)


@given(st.text(min_size=1, max_size=20))
def test_no_community_text_can_inject_a_line(text: str) -> None:
    a = ann("203.0.113.10/32", communities=(text,))
    try:
        lines = cmd.announce_commands("r1", "192.0.2.1", [a], local_asn=65010, ibgp=False)
    except cmd.UnsafeValueError:
        return
    assert all("\n" not in c.line and "\r" not in c.line for c in lines)
    assert all(c.line.count("announce") == 1 for c in lines)


def test_check_line_refuses_control_characters() -> None:
    with pytest.raises(cmd.UnsafeValueError):
        cmd.check_line("show neighbor summary\x00")


def test_peer_acceptance_by_family_name_and_next_hop() -> None:
    v4, v6 = ann("203.0.113.1/32"), ann("2001:db8:100::1/128")
    assert accepts(V4PEER, v4)
    assert not accepts(V4PEER, v6), "next-hop self cannot be IPv6 on an IPv4 session"
    assert accepts(V4PEER, ann("2001:db8:100::1/128", next_hop="2001:db8::10"))
    assert accepts(V6PEER, v6)
    assert not accepts(V6PEER, v4)
    assert not accepts(V4PEER, ann("203.0.113.1/32", peers=("other",)))
    assert accepts(V4PEER, ann("203.0.113.1/32", peers=("r1",)))
    assert unplaced([V6PEER], [v4, v6]) == (v4,)


def test_duplicate_prefix_choice_is_deterministic() -> None:
    a, b = ann("203.0.113.1/32", med=10), ann("203.0.113.1/32", med=20)
    assert desired_for(V4PEER, [b, a]) == desired_for(V4PEER, [a, b]) == {a.prefix: a}


def test_diff_withdraws_gone_and_replaces_changed() -> None:
    keep, change, gone = ann("203.0.113.1/32"), ann("203.0.113.2/32"), ann("203.0.113.3/32")
    changed = ann("203.0.113.2/32", med=5)
    new = ann("2001:db8:100::1/128")
    announced = {r.prefix: r for r in (keep, change, gone)}
    desired = {r.prefix: r for r in (keep, changed, new)}
    withdraw, announce = diff(desired, announced)
    assert withdraw == (gone.prefix,)
    assert announce == (changed, new)


prefixes = st.sampled_from([f"203.0.113.{i}/32" for i in range(6)]
                           + [f"2001:db8:100::{i}/128" for i in range(6)])
routes = st.builds(lambda p, med: ann(p, med=med), prefixes, st.none() | st.integers(0, 3))


@given(st.lists(routes), st.lists(routes))
def test_applying_a_diff_reaches_the_desired_rib(current: list[BgpAnnouncement],
                                                 wanted: list[BgpAnnouncement]) -> None:
    peer = Peer("r", ip_address("192.0.2.1"), 1, ("ipv4-unicast", "ipv6-unicast"), False,
                False, 9.0)
    rib = desired_for(peer, current)
    target = desired_for(peer, wanted)
    withdraw, announce = diff(target, rib)
    for p in withdraw:
        del rib[p]
    for a in announce:
        rib[a.prefix] = a
    assert rib == target
    assert diff(target, rib) == ((), ())
