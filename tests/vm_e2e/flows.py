"""Backends (HTTP + echo) in their namespaces and long-lived client flows through a VIP.

:class:`Backends` serves, per backend namespace, HTTP on port 80 (answers its
name; health checks and spread tests) and a TCP echo on port 9000, each from one
selector thread of the test process; one backend's HTTP can be stopped and
started again (a health change). :class:`Flows` keeps N TCP connections from the
client namespace open, sends a few bytes on each every 100 ms and checks the echo,
recording per connection the longest gap between good echoes and whether it broke.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from tests.vm.netns import connect, listen

HTTP_PORT, ECHO_PORT = 80, 9000


class _Loop:
    """One selector thread: accept on listeners, then serve each connection."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add_listener(self, sock: socket.socket, kind: str, name: str) -> None:
        sock.setblocking(False)
        with self.lock:
            self.sel.register(sock, selectors.EVENT_READ, ("listen", kind, name))

    def remove(self, sock: socket.socket) -> None:
        with self.lock, contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(sock)
        sock.close()

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                events = self.sel.select(timeout=0) if self.sel.get_map() else []
            if not events:
                time.sleep(0.005)
                continue
            for key, _mask in events:
                role, kind, name = key.data
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if role == "listen":
                    try:
                        conn, _ = sock.accept()
                    except OSError:
                        continue
                    conn.setblocking(False)
                    with self.lock:
                        self.sel.register(conn, selectors.EVENT_READ, ("conn", kind, name))
                    continue
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.remove(sock)
                    continue
                try:
                    if kind == "echo":
                        sock.sendall(data)
                    elif b"\r\n\r\n" in data:
                        body = name.encode()
                        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                     % (len(body), body))
                except OSError:
                    self.remove(sock)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()


class Backends:
    """HTTP and echo servers in each backend namespace."""

    def __init__(self, namespaces: tuple[str, ...]) -> None:
        self.namespaces = namespaces
        self.loop = _Loop()
        self.http: dict[int, socket.socket] = {}
        for i, ns in enumerate(namespaces):
            self.start_http(i)
            self.loop.add_listener(listen(ns, "0.0.0.0", ECHO_PORT), "echo", f"be{i}")

    def start_http(self, i: int) -> None:
        sock = listen(self.namespaces[i], "0.0.0.0", HTTP_PORT)
        self.http[i] = sock
        self.loop.add_listener(sock, "http", f"be{i}")

    def stop_http(self, i: int) -> None:
        """Backend i's web server goes away (refused connections: health checks fail)."""
        self.loop.remove(self.http.pop(i))

    def close(self) -> None:
        self.loop.close()


def http_get(ns: str, host: str, source: str | None = None, timeout: float = 5.0) -> str:
    """One request on a new connection; the answering backend's name."""
    sock = connect(ns, host, HTTP_PORT, source, timeout)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1]:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n\r\n", 1)[1].decode()
    finally:
        sock.close()


@dataclass
class FlowReport:
    total: int
    survived: int
    longest_stall: float
    broken_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.survived / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (f"{self.survived}/{self.total} survived ({100 * self.ratio:.1f} %), "
                f"longest stall {self.longest_stall:.2f} s, broken {self.broken_reasons}")


class Flows:
    """N long-lived echo connections; :meth:`report` after a failover."""

    def __init__(self, ns: str, host: str, count: int, source: str | None = None,
                 port: int = ECHO_PORT, interval: float = 0.1, give_up: float = 20.0) -> None:
        self.interval = interval
        self.give_up = give_up
        self.socks: list[socket.socket] = []
        for _ in range(count):
            self.socks.append(connect(ns, host, port, source, timeout=10))
        now = time.monotonic()
        self.last_ok = [now] * count
        self.stall = [0.0] * count
        self.broken: dict[int, str] = {}
        self.pending: dict[int, bytes] = {}
        self.counter = 0
        self.stop = threading.Event()
        for s in self.socks:
            s.setblocking(False)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        bufs = [b""] * len(self.socks)
        next_send = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_send:
                next_send = now + self.interval
                for i, s in enumerate(self.socks):
                    if i in self.broken or i in self.pending:
                        continue
                    self.counter += 1
                    msg = b"%08d" % (self.counter % 10**8)
                    try:
                        s.send(msg)
                        self.pending[i] = msg
                    except BlockingIOError:
                        pass
                    except OSError as exc:
                        self.broken[i] = type(exc).__name__
            for i in list(self.pending):
                s = self.socks[i]
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    data = None
                except OSError as exc:
                    self.broken[i] = type(exc).__name__
                    self.pending.pop(i, None)
                    continue
                if data == b"":
                    self.broken[i] = "closed"
                    self.pending.pop(i, None)
                    continue
                if data:
                    bufs[i] += data
                    want = self.pending[i]
                    if len(bufs[i]) >= len(want):
                        if bufs[i][:len(want)] != want:
                            self.broken[i] = "bad_echo"
                        bufs[i] = bufs[i][len(want):]
                        self.pending.pop(i, None)
                        t = time.monotonic()
                        self.stall[i] = max(self.stall[i], t - self.last_ok[i])
                        self.last_ok[i] = t
            now = time.monotonic()
            for i in range(len(self.socks)):
                if i not in self.broken and now - self.last_ok[i] > self.give_up:
                    self.broken[i] = "timeout"
            time.sleep(0.01)

    def ports(self) -> set[int]:
        """The client-side ports of the connections (to find them in IPVS tables)."""
        return {s.getsockname()[1] for s in self.socks}

    def healthy(self, within: float = 1.0) -> int:
        """Connections that echoed within the last ``within`` seconds."""
        now = time.monotonic()
        return sum(1 for i, t in enumerate(self.last_ok)
                   if i not in self.broken and now - t <= within)

    def report(self) -> FlowReport:
        now = time.monotonic()
        stalls = [max(s, now - self.last_ok[i]) if i in self.broken else s
                  for i, s in enumerate(self.stall)]
        reasons: dict[str, int] = {}
        for why in list(self.broken.values()):
            reasons[why] = reasons.get(why, 0) + 1
        return FlowReport(len(self.socks), len(self.socks) - len(self.broken),
                          max(stalls, default=0.0), reasons)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for s in self.socks:
            s.close()
