"""Real HTTP through the guest: backends in their namespaces, a client in its own.

Each backend is a small HTTP/1.1 server (keep-alive) answering with its own name,
served by a thread of the test process from a socket opened inside the backend's
namespace. The client opens its connections inside the client namespace the
same way, so one request costs a TCP handshake through IPVS and nothing more.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.vm.netns import connect, listen


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.server.backend_name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@contextmanager
def http_backends(namespaces: tuple[str, ...], port: int = 80) -> Iterator[list[str]]:
    """Serve HTTP in each namespace (dual-stack ``[::]:port``); yield the backend names."""
    servers = []
    try:
        for i, ns in enumerate(namespaces):
            server = _Server(("::", port), _Handler, bind_and_activate=False)
            server.socket.close()
            server.socket = listen(ns, "::", port)
            server.backend_name = f"be{i}"  # type: ignore[attr-defined]
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            servers.append(server)
        yield [f"be{i}" for i in range(len(namespaces))]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


class HttpConnection:
    """One keep-alive HTTP connection from the client namespace."""

    def __init__(self, ns: str, host: str, port: int = 80, source: str | None = None) -> None:
        self.sock = connect(ns, host, port, source)
        self.reader = self.sock.makefile("rb")

    def get(self) -> str:
        """GET / and return the body (the backend's name)."""
        self.sock.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
        length = 0
        status = self.reader.readline()
        if not status.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(f"bad status line {status!r}")
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return self.reader.read(length).decode()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def spread(ns: str, host: str, count: int, port: int = 80,
           source: str | None = None) -> collections.Counter[str]:
    """Make ``count`` requests, each on a new connection; count answers per backend."""
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(count):
        conn = HttpConnection(ns, host, port, source)
        try:
            seen[conn.get()] += 1
        finally:
            conn.close()
    return seen


def can_connect(ns: str, host: str, port: int = 80, timeout: float = 1.0) -> bool:
    try:
        connect(ns, host, port, timeout=timeout).close()
    except OSError:
        return False
    return True


__all__ = ["HttpConnection", "can_connect", "http_backends", "spread"]
