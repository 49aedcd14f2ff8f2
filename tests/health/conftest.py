"""Fixtures of the health-checker lab: namespaces, loops in them, a test CA."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from health.nsloop import NsLoop
from speaker.lab.netns import Lab, Namespace, leftover_namespaces, require_root

PREFIX = "esh"


@dataclass
class HealthLab:
    """lb (the checker) and backends b1, b2 on one switch; a loop in each namespace."""

    lab: Lab
    switch: Namespace
    b2_port: str
    lb: NsLoop
    b1: NsLoop
    b2: NsLoop


@pytest.fixture(scope="session")
def health_lab() -> Iterator[HealthLab]:
    if not require_root():
        pytest.skip("the lab needs root")
    loops: list[NsLoop] = []
    with Lab(PREFIX) as lab:
        try:
            sw = lab.switch("sw")
            hosts = {}
            for name in ("lb", "b1", "b2"):
                hosts[name] = lab.host(name)
            lab.connect(hosts["lb"], sw, "eth0", ["192.0.2.1/24", "2001:db8::1/64"])
            lab.connect(hosts["b1"], sw, "eth0", ["192.0.2.11/24", "2001:db8::11/64"])
            b2_port = lab.connect(hosts["b2"], sw, "eth0", ["192.0.2.12/24", "2001:db8::12/64"])
            loops.extend(NsLoop(f"{PREFIX}-{name}") for name in ("lb", "b1", "b2"))
            yield HealthLab(lab, sw, b2_port, *loops)
        finally:
            for loop in loops:
                loop.close()
    assert not leftover_namespaces(PREFIX)


@dataclass(frozen=True)
class CaFiles:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CaFiles:
    """A CA made for this run and a server certificate for web.test / 192.0.2.11."""
    d = tmp_path_factory.mktemp("ca")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=edge-speaker test CA", cwd=d)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=web.test", cwd=d)
    (d / "san.ext").write_text("subjectAltName=DNS:web.test,IP:192.0.2.11\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext",
             cwd=d)
    return CaFiles(d / "ca.pem", d / "server.pem", d / "server.key")
