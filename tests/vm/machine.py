"""The qemu guest and the lab around it: boot, talk to the agent, wire namespaces.

Topology (all addresses TEST-NET; every namespace name starts with ``esv-``)::

    client ns ──veth── br-front ══ switch ns ══ br-back ──veth── backend ns x3
     192.0.2.10/.11      │ tap-front    tap-back │           198.51.100.11-13
     2001:db8:1::10      │                       │           2001:db8:2::11-13
                   VM eth0 192.0.2.1      VM eth1 198.51.100.1
                   2001:db8:1::1          2001:db8:2::1

The client routes the VIP ranges (203.0.113.0/24, 2001:db8:ff::/64) via the VM.
Backends route by default via the VM (NAT needs the replies to pass the
director), except to 192.0.2.11, the client's "DR source", which they reach over
the client's own leg on br-back (198.51.100.10): direct server return. Backends
carry the whole VIP range on ``lo`` with arp_ignore/arp_announce set, as a DR
real server must.

qemu (TCG, 1 GiB) runs inside the switch namespace, where its taps are, and gets
``PR_SET_PDEATHSIG``: it dies with the test process whatever happens.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.vm.image import REPO, VmImage
from tests.vm.netns import Namespaces, die_with_parent, setns, sh

FRONT_MAC = "52:54:00:e5:00:01"
BACK_MAC = "52:54:00:e5:00:02"
BACKENDS = ("198.51.100.11", "198.51.100.12", "198.51.100.13")
BACKENDS6 = ("2001:db8:2::11", "2001:db8:2::12", "2001:db8:2::13")
CLIENT, CLIENT_DR, CLIENT6 = "192.0.2.10", "192.0.2.11", "2001:db8:1::10"


class GuestError(RuntimeError):
    pass


class Vm:
    """A booted guest; :meth:`run` and :meth:`py` go through the virtio-serial agent."""

    def __init__(self, image: VmImage, workdir: Path, switch_ns: str, taps: tuple[str, str],
                 macs: tuple[str, str] = (FRONT_MAC, BACK_MAC), memory_mb: int = 1024):
        self.workdir = workdir
        self.socket_path = workdir / "agent.sock"
        self.console = workdir / "console.log"
        argv = [
            "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-m", str(memory_mb),
            "-smp", "1", "-nographic", "-no-reboot", "-monitor", "none", "-display", "none",
            "-kernel", str(image.kernel), "-initrd", str(image.initramfs),
            "-append", "console=ttyS0 panic=-1 quiet",
            "-serial", f"file:{self.console}",
            "-virtfs", f"local,path={REPO},mount_tag=project,security_model=none,readonly=on",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=agent,path={self.socket_path},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=agent",
        ]
        for i, (tap, mac) in enumerate(zip(taps, macs, strict=True)):
            argv += ["-netdev", f"tap,id=n{i},ifname={tap},script=no,downscript=no",
                     "-device", f"virtio-net-pci,netdev=n{i},mac={mac}"]

        def preexec() -> None:
            die_with_parent()
            setns(switch_ns)

        # preexec_fn is the only way to prctl/setns the child; the test process does
        # not fork while other threads hold locks at this point.
        with (workdir / "qemu.log").open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=preexec,  # noqa: PLW1509
            )
        self.sock: socket.socket | None = None
        self._buffer = b""
        self._seq = 0

    def wait_ready(self, timeout: float = 120.0, ping_timeout: float = 30.0) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise GuestError(f"qemu exited {self.proc.returncode}: {self.tail()}")
            if "init done" in self._console_text():
                break
            time.sleep(0.2)
        else:
            raise GuestError(f"guest did not boot in {timeout}s: {self.tail()}")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self.socket_path))
        # A ping sent while the agent (re)opens its port can be dropped by qemu: resend.
        deadline = time.monotonic() + ping_timeout
        while True:
            try:
                self.request({"op": "ping"}, timeout=5)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise GuestError(f"agent does not answer: {self.tail()}") from None
        return time.monotonic() - start

    def _console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self) -> str:
        return self._console_text()[-3000:]

    def request(self, req: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        assert self.sock is not None, "guest not ready"
        self._seq += 1
        req = {**req, "id": self._seq}
        self.sock.sendall((json.dumps(req) + "\n").encode())
        self.sock.settimeout(timeout)
        while True:
            while b"\n" not in self._buffer:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise GuestError(f"agent closed the connection: {self.tail()}")
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\n", 1)
            reply: dict[str, Any] = json.loads(line)
            if reply.get("id") == self._seq:
                return reply
            # A late answer to an earlier ping that timed out: skip it.
            assert isinstance(reply.get("id"), int), reply
            assert reply["id"] < self._seq, reply

    def run(self, *argv: str, check: bool = True, timeout: float = 300.0) -> str:
        reply = self.request({"op": "run", "argv": list(argv), "timeout": timeout}, timeout + 5)
        if not reply["ok"] or (check and reply["rc"] != 0):
            raise GuestError(f"{argv}: {reply.get('error') or reply['stderr']}")
        return str(reply["stdout"])

    def sh(self, script: str, check: bool = True) -> str:
        return self.run("sh", "-ec", script, check=check)

    def py(self, code: str, timeout: float = 300.0) -> Any:
        reply = self.request({"op": "py", "code": code}, timeout)
        if not reply["ok"]:
            raise GuestError(reply["error"])
        return reply["result"]

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@dataclass
class Lab:
    vm: Vm
    switch: str
    client: str
    backends: tuple[str, ...]


def _veth(switch: str, ns: str, bridge: str, host_if: str) -> None:
    """A veth pair: ``host_if`` in the switch (on ``bridge``), ``eth-<bridge>`` in ``ns``."""
    sh("ip", "-n", switch, "link", "add", host_if, "type", "veth", "peer", "name", "eth0",
       "netns", ns)
    sh("ip", "-n", switch, "link", "set", host_if, "master", bridge, "up")


def build_lab(image: VmImage, workdir: Path, nss: Namespaces, run_id: str) -> Lab:
    """Create namespaces, bridges, taps, boot the VM and configure everything."""
    switch = nss.add(f"esv-sw-{run_id}")
    client = nss.add(f"esv-cl-{run_id}")
    backends = tuple(nss.add(f"esv-be{i}-{run_id}") for i in range(len(BACKENDS)))
    for bridge in ("br-front", "br-back"):
        sh("ip", "-n", switch, "link", "add", bridge, "type", "bridge", "forward_delay", "0")
        sh("ip", "-n", switch, "link", "set", bridge, "up")
    for tap, bridge in (("tap-front", "br-front"), ("tap-back", "br-back")):
        sh("ip", "-n", switch, "tuntap", "add", "dev", tap, "mode", "tap")
        sh("ip", "-n", switch, "link", "set", tap, "master", bridge, "up")
    # Client: one leg on each bridge (the back leg carries DR replies).
    _veth(switch, client, "br-front", "v-cl")
    sh("ip", "-n", switch, "link", "add", "v-cl-back", "type", "veth", "peer", "name", "eth1",
       "netns", client)
    sh("ip", "-n", switch, "link", "set", "v-cl-back", "master", "br-back", "up")
    for cmd in (
        "addr add 192.0.2.10/24 dev eth0", "addr add 192.0.2.11/24 dev eth0",
        "-6 addr add 2001:db8:1::10/64 dev eth0 nodad", "link set eth0 up",
        "addr add 198.51.100.10/24 dev eth1", "link set eth1 up",
        "route add 203.0.113.0/24 via 192.0.2.1", "-6 route add 2001:db8:ff::/64 via 2001:db8:1::1",
    ):
        sh("ip", "-n", client, *cmd.split())
    for i, ns in enumerate(backends):
        _veth(switch, ns, "br-back", f"v-be{i}")
        for cmd in (
            f"addr add {BACKENDS[i]}/24 dev eth0", f"-6 addr add {BACKENDS6[i]}/64 dev eth0 nodad",
            "link set eth0 up", "route add default via 198.51.100.1",
            "-6 route add default via 2001:db8:2::1",
            "route add 192.0.2.11/32 via 198.51.100.10",
            "addr add 203.0.113.0/24 dev lo",
        ):
            sh("ip", "-n", ns, *cmd.split())
        for key in ("arp_ignore=1", "arp_announce=2"):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv4.conf.all.{key}")
    vm = Vm(image, workdir, switch, ("tap-front", "tap-back"))
    try:
        vm.wait_ready()
        vm.sh(f"""
            front=$(grep -l {FRONT_MAC} /sys/class/net/*/address | cut -d/ -f5)
            back=$(grep -l {BACK_MAC} /sys/class/net/*/address | cut -d/ -f5)
            ip link set "$front" name front; ip link set "$back" name back
            ip addr add 192.0.2.1/24 dev front; ip -6 addr add 2001:db8:1::1/64 dev front nodad
            ip addr add 198.51.100.1/24 dev back; ip -6 addr add 2001:db8:2::1/64 dev back nodad
            ip link set front up; ip link set back up
            sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
        """)
    except BaseException:
        vm.close()
        raise
    return Lab(vm, switch, client, backends)
