"""Metrics over TLS with basic auth from an exporter-toolkit web config file: a real
Prometheus scrapes it (loopback only), a client without credentials or without TLS
gets nothing, a changed file applies without a restart, a bad file is refused by
`config check` with its field path."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter

from speaker.api.metrics_http import MetricsServer
from speaker.api.webconfig import WebConfigWatcher
from speaker.config import ConfigError, load_config

needs_tools = pytest.mark.skipif(shutil.which("openssl") is None
                                 or shutil.which("prometheus") is None,
                                 reason="openssl and prometheus (Debian packages) needed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certs(tmp: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")


def write_web(tmp: Path, users: dict[str, str]) -> Path:
    path = tmp / "web.yml"
    doc = {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
           "basic_auth_users": {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()
                                for u, p in users.items()}}
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    make_certs(tmp_path)
    web = write_web(tmp_path, {"prom": "s3cret"})
    registry = CollectorRegistry()
    Counter("etls_scrapes", "things", registry=registry).inc()
    port = free_port()
    loop = asyncio.new_event_loop()
    server = MetricsServer(registry, "127.0.0.1", port, web=WebConfigWatcher(web))
    loop.run_until_complete(server.start())
    task = loop.create_task(server.run())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port, tmp_path
    finally:
        loop.call_soon_threadsafe(task.cancel)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def get(port: Path | int, tmp: Path, auth: tuple[str, str] | None) -> int:
    ctx = ssl.create_default_context(cafile=str(tmp / "ca.crt"))
    request = urllib.request.Request(f"https://127.0.0.1:{port}/metrics")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=10) as response:  # noqa: S310
            body = response.read()
            assert b"etls_scrapes_total 1.0" in body
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@needs_tools
def test_tls_and_basic_auth_guard_the_metrics(endpoint: tuple[int, Path]) -> None:
    port, tmp = endpoint
    assert get(port, tmp, ("prom", "s3cret")) == 200
    assert get(port, tmp, None) == 401
    assert get(port, tmp, ("prom", "wrong")) == 401
    assert get(port, tmp, ("nobody", "s3cret")) == 401
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP: nothing
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    # a changed file applies to the next connection, no restart
    time.sleep(0.01)
    write_web(tmp, {"prom2": "other"})
    assert get(port, tmp, ("prom2", "other")) == 200
    assert get(port, tmp, ("prom", "s3cret")) == 401


@needs_tools
def test_a_real_prometheus_scrapes_over_tls_with_basic_auth(endpoint: tuple[int, Path]) -> None:
    port, tmp = endpoint
    prom_port = free_port()
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{
            "job_name": "edge-speaker", "scheme": "https",
            "tls_config": {"ca_file": str(tmp / "ca.crt")},
            "basic_auth": {"username": "prom", "password": "s3cret"},
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}))
    proc = subprocess.Popen(["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{prom_port}/api/v1/targets", timeout=2) as r:
                    targets = json.load(r)["data"]["activeTargets"]
                health = targets[0]["health"] if targets else None
                if health == "up":
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        assert health == "up", f"prometheus says the target is {health}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_bad_web_config_is_refused_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "web.yml"
    bad.write_text("basic_auth_users:\n  prom: plaintext\n")
    cfg = tmp_path / "speaker.yaml"
    cfg.write_text(yaml.safe_dump({"node": {"name": "lb1", "router_id": "192.0.2.10",
                                            "interfaces": [{"name": "eth0"}]},
                                   "metrics": {"web_config_file": str(bad)}}))
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    text = "\n".join(str(i) for i in err.value.issues)
    assert "metrics.web_config_file" in text
    assert "basic_auth_users.prom: expected a bcrypt hash" in text
    bad.write_text("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n"
                   "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    text = "\n".join(str(i) for i in err.value.issues)
    assert "tls_server_config.cipher_suites: not supported here" in text
