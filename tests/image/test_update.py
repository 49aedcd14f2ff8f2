"""A/B updates of the booted image in qemu: v1 -> v2 by HTTP, a broken v3 rolls back.

One appliance, four boots in all (under TCG each costs minutes, so no more): the
image boots v1 from slot A (shared with test_appliance.py when both run in one
session); v2 is applied from an HTTP server in the router namespace and booted
(slot B, counted, marked good by the health gate); a broken v3 (edge-speaker fails
to start), streamed over SSH as a local file would be, is applied to slot A and
booted: the health gate fails, the appliance reboots by itself and systemd-boot,
with no tries left for v3, boots v2 again, which serves.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.image.appliance import APPLIANCE, ROUTER, VIP_NAT, ApplianceLab, http_get, wait_for
from tests.image.conftest import UpdateArtifacts
from tests.vm.netns import in_netns

pytestmark = [pytest.mark.image_update, pytest.mark.vm, pytest.mark.lab, pytest.mark.slow]

HTTP_PORT = 8080
FIGURES: dict[str, float] = {}


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def artifact_server(appliance_lab: ApplianceLab,
                    update_artifacts: UpdateArtifacts) -> Iterator[str]:
    """An HTTP server in the router namespace serving the artifacts; its base URL."""
    handler = partial(QuietFiles, directory=str(update_artifacts.directory))
    server = in_netns(appliance_lab.router.name,
                      lambda: ThreadingHTTPServer((ROUTER, HTTP_PORT), handler))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{ROUTER}:{HTTP_PORT}"
    finally:
        server.shutdown()
        server.server_close()


def update_status(al: ApplianceLab) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(al.appliance.ssh("speaker update status --json"))
    return doc


def wait_serving(al: ApplianceLab, since: float, what: str) -> float:
    """Wait for the VIP at BIRD and an HTTP answer; seconds since ``since``."""
    wait_for(f"the VIP back ({what})", lambda: al.appliance.alive() and al.vip_at_bird(),
             timeout=900, every=1)
    wait_for("HTTP through the VIP", lambda: http_get(al.client.name, VIP_NAT, 80),
             timeout=120, every=0.5)
    took = time.monotonic() - since
    wait_for("ssh", al.appliance.ssh_up, timeout=300, every=2)
    return took


def reboot(al: ApplianceLab) -> float:
    start = time.monotonic()
    al.appliance.ssh("systemctl reboot", check=False, timeout=30)
    wait_for("the VIP gone", lambda: not al.vip_at_bird(), timeout=180)
    return start


@pytest.mark.timeout(1200)
def test_v1_runs_from_slot_a(appliance_lab: ApplianceLab,
                             update_artifacts: UpdateArtifacts) -> None:
    al = appliance_lab
    wait_serving(al, al.powered_on, "first boot")
    doc = update_status(al)
    assert doc["running"]["slot"] == "a"
    assert doc["slots"]["a"]["state"] == "good"
    assert doc["slots"]["b"]["state"] == "empty"
    assert doc["next_boot"]["slot"] == "a"
    assert al.appliance.ssh("findmnt -no FSTYPE /efi").strip() == "vfat"
    status = al.appliance.ssh("speaker status --no-backends", check=False)
    assert "running from slot a" in status, status
    assert "IMAGE_VERSION=" in al.appliance.ssh("cat /etc/os-release")


def test_a_tampered_artifact_is_refused(appliance_lab: ApplianceLab,
                                        update_artifacts: UpdateArtifacts) -> None:
    al = appliance_lab
    with update_artifacts.good.open("rb") as fh:
        head = fh.read(1 << 16)
    tampered = head.replace(b'"2.0.0-test"', b'"2.0.0-evil"')
    assert tampered != head
    argv = al.router.argv("ssh", "-i", str(al.key), "-o", "StrictHostKeyChecking=no",
                          "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                          "-o", "BatchMode=yes", f"root@{APPLIANCE}",
                          "speaker update apply -")
    proc = subprocess.run(argv, input=tampered, capture_output=True, timeout=300, check=False)
    assert proc.returncode == 1, proc
    assert b"signature refused" in proc.stderr, proc.stderr
    assert update_status(al)["slots"]["b"]["state"] == "empty"


@pytest.mark.timeout(1800)
def test_v2_from_http_boots_and_is_marked_good(appliance_lab: ApplianceLab,
                                               update_artifacts: UpdateArtifacts,
                                               artifact_server: str) -> None:
    al = appliance_lab
    start = time.monotonic()
    out = json.loads(al.appliance.ssh(
        f"speaker update apply --json {artifact_server}/good.update.tar", timeout=900))
    FIGURES["apply_http_s"] = time.monotonic() - start
    assert out["slot"] == "b"
    assert out["version"] == update_artifacts.good_version
    doc = update_status(al)
    assert doc["staged"] == {"slot": "b", "version": update_artifacts.good_version}
    assert doc["slots"]["b"]["state"] == "trial"
    assert al.vip_at_bird()  # the running slot keeps serving while the update is written
    since = reboot(al)
    FIGURES["reboot_to_serving_s"] = wait_serving(al, since, "v2")

    def blessed() -> dict[str, Any] | None:
        doc = update_status(al)
        return doc if doc["slots"]["b"]["state"] == "good" else None

    doc = wait_for("slot b marked good", blessed, timeout=600, every=5)
    assert doc["running"] == {"slot": "b", "version": update_artifacts.good_version}
    assert doc["next_boot"]["slot"] == "b"
    gate = al.appliance.ssh("journalctl -b -u edge-speaker-health -o cat --no-pager")
    assert "this boot is good" in gate, gate
    assert al.appliance.ssh("systemctl is-active systemd-bless-boot").strip() == "active"
    status = al.appliance.ssh("speaker status --no-backends", check=False)
    assert f"image {update_artifacts.good_version} running from slot b" in status, status
    print(f"\napply v2 over HTTP {FIGURES['apply_http_s']:.1f} s "
          f"({out['files']['root.sqfs']['size'] >> 20} MiB root), "
          f"reboot -> serving v2 {FIGURES['reboot_to_serving_s']:.1f} s")


@pytest.mark.timeout(2400)
def test_a_broken_v3_rolls_back_to_v2_by_itself(appliance_lab: ApplianceLab,
                                                update_artifacts: UpdateArtifacts) -> None:
    al = appliance_lab
    assert update_status(al)["running"]["slot"] == "b"
    start = time.monotonic()
    argv = al.router.argv("ssh", "-i", str(al.key), "-o", "StrictHostKeyChecking=no",
                          "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                          "-o", "BatchMode=yes", f"root@{APPLIANCE}",
                          "speaker update apply --json -")
    with update_artifacts.broken.open("rb") as fh:
        proc = subprocess.run(argv, stdin=fh, capture_output=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr
    FIGURES["apply_stdin_s"] = time.monotonic() - start
    assert json.loads(proc.stdout)["slot"] == "a"
    assert update_status(al)["staged"] == {"slot": "a",
                                           "version": update_artifacts.broken_version}
    console_before = len(al.appliance.console_text())
    since = reboot(al)
    # nobody touches it from here: v3 boots, its gate fails, it reboots into v2
    wait_for("the health gate's failure on the console",
             lambda: "edge-speaker-health: FAILED" in al.appliance.console_text()[
                 console_before:], timeout=900, every=2)
    FIGURES["rollback_s"] = wait_serving(al, since, "rolled back to v2")
    doc = update_status(al)
    assert doc["running"] == {"slot": "b", "version": update_artifacts.good_version}
    assert doc["slots"]["a"]["state"] == "bad"
    assert doc["slots"]["a"]["version"] == update_artifacts.broken_version
    assert doc["next_boot"]["slot"] == "b"
    console = al.appliance.console_text()[console_before:]
    assert "deliberately broken test image" in console or "edge-speaker-health" in console
    print(f"\napply v3 over ssh stdin {FIGURES['apply_stdin_s']:.1f} s, reboot -> "
          f"rolled back and serving v2 {FIGURES['rollback_s']:.1f} s (two boots)")
