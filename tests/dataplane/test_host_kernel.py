"""Things the host kernel can test: no-IPVS detection, VIP addresses in a namespace."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest

from dataplane.ipvs.detect import IpvsUnavailableError, ipvs_family_id

HAS_IPVS = Path("/proc/net/ip_vs").exists()


@pytest.mark.skipif(HAS_IPVS, reason="this kernel has IPVS")
def test_no_ipvs_gives_a_clear_error() -> None:
    with pytest.raises(IpvsUnavailableError, match=r"ip_vs kernel module") as info:
        ipvs_family_id()
    assert "modprobe ip_vs" in str(info.value)
    assert info.value.__cause__ is None  # no chained netlink traceback


@pytest.mark.skipif(HAS_IPVS, reason="this kernel has IPVS")
def test_kernel_constructor_fails_the_same_way() -> None:
    from dataplane.ipvs.kernel import IpvsKernel

    with pytest.raises(IpvsUnavailableError):
        IpvsKernel()


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root for a network namespace")
    name = f"esv-addr-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_vip_addresses_on_lo(netns: str) -> None:
    from dataplane.addresses import VipAddresses

    subprocess.run(["ip", "-n", netns, "addr", "add", "192.0.2.99/32", "dev", "lo"], check=True)
    vip4, vip6 = ip_address("203.0.113.5"), ip_address("2001:db8:ff::5")
    ranges = (ip_network("203.0.113.0/24"), ip_network("2001:db8:ff::/64"))
    with VipAddresses("lo", ranges, netns=netns) as vips:
        assert vips.list() == frozenset()
        vips.add(vip4)
        vips.add(vip4)  # already there: success
        vips.add(vip6)
        assert vips.list() == {vip4, vip6}
        assert vips.set([vip6, ip_address("203.0.113.6")]) == (
            (ip_address("203.0.113.6"),), (vip4,))
        vips.remove(vip4)  # already gone: success
        with pytest.raises(ValueError, match="not a managed VIP"):
            vips.remove(ip_address("192.0.2.99"))
        assert vips.list() == {vip6, ip_address("203.0.113.6")}
    shown = subprocess.run(["ip", "-n", netns, "addr", "show", "lo"], capture_output=True,
                           text=True, check=True).stdout
    assert "192.0.2.99/32" in shown  # the operator's address is untouched
    assert "127.0.0.1/8" not in shown or "inet 127.0.0.1" in shown
