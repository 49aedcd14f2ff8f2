"""Real etcd 3.4 (Debian's etcd-server) for the election tests: one member on loopback,
or a three-member cluster in lab namespaces; openssl-made certificates for TLS.

Every process is started here and ended by its PID; data directories live in the
test's tmp_path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Member:
    """One etcd member process."""

    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    argv_prefix: Sequence[str] = ()
    extra: Sequence[str] = ()
    proc: subprocess.Popen[Any] | None = None

    def start(self, cluster: str, state: str = "new") -> None:
        """Start (or restart) the member."""
        log = (self.data_dir.parent / f"{self.name}.log").open("a")
        argv = [*self.argv_prefix, "etcd", "--name", self.name, "--data-dir", str(self.data_dir),
                "--listen-client-urls", self.client_url, "--advertise-client-urls",
                self.client_url, "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url, "--initial-cluster", cluster,
                "--initial-cluster-state", state, "--initial-cluster-token", "eet",
                "--heartbeat-interval", "100", "--election-timeout", "500", *self.extra]
        env = {**os.environ, "ETCD_UNSUPPORTED_ARCH": "amd64"}
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=_die_with_parent)  # noqa: PLW1509
        log.close()

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """End the member by PID and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the member stops answering (a hung server)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after pause()."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


def etcdctl(endpoints: str, *args: str, extra: Sequence[str] = (), prefix: Sequence[str] = (),
            check: bool = True, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    """Run etcdctl (API v3) against `endpoints`."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    return subprocess.run([*prefix, "etcdctl", "--endpoints", endpoints, *extra, *args],
                          capture_output=True, text=True, env=env, check=check, timeout=timeout)


def wait_healthy(endpoints: str, extra: Sequence[str] = (), prefix: Sequence[str] = (),
                 timeout: float = 60) -> None:
    """Wait until a put succeeds (the cluster has a leader and a quorum)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        out = etcdctl(endpoints, "--command-timeout=2s", "put", "/eet-probe", "1",
                      extra=extra, prefix=prefix, check=False)
        if out.returncode == 0:
            return
        last = out.stderr
        time.sleep(0.2)
    raise AssertionError(f"etcd at {endpoints} not healthy: {last}")


def single(tmp: Path, extra: Sequence[str] = (), scheme: str = "http") -> Member:
    """One member on loopback (started; new ports if a port was taken meanwhile)."""
    for attempt in range(3):
        cport, pport = free_port(), free_port()
        m = Member("m1", f"{scheme}://127.0.0.1:{cport}", f"http://127.0.0.1:{pport}",
                   tmp / f"m1-{attempt}.etcd", extra=extra)
        m.start(f"m1={m.peer_url}")
        time.sleep(0.3)
        if m.proc is not None and m.proc.poll() is None:
            return m
        m.stop()
    raise AssertionError(f"etcd would not start; see {tmp}/m1.log")


def make_certs(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and the lab addresses, a client
    certificate, and a second CA with its own client certificate (the 'wrong' one)."""
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    for ca in ("ca", "rogue-ca"):
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
            "-subj", f"/CN=eet {ca}")
    san = "subjectAltName=IP:127.0.0.1,IP:198.51.100.1,IP:198.51.100.2,IP:198.51.100.3"
    (d / "server.ext").write_text(san + "\nextendedKeyUsage=serverAuth,clientAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("rogue", "rogue-ca", "client.ext")):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=eet-{name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext)
    return {n: d / n for n in ("ca.pem", "server.pem", "server.key", "client.pem",
                               "client.key", "rogue.pem", "rogue.key", "rogue-ca.pem")}
