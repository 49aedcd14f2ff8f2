"""The README's main job, as a test: `speaker demo` in the namespace lab."""

from __future__ import annotations

import subprocess
import sys

import pytest

from speaker.lab.netns import Lab, leftover_namespaces

pytestmark = pytest.mark.lab


def test_demo_runs_every_step_and_cleans_up() -> None:
    """READY, status, metrics, quorum withdraw/restore at BIRD, bad reload, SIGTERM."""
    result = subprocess.run([sys.executable, "-m", "speaker", "demo"], capture_output=True,
                            text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for expected in ("reached READY", "(ECMP)", "bgp reason below_quorum",
                     "reload rejected: services[0].scheduler",
                     "speaker_config_last_reload_successful = 0",
                     "lb1 exited 0", "demo passed"):
        assert expected in result.stdout
    assert leftover_namespaces("esd") == []


def test_lab_removes_everything_when_the_body_fails() -> None:
    started = []

    def body() -> None:
        with Lab("est") as lab:
            sw = lab.switch("sw")
            host = lab.host("h1")
            lab.connect(host, sw, "eth0", ["192.0.2.1/24"])
            started.append(host.spawn(["sleep", "60"]))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        body()
    (proc,) = started
    assert leftover_namespaces("est") == []
    assert proc.poll() is not None
