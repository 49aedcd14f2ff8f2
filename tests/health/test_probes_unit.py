"""Pure parts of the probes: payload escapes, request bytes, response judging."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from health.configs import app, service
from speaker.config.health import HttpParams
from speaker.health.outcome import CheckFailedError
from speaker.health.probes.http import _Reader, build_request, judge_response
from speaker.health.probes.tcp import decode_payload
from speaker.health.targets import targets_from_config


@pytest.mark.parametrize(("text", "wire"), [
    (r"PING\r\n", b"PING\r\n"),
    (r"a\tb\0c", b"a\tb\0c"),
    (r"\x41\x7f", b"A\x7f"),
    (r"back\\slash\\r", b"back\\slash\\r"),
    ("plain", b"plain"),
])
def test_tcp_send_escapes(text: str, wire: bytes) -> None:
    assert decode_payload(text) == wire


def _target(address: str, port: int, kind: str, **http: Any) -> Any:
    health: dict[str, Any] = {"type": kind}
    if http:
        health["http"] = http
    cfg = app(service("s", [{"address": address, "port": port}], health,
                      vip="2001:db8::10" if ":" in address else "203.0.113.10"))
    return next(iter(targets_from_config(cfg).values()))


def test_request_host_header_defaults() -> None:
    plain80 = build_request(_target("192.0.2.11", 80, "http"), HttpParams())
    assert plain80.startswith(b"GET / HTTP/1.1\r\nHost: 192.0.2.11\r\n")
    v6 = build_request(_target("2001:db8::11", 8443, "https"), HttpParams())
    assert b"\r\nHost: [2001:db8::11]:8443\r\n" in v6
    tls443 = build_request(_target("192.0.2.11", 443, "https"), HttpParams())
    assert b"\r\nHost: 192.0.2.11\r\n" in tls443
    named = build_request(_target("192.0.2.11", 80, "http"),
                          HttpParams(host="web.test", method="POST"))
    assert b"\r\nHost: web.test\r\n" in named
    assert named.endswith(b"Content-Length: 0\r\n\r\n")


def _judge(raw: bytes, params: HttpParams, chunk: int = 7) -> str:
    data = [raw[i:i + chunk] for i in range(0, len(raw), chunk)]

    async def recv(_: int) -> bytes:
        return data.pop(0) if data else b""

    async def go() -> str:
        try:
            return (await judge_response(_Reader(recv), params)).reason
        except CheckFailedError as exc:
            return exc.reason
        except EOFError:
            return "closed"
    return asyncio.run(go())


@pytest.mark.parametrize(("raw", "params", "reason"), [
    (b"HTTP/1.1 204 No Content\r\n\r\n", HttpParams(), "ok"),
    (b"HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n", HttpParams(expect_status=["200"]),
     "status_302"),
    (b"SSH-2.0-OpenSSH\r\n", HttpParams(), "bad_response"),
    (b"HTTP/1.1 200 OK\r\n", HttpParams(body="x"), "closed"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA", HttpParams(body="EXTRA"),
     "body_mismatch"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n"
     b"0\r\n\r\n", HttpParams(body_regex="^hello world$"), "ok"),
    (b"HTTP/1.1 200 OK\r\n\r\n" + b"a" * 100 + b"needle", HttpParams(
        body="needle", max_body_bytes=100), "body_mismatch"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", HttpParams(body="x"),
     "bad_response"),
])
def test_judge_response(raw: bytes, params: HttpParams, reason: str) -> None:
    assert _judge(raw, params) == reason
