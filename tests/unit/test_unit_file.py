"""images/systemd/edge-speaker.service: the one unit file, hardened to exposure <= 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "images" / "systemd" / "edge-speaker.service"


def settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_exposure_is_at_most_2() -> None:
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)],
                         capture_output=True, text=True, check=False).stdout
    match = re.search(r"Overall exposure level for edge-speaker.service: (\d+\.\d+)", out)
    assert match, out[-2000:]
    assert float(match.group(1)) <= 2.0, out


def test_notify_watchdog_reload_restart_and_only_network_capabilities() -> None:
    s = settings()
    assert s["Type"] == ["notify"]
    assert s["WatchdogSec"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Restart"] == ["on-failure"]
    assert s["ProtectSystem"] == ["strict"]
    caps = set(s["CapabilityBoundingSet"][0].split())
    assert caps == {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}
    assert s["ExecStart"][0].split()[1:] == ["run", "-c", "/etc/edge-speaker/speaker.yaml"]
