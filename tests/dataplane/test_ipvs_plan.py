"""plan_ipvs: pure, sorted, owned-only; apply(plan) then plan again yields no ops."""

from __future__ import annotations

from ipaddress import IPv4Address, ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplane.ipvs.fake import FakeIpvsKernel
from dataplane.ipvs.forwarder import IpvsForwarder
from dataplane.ipvs.kernel import IpvsError
from dataplane.ipvs.model import Dest, DestKey, IpvsTable, Service, ServiceKey
from dataplane.ipvs.ownership import Ownership
from dataplane.ipvs.plan import (
    AddDest,
    AddService,
    DelDest,
    DelService,
    EditDest,
    EditService,
    apply_to_table,
    ownership_conflicts,
    plan_ipvs,
)
from tests.dataplane.ipvs_strategies import tables


def everything(_key: ServiceKey) -> bool:
    return True


KEY = ServiceKey.tcp("203.0.113.10", 80)
RIP = IPv4Address("198.51.100.11")


def test_empty_to_one_service_is_sorted_by_phase() -> None:
    want = IpvsTable.of([Service(KEY, "rr")], [Dest(DestKey(KEY, RIP, 80), 2)])
    ops = plan_ipvs(want, IpvsTable(), everything)
    assert [type(op) for op in ops] == [AddService, AddDest]


def test_changes_are_edits_not_delete_and_add() -> None:
    have = IpvsTable.of([Service(KEY, "rr")], [Dest(DestKey(KEY, RIP, 80), 2)])
    want = IpvsTable.of([Service(KEY, "wrr")], [Dest(DestKey(KEY, RIP, 80), 0, "dr")])
    assert plan_ipvs(want, have, everything) == (
        EditService(Service(KEY, "wrr")), EditDest(Dest(DestKey(KEY, RIP, 80), 0, "dr")))


def test_deleting_a_service_does_not_delete_its_dests_one_by_one() -> None:
    have = IpvsTable.of([Service(KEY)], [Dest(DestKey(KEY, RIP, 80))])
    assert plan_ipvs(IpvsTable(), have, everything) == (DelService(KEY),)


def test_removed_dest() -> None:
    have = IpvsTable.of([Service(KEY)], [Dest(DestKey(KEY, RIP, 80)), Dest(DestKey(KEY, RIP, 81))])
    want = IpvsTable.of([Service(KEY)], [Dest(DestKey(KEY, RIP, 80))])
    assert plan_ipvs(want, have, everything) == (DelDest(DestKey(KEY, RIP, 81)),)


def test_foreign_services_are_never_touched() -> None:
    foreign = ServiceKey.tcp("203.0.113.200", 80)
    owned = Ownership(vip_ranges=(ip_network("203.0.113.0/25"),))
    have = IpvsTable.of([Service(foreign, "rr")], [Dest(DestKey(foreign, RIP, 80))])
    # Not desired: not deleted. Desired with other settings: not edited either.
    assert plan_ipvs(IpvsTable(), have, owned) == ()
    want = IpvsTable.of([Service(foreign, "wrr")], [])
    assert plan_ipvs(want, have, owned) == ()
    assert ownership_conflicts(want, owned) == (foreign,)


def test_state_file_ownership_round_trip(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    from dataplane.ipvs.ownership import parse_service_key, read_state_file, write_state_file
    keys = [KEY, ServiceKey.udp("2001:db8:ff::1", 53), ServiceKey.of_fwmark(7, 6)]
    for key in keys:
        assert parse_service_key(str(key)) == key
    path = Path(str(tmp_path)) / "owned"
    write_state_file(path, keys)
    assert read_state_file(path) == frozenset(keys)
    assert read_state_file(path.with_name("missing")) == frozenset()


@settings(max_examples=100, deadline=None)
@given(desired=tables(), observed=tables())
def test_apply_plan_then_plan_again_yields_nothing(desired: IpvsTable, observed: IpvsTable) -> None:
    kernel = FakeIpvsKernel(observed)
    ops = plan_ipvs(desired, kernel.observe(), everything)
    assert list(ops) == sorted(ops, key=lambda op: op.sort_key())
    result = kernel.apply(ops)
    assert result.failures == ()
    assert kernel.observe() == desired
    assert apply_to_table(observed, ops) == desired
    assert plan_ipvs(desired, kernel.observe(), everything) == ()


@settings(max_examples=100, deadline=None)
@given(desired=tables(), observed=tables(), owned_ports=st.sets(st.sampled_from([53, 80, 443])))
def test_unowned_entries_survive_any_sync(desired: IpvsTable, observed: IpvsTable,
                                          owned_ports: set[int]) -> None:
    def owned(key: ServiceKey) -> bool:
        return key.port in owned_ports

    kernel = FakeIpvsKernel(observed)
    kernel.apply(plan_ipvs(desired, observed, owned))
    after = kernel.observe()
    for key, svc in observed.services.items():
        if not owned(key):
            assert after.services[key] == svc
            assert after.dests_of(key) == observed.dests_of(key)
    assert plan_ipvs(desired, after, owned) == ()


@settings(max_examples=100, deadline=None)
@given(desired=tables())
def test_replaying_a_plan_is_harmless(desired: IpvsTable) -> None:
    """EEXIST/ENOENT are success: applying the same ops twice changes nothing."""
    kernel = FakeIpvsKernel()
    ops = plan_ipvs(desired, IpvsTable(), everything)
    kernel.apply(ops)
    assert kernel.apply(ops).failures == ()
    assert kernel.observe() == desired


def test_forwarder_records_and_forgets_ownership(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    state = Path(str(tmp_path)) / "owned"
    outside = ServiceKey.tcp("192.0.2.50", 80)  # outside every owned range
    fwd = IpvsForwarder(Ownership(), state, FakeIpvsKernel())
    fwd.apply(plan_ipvs(IpvsTable.of([Service(outside)]), fwd.observe(), lambda _k: True))
    assert fwd.owned(outside)
    assert state.read_text() == "tcp:192.0.2.50:80\n"
    # A new forwarder (restart) still owns it, and can delete it.
    again = IpvsForwarder(Ownership(), state, fwd.kernel)
    assert again.sync(IpvsTable()).sent == 1
    assert again.observe() == IpvsTable()
    assert state.read_text() == ""


def test_forwarder_raises_on_hard_failures() -> None:
    fwd = IpvsForwarder(Ownership(vip_ranges=(ip_network("203.0.113.0/24"),)),
                        kernel=FakeIpvsKernel())
    with pytest.raises(IpvsError) as info:
        fwd.apply([AddService(Service(KEY, "nosuch"))])
    assert len(info.value.failures) == 1


@settings(max_examples=50, deadline=None)
@given(first=tables(), second=tables(), foreign=tables())
def test_known_table_tracks_the_kernel_without_dumps(first: IpvsTable, second: IpvsTable,
                                                     foreign: IpvsTable) -> None:
    kernel = FakeIpvsKernel(foreign)
    fwd = IpvsForwarder(Ownership(), kernel=kernel)
    for desired in (first, second):
        fwd.apply(plan_ipvs(desired, fwd.known(), everything))
        assert fwd.known() == kernel.observe()
