"""Network namespaces, veth pairs and bridges that remove themselves.

    with Lab("esx") as lab:                  # every name starts with the prefix
        switch = lab.switch("sw")            # a bridge inside namespace esx-sw
        r1 = lab.host("r1")                  # namespace esx-r1, lo up
        lab.connect(r1, switch, "eth0", ["192.0.2.1/24", "2001:db8::1/64"])
        r1.run("ip", "-br", "addr")
        proc = r1.spawn(["bird", "-f", "-c", conf])  # ended by PID when the lab closes

A Lab removes what it created when the `with` block ends, whatever the reason
(exception, Ctrl-C, test failure), and processes it started die with the
Python process that started them (PR_SET_PDEATHSIG). Only TEST-NET addresses
belong in a lab.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the process that started it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS` on the host."""
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@dataclass
class Namespace:
    """One network namespace of the lab."""

    name: str
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def argv(self, *cmd: str) -> list[str]:
        """Command line that runs `cmd` inside this namespace."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, *cmd: str, check: bool = True, timeout: float = 30.0,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command in the namespace and wait for it."""
        result = subprocess.run(self.argv(*cmd), capture_output=True, text=True,
                                timeout=timeout, input=input_text, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"[{self.name}] {' '.join(cmd)} exited {result.returncode}: "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def spawn(self, cmd: Sequence[str], *, stdout: int | IO[Any] | None = subprocess.DEVNULL,
              stderr: int | IO[Any] | None = subprocess.STDOUT, env: dict[str, str] | None = None,
              cwd: str | Path | None = None, stdin: int | IO[Any] | None = subprocess.DEVNULL,
              ) -> subprocess.Popen[Any]:
        """Start a long-running process in the namespace; the lab ends it by PID."""
        proc = subprocess.Popen(self.argv(*cmd), stdout=stdout, stderr=stderr, stdin=stdin,
                                env=env, cwd=cwd, preexec_fn=_die_with_parent)  # noqa: PLW1509 - needed for PDEATHSIG
        self.processes.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], sig: int = signal.SIGTERM,
             timeout: float = 5.0) -> int | None:
        """Signal one process we started (by PID) and reap it."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc in self.processes:
            self.processes.remove(proc)
        return proc.returncode

    def stop_all(self) -> None:
        """End every process started here, newest first."""
        for proc in reversed(list(self.processes)):
            self.stop(proc, timeout=3.0)

    def sysctl(self, key: str, value: str) -> None:
        """Set a sysctl inside the namespace."""
        self.run("sysctl", "-qw", f"{key}={value}")


class Lab:
    """A set of namespaces that disappears when the lab closes."""

    def __init__(self, prefix: str) -> None:
        if not prefix or len(prefix) > 6 or not prefix.replace("-", "").isalnum():
            raise ValueError("lab prefix: 1-6 letters/digits (keeps interface names short)")
        self.prefix = prefix
        self.namespaces: dict[str, Namespace] = {}
        self._links = 0

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def host(self, name: str) -> Namespace:
        """Create namespace PREFIX-NAME with lo up and IPv6 DAD off (fast tests)."""
        full = f"{self.prefix}-{name}"
        if full in self.namespaces:
            raise ValueError(f"namespace {full} exists in this lab")
        ip("netns", "add", full)
        ns = Namespace(full)
        self.namespaces[full] = ns
        ns.run("ip", "link", "set", "lo", "up")
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0")
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")
        ns.sysctl("net.ipv4.ip_forward", "1")
        ns.sysctl("net.ipv6.conf.all.forwarding", "1")
        return ns

    def switch(self, name: str) -> Namespace:
        """A namespace holding a bridge named `br0`: a switch to connect hosts to."""
        ns = self.host(name)
        ns.run("ip", "link", "add", "br0", "type", "bridge", "stp_state", "0",
               "forward_delay", "0")
        ns.run("ip", "link", "set", "br0", "type", "bridge", "ageing_time", "30000")
        ns.run("ip", "link", "set", "br0", "up")
        return ns

    def connect(self, host: Namespace, switch: Namespace, ifname: str = "eth0",
                addresses: Sequence[str] = (), mac: str | None = None) -> str:
        """veth from `host` (named `ifname`) to `switch`'s br0; returns the switch port name."""
        self._links += 1
        port = f"{self.prefix}p{self._links}"
        tmp = f"{self.prefix}t{self._links}"
        ip("link", "add", tmp, "type", "veth", "peer", "name", port)
        ip("link", "set", tmp, "netns", host.name)
        ip("link", "set", port, "netns", switch.name)
        host.run("ip", "link", "set", tmp, "name", ifname)
        if mac:
            host.run("ip", "link", "set", ifname, "address", mac)
        switch.run("ip", "link", "set", port, "master", "br0")
        switch.run("ip", "link", "set", port, "up")
        for addr in addresses:
            host.run("ip", "addr", "add", addr, "dev", ifname, *(
                ["nodad"] if ":" in addr else []))
        host.run("ip", "link", "set", ifname, "up")
        return port

    def wire(self, a: Namespace, b: Namespace, a_if: str, b_if: str,
             a_addrs: Sequence[str] = (), b_addrs: Sequence[str] = ()) -> None:
        """A point-to-point veth between two hosts."""
        self._links += 1
        ta, tb = f"{self.prefix}a{self._links}", f"{self.prefix}b{self._links}"
        ip("link", "add", ta, "type", "veth", "peer", "name", tb)
        for ns, tmp, name, addrs in ((a, ta, a_if, a_addrs), (b, tb, b_if, b_addrs)):
            ip("link", "set", tmp, "netns", ns.name)
            ns.run("ip", "link", "set", tmp, "name", name)
            for addr in addrs:
                ns.run("ip", "addr", "add", addr, "dev", name, *(["nodad"] if ":" in addr else []))
            ns.run("ip", "link", "set", name, "up")

    def port_down(self, switch: Namespace, port: str) -> None:
        """Cut a switch port (an appliance death drill)."""
        switch.run("ip", "link", "set", port, "down")

    def port_up(self, switch: Namespace, port: str) -> None:
        """Restore a switch port."""
        switch.run("ip", "link", "set", port, "up")

    def close(self) -> None:
        """End every process by PID, then delete every namespace (and its links)."""
        for ns in self.namespaces.values():
            with contextlib.suppress(Exception):
                ns.stop_all()
        for name in reversed(list(self.namespaces)):
            for _ in range(20):
                if ip("netns", "del", name, check=False).returncode == 0:
                    break
                time.sleep(0.05)
        self.namespaces.clear()


def leftover_namespaces(prefix: str) -> list[str]:
    """Namespaces on this machine whose name starts with PREFIX- (for cleanup checks)."""
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines()
            if line.split() and line.split()[0].startswith(f"{prefix}-")]


def require_root() -> bool:
    """True when the lab can run here (root, `ip netns` works)."""
    return os.geteuid() == 0
