"""Network namespaces for the VM tier: create, run in, open sockets in, always remove.

Every name starts with ``esv-`` plus a per-run suffix so that parallel labs of
other engineers never collide. Sockets are opened *inside* a namespace by a
short-lived thread that ``setns()``-es into it (the socket keeps its namespace
after the thread ends), so tests run clients and HTTP backends in-process
without spawning a process per request.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def run_id() -> str:
    return secrets.token_hex(2)


def sh(*argv: str, check: bool = True) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def setns(name: str) -> None:
    """Move the calling thread into network namespace ``name``."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def die_with_parent() -> None:
    """For ``preexec_fn``: SIGKILL this child when the test process dies."""
    parent = os.getppid()
    _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def in_netns(name: str, func: Callable[[], T]) -> T:
    """Run ``func`` in a fresh thread inside namespace ``name`` and return its result."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            setns(name)
            box["value"] = func()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def connect(ns: str, host: str, port: int, source: str | None = None,
            timeout: float = 5.0) -> socket.socket:
    """A TCP connection made from namespace ``ns``."""
    src = (source, 0) if source else None
    return in_netns(ns, lambda: socket.create_connection((host, port), timeout, src))


def listen(ns: str, host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    def make() -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        return sock

    return in_netns(ns, make)


class Namespaces:
    """A set of namespaces created by one fixture; :meth:`cleanup` removes them all."""

    def __init__(self, prefix: str = "esv-") -> None:
        self.names: list[str] = []
        self.prefix = prefix

    def add(self, name: str) -> str:
        assert name.startswith(self.prefix)
        assert len(name) <= 32
        sh("ip", "netns", "add", name)
        self.names.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def cleanup(self) -> None:
        for name in reversed(self.names):
            for pid in sh("ip", "netns", "pids", name, check=False).split():
                with suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            sh("ip", "netns", "del", name, check=False)
        self.names.clear()


def sweep_stale() -> list[str]:
    """Delete the namespaces of VM labs whose test process was killed (SIGKILL skips
    every cleanup; qemu died with it, so the lab's switch namespace has no process).
    A lab is the group ``esv-*-<run id>``; groups with a live switch are left alone."""
    names = [line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line]
    groups: dict[str, list[str]] = {}
    for name in names:
        if name.startswith("esv-") and name.count("-") == 2:
            groups.setdefault(name.rsplit("-", 1)[1], []).append(name)
    removed = []
    for members in groups.values():
        switch = next((m for m in members if m.startswith(("esv-sw-", "esv-bn-"))), None)
        if switch is None or sh("ip", "netns", "pids", switch, check=False).strip():
            continue
        # A lab being set up has no qemu yet either: leave young ones alone.
        if time.time() - os.stat(f"/run/netns/{switch}").st_mtime < 600:
            continue
        for name in members:
            sh("ip", "netns", "del", name, check=False)
            removed.append(name)
    return removed


@contextmanager
def namespaces(prefix: str = "esv-") -> Iterator[Namespaces]:
    ns = Namespaces(prefix)
    try:
        yield ns
    finally:
        ns.cleanup()
