"""`speaker run` on every example and on a few hundred accepted variants: never a
traceback, never a non-zero exit for something `config check` could have caught.

Per example, one daemon runs in a lab namespace (interfaces eth0/eth1, no IPVS:
announce-only) and is reloaded through variants of that example (mutations in
tests/lab/variants.py; only the ones `config check` accepts); every 25th variant is
also started fresh (SIGTERM the running daemon: exit 0; `speaker run` the variant).
A reload must be accepted or rejected only with `restart_required: <path>`; the
daemon must stay up; its log must hold no traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from speaker.api.client import ApiError, request
from speaker.lab.netns import Lab, Namespace, leftover_namespaces, require_root
from tests.lab.variants import accepted, for_this_host, variants

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.skipif(not require_root(), reason="needs root")]
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").rglob("*.yaml"))
PER_EXAMPLE = int(os.environ.get("SPEAKER_VARIANTS", "50"))
FRESH_EVERY = 25


@pytest.fixture(scope="module")
def host() -> Iterator[Namespace]:
    with Lab("erv") as lab:
        sw = lab.switch("sw")
        ns = lab.host("lb")
        lab.connect(ns, sw, "eth0", ["192.0.2.10/24", "2001:db8::10/64"])
        lab.connect(ns, sw, "eth1", ["198.51.100.10/24"])
        yield ns
    assert leftover_namespaces("erv") == []


class Daemon:
    """One `speaker run` in the namespace, its log collected."""

    def __init__(self, ns: Namespace, workdir: Path, config: Path) -> None:
        self.ns, self.workdir, self.config = ns, workdir, config
        self.socket = workdir / "api.sock"
        self.log = workdir / "speaker.log"
        with self.log.open("ab") as log:
            self.proc = ns.spawn([sys.executable, "-m", "speaker", "run", "-c", str(config),
                                  "--runtime-dir", str(workdir / "run")],
                                 stdout=log, stderr=log)
        deadline = time.monotonic() + 120  # a loaded 2-core CI machine
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.tail()
            try:
                request(self.socket, "ping", timeout=2)
                return
            except ApiError:
                time.sleep(0.05)
        raise AssertionError("daemon never answered\n" + self.tail())

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def reload(self) -> dict[str, Any]:
        result: dict[str, Any] = request(self.socket, "reload", timeout=60)
        return result

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def test_run_examples_and_variants(host: Namespace, tmp_path: Path) -> None:
    checked = started = reloads = 0
    began = time.monotonic()
    rejected: list[str] = []
    for index, example in enumerate(EXAMPLES):
        base = for_this_host(yaml.safe_load(example.read_text()), tmp_path)
        config = tmp_path / "speaker.yaml"
        assert accepted(base, config), example
        t0 = time.monotonic()
        daemon = Daemon(host, tmp_path, config)
        if os.environ.get("SPEAKER_VARIANTS_DEBUG"):
            print(f"start {time.monotonic() - t0:.2f}s")
        started += 1
        scratch = tmp_path / "scratch.yaml"
        for n, variant in enumerate(variants(base, PER_EXAMPLE, seed=index, scratch=scratch)):
            checked += 1
            config.write_text(yaml.safe_dump(variant, sort_keys=False))
            if n % FRESH_EVERY == FRESH_EVERY - 1:
                assert daemon.stop() == 0, daemon.tail()
                daemon = Daemon(host, tmp_path, config)
                started += 1
                continue
            t0 = time.monotonic()
            result = daemon.reload()
            if os.environ.get("SPEAKER_VARIANTS_DEBUG"):
                print(f"reload {time.monotonic() - t0:.2f}s {result['changes'][:4]}")
            reloads += 1
            if not result["ok"]:
                assert all(e.startswith("restart_required: ") for e in result["errors"]), (
                    result, yaml.safe_dump(variant))
                rejected += result["errors"]
            assert daemon.proc.poll() is None, daemon.tail()
        status = request(daemon.socket, "status")
        assert status["node"], status
        assert daemon.stop() == 0, daemon.tail()
        log = daemon.log.read_text(errors="replace")
        assert "Traceback" not in log, log[-6000:]
        daemon.log.unlink()
    print(f"examples {len(EXAMPLES)}, variants {checked}, fresh starts {started}, "
          f"reloads {reloads}, restart_required {len(rejected)}, "
          f"{time.monotonic() - began:.0f}s")
    assert checked >= len(EXAMPLES) * PER_EXAMPLE * 0.8
