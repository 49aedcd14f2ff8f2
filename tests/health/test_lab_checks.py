"""Every check type against real servers in namespaces, one check at a time.

The checker runs on a loop inside namespace esh-lb; servers run inside esh-b1.
Each test asserts the reason a user would see in `speaker status`.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from health.configs import app, service
from health.conftest import CaFiles, HealthLab
from health.servers import DnsServer, HttpServer, TcpListener
from speaker.health import HealthChecker
from speaker.health.hysteresis import BackendState

pytestmark = pytest.mark.lab

B1, B1_V6 = "192.0.2.11", "2001:db8::11"


def one_check(lab: HealthLab, backends: list[dict[str, Any]], health: dict[str, Any],
              ports: list[int] | None = None) -> dict[str, BackendState]:
    """Build a checker and run one check of every backend; states by label."""
    cfg = app(service("svc", backends, health, ports=ports, forwarding="tunnel"))
    checker = HealthChecker(cfg, lambda _: None)
    labels = [cfg.services[0].backend_label(cfg.services[0].backends[i])
              for i in range(len(backends))]
    return {label: lab.lb.call(checker.check_once(("svc", label))) for label in labels}


@pytest.fixture
def http_server(health_lab: HealthLab) -> Iterator[HttpServer]:
    server = HttpServer(None, 8080)  # every address, both families
    health_lab.b1.call(server.start())
    yield server
    health_lab.b1.call(server.stop())


HTTP_FAST = {"type": "http", "interval": 1.0, "timeout": 0.3}


def test_tcp_accepts_refuses_and_unreachable(health_lab: HealthLab) -> None:
    listener = TcpListener(None, 7001)
    health_lab.b1.call(listener.start())
    try:
        states = one_check(health_lab, [
            {"address": B1, "name": "open"}, {"address": B1_V6, "name": "open6"},
            {"address": "192.0.2.12", "name": "closed"},
            {"address": "198.51.100.7", "name": "noroute"},
        ], {"type": "tcp", "interval": 1.0, "timeout": 0.3}, ports=[7001])
    finally:
        health_lab.b1.call(listener.stop())
    assert {k: s.last_reason for k, s in states.items()} == {
        "open": "ok", "open6": "ok", "closed": "refused", "noroute": "unreachable"}
    assert listener.accepted == 2


def test_tcp_send_and_expect(health_lab: HealthLab) -> None:
    listener = TcpListener(B1, 7002, reply=b"PONG\r\n")
    health_lab.b1.call(listener.start())
    try:
        good = one_check(health_lab, [{"address": B1, "name": "b"}], {
            "type": "tcp", "tcp": {"send": r"PING\r\n", "expect": "^PONG"}}, ports=[7002])
        bad = one_check(health_lab, [{"address": B1, "name": "b"}], {
            "type": "tcp", "tcp": {"send": r"HELLO\r\n", "expect": "^PONG"}}, ports=[7002])
    finally:
        health_lab.b1.call(listener.stop())
    assert good["b"].last_reason == "ok"
    assert bad["b"].last_reason == "expect_mismatch"


@pytest.mark.parametrize(("mode", "health", "reasons"), [
    ("ok", {}, {"ok"}),
    ("banner", {}, {"status_400"}),
    ("503", {}, {"status_503"}),
    ("503", {"http": {"expect_status": ["200", "500-503"]}}, {"ok"}),
    ("close", {}, {"closed", "reset"}),
    ("mismatch", {"http": {"body": "healthy"}}, {"body_mismatch"}),
    ("mismatch", {"http": {"body_regex": "^heal"}}, {"body_mismatch"}),
    ("chunked", {"http": {"body": "healthy"}}, {"ok"}),
    ("huge", {}, {"ok"}),
    ("huge", {"http": {"body": "healthy"}}, {"ok"}),
    ("huge", {"http": {"body": "not-there", "max_body_bytes": 100000}}, {"body_mismatch"}),
])
def test_http_modes(health_lab: HealthLab, http_server: HttpServer, mode: str,
                    health: dict[str, Any], reasons: set[str]) -> None:
    http_server.mode = mode
    t0 = time.monotonic()
    state = one_check(health_lab, [{"address": B1, "name": "b"}], HTTP_FAST | health,
                      ports=[8080])["b"]
    elapsed = time.monotonic() - t0
    assert state.last_reason in reasons, state.detail
    assert elapsed < 1.5  # safety net; a 1 GiB body read to the end would time out


def test_http_hang_costs_one_timeout(health_lab: HealthLab, http_server: HttpServer) -> None:
    http_server.mode = "hang"
    state = one_check(health_lab, [{"address": B1, "name": "b"}], HTTP_FAST, ports=[8080])["b"]
    assert state.last_reason == "timeout"
    assert state.latency is not None
    assert 0.3 <= state.latency < 0.3 + 0.5  # one timeout (with a margin for a busy host)


def test_http_sends_method_path_and_host(health_lab: HealthLab,
                                         http_server: HttpServer) -> None:
    one_check(health_lab, [{"address": B1, "name": "b"}, {"address": B1_V6, "name": "b6"}],
              HTTP_FAST | {"http": {"path": "/healthz?full=1", "method": "HEAD"}},
              ports=[8080])
    one_check(health_lab, [{"address": B1, "name": "b"}],
              HTTP_FAST | {"http": {"host": "web.test"}}, ports=[8080])
    seen = [(r["request"], r["host"]) for r in http_server.requests]
    assert seen == [("HEAD /healthz?full=1 HTTP/1.1", "192.0.2.11:8080"),
                    ("HEAD /healthz?full=1 HTTP/1.1", "[2001:db8::11]:8080"),
                    ("GET / HTTP/1.1", "web.test")]


def _server_tls(ca: CaFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ca.cert, ca.key)
    return ctx


@pytest.mark.parametrize(("http", "reason", "sni"), [
    ({"ca_bundle": "CA", "host": "web.test"}, "ok", "web.test"),
    ({"ca_bundle": "CA", "sni": "web.test", "body": "healthy"}, "ok", "web.test"),
    ({"ca_bundle": "CA"}, "ok", None),  # verified against the IP SAN, no SNI for an IP
    ({"ca_bundle": "CA", "host": "other.test"}, "tls_error", "other.test"),
    ({"host": "web.test"}, "tls_error", "web.test"),  # system CAs do not know the test CA
    ({"tls_verify": False, "host": "other.test"}, "ok", "other.test"),
])
def test_https_verifies_with_ca_bundle_and_sends_sni(health_lab: HealthLab, test_ca: CaFiles,
                                                     http: dict[str, Any], reason: str,
                                                     sni: str | None) -> None:
    server = HttpServer(B1, 8443, tls=_server_tls(test_ca))
    health_lab.b1.call(server.start())
    params = {k: (str(test_ca.ca) if v == "CA" else v) for k, v in http.items()}
    try:
        state = one_check(health_lab, [{"address": B1, "name": "b"}],
                          {"type": "https", "interval": 1.0, "timeout": 0.5, "http": params},
                          ports=[8443])["b"]
    finally:
        health_lab.b1.call(server.stop())
    assert state.last_reason == reason, state.detail
    assert server.sni == [sni]


def test_https_against_plain_http_is_a_tls_error(health_lab: HealthLab,
                                                 http_server: HttpServer) -> None:
    http_server.mode = "banner"
    state = one_check(health_lab, [{"address": B1, "name": "b"}],
                      {"type": "https", "interval": 1.0, "timeout": 0.5,
                       "http": {"tls_verify": False}}, ports=[8080])["b"]
    assert state.last_reason == "tls_error", state.detail


@pytest.mark.parametrize(("dns", "mode", "reason"), [
    ({"name": "svc.test", "type": "A"}, "ok", "ok"),
    ({"name": "svc.test", "type": "A", "answer": r"192\.0\.2\.53$"}, "ok", "ok"),
    ({"name": "svc.test", "type": "A", "protocol": "tcp"}, "ok", "ok"),
    ({"name": "svc.test", "type": "A", "answer": r"192\.0\.2\.54$"}, "ok",
     "dns_answer_mismatch"),
    ({"name": "missing.test", "type": "A"}, "ok", "dns_rcode_nxdomain"),
    ({"name": "missing.test", "type": "A", "rcode": "NXDOMAIN"}, "ok", "ok"),
    ({"name": "svc.test", "type": "AAAA"}, "ok", "dns_no_answer"),
    ({"name": "svc.test", "type": "A"}, "servfail", "dns_rcode_servfail"),
])
def test_dns(health_lab: HealthLab, dns: dict[str, Any], mode: str, reason: str) -> None:
    server = DnsServer(B1, 5353, {"svc.test": "192.0.2.53"})
    server.mode = mode
    health_lab.b1.call(server.start())
    try:
        state = one_check(health_lab, [{"address": B1, "name": "b"}],
                          {"type": "dns", "interval": 1.0, "timeout": 0.3, "dns": dns},
                          ports=[5353])["b"]
    finally:
        health_lab.b1.call(server.stop())
    assert state.last_reason == reason, state.detail


def test_dns_without_a_server_fails(health_lab: HealthLab) -> None:
    state = one_check(health_lab, [{"address": B1, "name": "b"}],
                      {"type": "dns", "interval": 1.0, "timeout": 0.3}, ports=[5354])["b"]
    assert state.last_reason in {"refused", "timeout"}


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "check.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_exec_exit_status_env_and_output_cap(health_lab: HealthLab, tmp_path: Path) -> None:
    script = _script(tmp_path, 'test "$BACKEND_ADDRESS:$BACKEND_PORT" = "$1" && exit 0\n'
                               'head -c 100000 /dev/zero | tr "\\0" x; exit 1\n')
    health = {"type": "exec", "interval": 1.0, "timeout": 0.5,
              "exec": {"command": [script, "192.0.2.11:8080"], "max_output_bytes": 50}}
    states = one_check(health_lab, [{"address": B1, "name": "good"},
                                    {"address": "192.0.2.12", "name": "bad"}], health,
                       ports=[8080])
    assert states["good"].last_reason == "ok"
    assert states["bad"].last_reason == "exit_1"
    assert states["bad"].detail == "x" * 50


def test_exec_runs_in_the_checkers_namespace_with_or_without_shell(
        health_lab: HealthLab) -> None:
    plain = {"type": "exec", "interval": 1.0, "timeout": 0.5,
             "exec": {"command": ["ping", "-c1", "-W1", "192.0.2.11"]}}
    shell = {"type": "exec", "interval": 1.0, "timeout": 0.5,
             "exec": {"command": ["ping -c1 -W1 $BACKEND_ADDRESS >/dev/null && exit 3"],
                      "shell": True}}
    assert one_check(health_lab, [{"address": B1, "name": "b"}], plain)["b"].last_reason == "ok"
    assert one_check(health_lab, [{"address": B1, "name": "b"}], shell)["b"].last_reason \
        == "exit_3"


def test_exec_timeout_kills_the_whole_process_group(health_lab: HealthLab,
                                                    tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = _script(tmp_path, f"sleep 30 & echo $! > {pidfile}; wait\n")
    state = one_check(health_lab, [{"address": B1, "name": "b"}],
                      {"type": "exec", "interval": 1.0, "timeout": 0.3,
                       "exec": {"command": [script]}})["b"]
    assert state.last_reason == "timeout"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(f"/proc/{pid}").exists(), "the command's child outlived the timeout"
