"""The built image boots in qemu (UEFI, TCG) and serves: one boot shared by the tests.

The tests run in file order on one appliance: boot and READY, contents, NAT and
DR traffic, a backend failure, a rejected reload, a planned stop, then a reboot
with a bad config medium (the last good config comes back).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import yaml

from tests.image.appliance import (
    BACKEND_PORT,
    BACKENDS,
    VIP_DR,
    VIP_NAT,
    ApplianceLab,
    http_get,
    make_medium,
    network_yaml,
    wait_for,
)

pytestmark = [pytest.mark.image, pytest.mark.vm, pytest.mark.lab, pytest.mark.slow]


def spread(al: ApplianceLab, vip: str, port: int, n: int = 24) -> Counter[str]:
    return Counter(http_get(al.client.name, vip, port) for _ in range(n))


@pytest.mark.timeout(1200)
def test_boots_to_ready_and_announces_the_vip(appliance_lab: ApplianceLab) -> None:
    al = appliance_lab
    t0 = al.powered_on
    wait_for("the VIP route at BIRD", lambda: al.appliance.alive() and al.vip_at_bird(),
             timeout=600)
    at_bird = time.monotonic() - t0
    wait_for("an HTTP answer through the VIP", lambda: http_get(al.client.name, VIP_NAT, 80),
             timeout=120, every=0.2)
    answered = time.monotonic() - t0
    print(f"\npower-on -> VIP at BIRD {at_bird:.1f} s, -> first HTTP answer {answered:.1f} s")
    wait_for("ssh", al.appliance.ssh_up, timeout=300, every=2)
    show = al.appliance.ssh("systemctl show edge-speaker -p ActiveState -p SubState "
                            "-p StatusText -p Type")
    assert "ActiveState=active" in show, show
    assert "Type=notify" in show
    assert "VIPs announced" in show  # STATUS= from the daemon: it sent READY=1


def test_appliance_contents(appliance_lab: ApplianceLab) -> None:
    ssh = appliance_lab.appliance.ssh
    modules = ssh("cat /proc/modules | cut -d' ' -f1")
    for module in ("ip_vs", "ip_vs_rr", "ip_vs_wlc", "ip_vs_mh", "ip_vs_sh"):
        assert module in modules.split(), module
    assert "TCP  203.0.113.10:80 rr" in ssh("ipvsadm -Ln")
    assert ssh("passwd -S root").split()[1] == "L"  # root locked
    assert ssh("findmnt -no FSTYPE,OPTIONS /").startswith("squashfs ro")
    assert ssh("findmnt -no SOURCE /var").strip().endswith(("vda4", "esdata"))
    assert ssh("systemctl is-active systemd-timesyncd systemd-journald").split() == [
        "active", "active"]
    assert ssh("sysctl -n net.ipv4.ip_forward net.ipv4.vs.expire_nodest_conn").split() == [
        "1", "1"]
    assert ssh("cat /proc/sys/kernel/hostname").strip() == "lb1"  # from network.yaml
    user = ssh("stat -c %U /proc/$(systemctl show -p MainPID --value edge-speaker)")
    assert user.strip() == "edge-speaker"
    exposure = ssh("systemd-analyze security edge-speaker.service | tail -1")
    level = float(exposure.split("level for edge-speaker.service:")[1].split()[0])
    assert level <= 2.0, exposure


def test_nat_spreads_over_every_backend(appliance_lab: ApplianceLab) -> None:
    counts = spread(appliance_lab, VIP_NAT, 80)
    assert set(counts) == set(BACKENDS), counts


def test_dr_spreads_over_every_backend(appliance_lab: ApplianceLab) -> None:
    al = appliance_lab
    wait_for("the DR VIP at BIRD", lambda: al.vip_at_bird(VIP_DR), timeout=60)
    counts = spread(al, VIP_DR, BACKEND_PORT)
    assert set(counts) == set(BACKENDS), counts


def test_a_stopped_backend_gets_no_more_requests(appliance_lab: ApplianceLab) -> None:
    al = appliance_lab
    al.backends[0].stop()
    try:
        def moved() -> bool:
            counts = spread(al, VIP_NAT, 80, 12)
            return set(counts) == set(BACKENDS[1:])

        wait_for("the stopped backend's share to move", moved, timeout=60, every=0.5)
    finally:
        al.backends[0].start()
    wait_for("the backend to come back", lambda: BACKENDS[0] in spread(al, VIP_NAT, 80, 6),
             timeout=60)


def test_reload_with_a_bad_config_keeps_serving(appliance_lab: ApplianceLab) -> None:
    al = appliance_lab
    ssh = al.appliance.ssh
    live = "/etc/edge-speaker/speaker.yaml"
    # the live file is a symlink into the persistent partition (the root is read-only)
    ssh(f"cp {live} /run/good.yaml && sed -i --follow-symlinks "
        f"'s/scheduler: rr/scheduler: random/' {live} && systemctl reload edge-speaker")
    wait_for("the rejection in the journal at priority err", lambda: "config_reload_rejected"
             in ssh("journalctl -u edge-speaker -p err -o cat --no-pager"), timeout=60)
    assert ssh("systemctl is-active edge-speaker").strip() == "active"
    assert "REJECTED" in ssh("systemctl show edge-speaker -p StatusText")
    assert set(spread(al, VIP_NAT, 80)) == set(BACKENDS)
    assert al.vip_at_bird()
    ssh(f"cp /run/good.yaml {live} && systemctl reload edge-speaker")
    wait_for("the good config back", lambda: "REJECTED" not in ssh(
        "systemctl show edge-speaker -p StatusText"), timeout=60)


def test_stop_withdraws_the_route_first(appliance_lab: ApplianceLab) -> None:
    al = appliance_lab
    assert al.vip_at_bird()
    al.appliance.ssh("systemctl stop edge-speaker")
    # Graceful restart is negotiated: had the session just closed, BIRD would keep the
    # route as stale for the 120 s restart time. It goes at once: it was withdrawn.
    wait_for("the route withdrawn", lambda: not al.vip_at_bird(), timeout=15, every=0.2)
    journal = al.appliance.ssh("journalctl -u edge-speaker -o cat --no-pager | tail -40")
    assert "stopped" in journal


@pytest.mark.timeout(900)
def test_reboot_with_a_bad_medium_keeps_the_last_good_config(
        appliance_lab: ApplianceLab) -> None:
    al = appliance_lab
    bad = {"node": {"name": "lb1"}, "services": "nope"}
    make_medium(al.medium, {
        "speaker.yaml": yaml.safe_dump(bad),
        "network.yaml": yaml.safe_dump(network_yaml()),
        "authorized_keys": (al.key.parent / "id_ed25519.pub").read_text(),
    })
    before = len(al.appliance.console_text())
    al.appliance.ssh("systemctl reboot", check=False, timeout=30)
    wait_for("the VIP gone", lambda: not al.vip_at_bird(), timeout=120)
    wait_for("the VIP back after the reboot", lambda: al.appliance.alive() and al.vip_at_bird(),
             timeout=600, every=1)
    wait_for("HTTP through the VIP", lambda: http_get(al.client.name, VIP_NAT, 80),
             timeout=120, every=0.5)
    console = al.appliance.console_text()[before:]
    assert "config medium REJECTED" in console
    assert "speaker.yaml" in console
    wait_for("ssh", al.appliance.ssh_up, timeout=300, every=2)
    errors = al.appliance.ssh("journalctl -b -p err -o cat --no-pager")
    assert "config medium REJECTED" in errors
