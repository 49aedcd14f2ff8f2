"""`speaker probe VIP`: the owner's MAC answers; on the owner nobody else does; a
duplicate owner on the segment is named (real frames, a real kernel answering)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from l2lab import Group, Segment, Vip

from speaker.lab.netns import Lab, leftover_namespaces, require_root

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(not require_root(), reason="needs root and netns")]

VIP4, VIP6 = "192.0.2.100", "2001:db8::100"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Segment]:
    with Lab("esp") as lab:
        yield Segment(lab, tmp_path, ["a1", "a2"])
    assert not leftover_namespaces("esp")


def probe(seg: Segment, name: str, vip: str, *extra: str) -> tuple[int, str]:
    ns = seg.appliances[name].ns if name in seg.appliances else seg.client
    out = ns.run(sys.executable, "-m", "speaker", "probe", vip, "-i", "eth0", "--count", "2",
                 "--wait", "0.5", *extra, check=False, timeout=60)
    return out.returncode, out.stdout + out.stderr


def test_probe_finds_the_owner_and_a_duplicate(pair: Segment) -> None:
    groups = [Group("front", 51, 150), Group("front6", 52, 150)]
    vips = [Vip("web", VIP4, "front"), Vip("web6", VIP6, "front6")]
    a1 = pair.configure("a1", groups, vips)
    a1.start()
    a1.wait_event("vip_owned", vip=VIP4)
    a1.wait_event("vip_owned", vip=VIP6)
    pair.configure("a2", [Group("front", 51, 100), Group("front6", 52, 100)], vips).start()
    pair.appliances["a2"].wait_event("ready")

    for vip in (VIP4, VIP6):
        code, out = probe(pair, "a2", vip)
        assert code == 0, out
        assert f"{a1.mac} answered" in out
        assert "DUPLICATE" not in out
    code, out = probe(pair, "a1", VIP4, "--expect-none")
    assert code == 0, out
    assert "nobody answered (expected on the owner)" in out

    # a host that also has the VIP (a stale keepalived, a typo in a config): named
    pair.client.run("ip", "addr", "add", f"{VIP4}/32", "dev", "eth0")
    try:
        code, out = probe(pair, "a2", VIP4)
        client_mac = pair.client.run("cat", "/sys/class/net/eth0/address").stdout.strip()
        assert code == 4, out
        assert "DUPLICATE: 2 MACs" in out
        assert f"{a1.mac} answered" in out
        assert f"{client_mac} answered" in out
        code, out = probe(pair, "a1", VIP4, "--expect-none")
        assert code == 4, out
    finally:
        pair.client.run("ip", "addr", "del", f"{VIP4}/32", "dev", "eth0", check=False)
