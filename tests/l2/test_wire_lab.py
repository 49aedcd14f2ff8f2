"""On the wire, as a packet capture at the client sees it: VRRP adverts, ARP/NDP
answers (probe, unicast NS, DAD NS, wrong hop limit), and an 802.1Q interface."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from l2lab import Group, Segment, Vip

from speaker.lab.netns import Lab, leftover_namespaces, require_root

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(not require_root(), reason="needs root and netns")]

VIP4, VIP6 = "192.0.2.100", "2001:db8::100"
PROBE = str(Path(__file__).with_name("wire_probe.py"))


@pytest.fixture
def one(tmp_path: Path) -> Iterator[Segment]:
    with Lab("esl") as lab:
        yield Segment(lab, tmp_path, ["a1"])
    assert not leftover_namespaces("esl")


def test_adverts_and_answers_are_valid_on_the_wire(one: Segment) -> None:
    a1 = one.configure("a1", [Group("front", 51, 200), Group("front6", 52, 200)],
                       [Vip("web", VIP4, "front"), Vip("web6", VIP6, "front6")])
    a1.start()
    a1.wait_event("vip_owned", vip=VIP4)
    a1.wait_event("vip_owned", vip=VIP6)
    time.sleep(3.2)  # the takeover's GARP/NA repeats (4 rounds, 1 s apart) are over
    out = one.client.run(sys.executable, PROBE, "eth0", VIP4, VIP6, a1.mac, timeout=60)
    seen = json.loads(out.stdout)
    assert seen["vrrp4"] == {"ttl": 255, "dst": "224.0.0.18", "proto": 112,
                             "src_mac": a1.mac, "checksum_ok": True, "vrid": 51,
                             "priority": 200, "adv_cs": 5, "addrs": [VIP4]}
    v6 = seen["vrrp6"]
    assert (v6["hlim"], v6["dst"], v6["nh"], v6["checksum_ok"], v6["vrid"], v6["addrs"]) == (
        255, "ff02::12", 112, True, 52, [VIP6])
    assert v6["src"].startswith("fe80::")
    # RFC 5227 probe (sender 0.0.0.0) is defended with a reply from the owner.
    client_mac = one.client.run("cat", "/sys/class/net/eth0/address").stdout.strip()
    assert [tuple(r) for r in seen["arp_probe"]] == [(2, a1.mac, VIP4, client_mac)]
    # A request tagged for VLAN 100 reaches eth0 (the kernel strips the tag into
    # metadata); the responder on untagged eth0 must not answer it.
    assert (seen["arp_tagged"], seen["arp_untagged"]) == (0, 1)
    # Unicast NS (neighbour unreachability detection): solicited NA, S=1 O=1 R=0.
    assert [tuple(r) for r in seen["ns_unicast"]] == [(a1.mac, "2001:db8::50", 0, 1, 1, True)]
    # DAD-style NS (source ::): NA to all-nodes with the solicited flag clear.
    assert [tuple(r) for r in seen["ns_dad"]] == [(a1.mac, "ff02::1", 0, 1)]
    assert seen["ns_hlim64"] == 0


def test_vlan_subinterface(one: Segment) -> None:
    a1 = one.appliances["a1"]
    probe = a1.ns.run("ip", "link", "add", "link", "eth0", "name", "vl0", "type", "vlan", "id",
                      "99", check=False)
    if probe.returncode != 0:
        pytest.skip(f"this kernel cannot create 802.1Q interfaces: {probe.stderr.strip()}")
    a1.ns.run("ip", "link", "del", "vl0")
    for ns, addr in ((a1.ns, "198.51.100.11/24"), (one.client, "198.51.100.50/24")):
        ns.run("ip", "link", "add", "link", "eth0", "name", "eth0.100", "type", "vlan",
               "id", "100")
        ns.run("ip", "addr", "add", addr, "dev", "eth0.100")
        ns.run("ip", "link", "set", "eth0.100", "up")
    vip = "198.51.100.100"
    one.configure("a1", [Group("front", 51, 200)], [Vip("web", vip, "front")],
                  interface="eth0.100").start()
    a1.wait_event("vip_owned", vip=vip)
    answers = one.client.run("arping", "-c", "2", "-w", "2", "-I", "eth0.100", vip,
                             check=False).stdout
    assert a1.mac in answers.lower()
    untagged = one.client.run("arping", "-c", "2", "-w", "2", "-I", "eth0", vip,
                              check=False).stdout
    assert "reply from" not in untagged.lower()  # neither our responder nor a1's kernel
    assert a1.status()["sysctls"]["mismatches"] == []
    assert a1.ns.run("sysctl", "-n", "net.ipv4.conf.eth0.arp_ignore").stdout.strip() == "1"
