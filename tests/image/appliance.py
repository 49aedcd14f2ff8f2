"""The appliance image in qemu (UEFI/OVMF, TCG) with namespaces around it.

Topology (TEST-NET only; every namespace and link name starts with ``eim``)::

    client ──── router (BIRD, AS 65000) ── br0 ══ switch ns ══ br1 ── backend x3
    198.51.100.130   .129 | 192.0.2.1      │ tap0      tap1 │      198.51.100.11-13
                          | .126 ──────────┼────────────────┘ (DR replies)
                                    appliance front 192.0.2.2   back 198.51.100.1

The appliance (AS 65010) learns its addresses, its routes and its speaker config
from a FAT config medium (label ESCONFIG, a second virtio disk) built here, and
announces the VIPs to BIRD, which installs them in the router's kernel table; the
client reaches the VIPs through the router. Commands inside the appliance go over
SSH (keys on the config medium; the image's sshd is otherwise off).

qemu runs inside the switch namespace (where its taps are) with
``PR_SET_PDEATHSIG``: it dies with the test process whatever happens. The disk is
the built raw image with ``snapshot=on``, so a test never changes the image.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from speaker.lab.bird import BirdNeighbor, BirdRouter, bird_config
from speaker.lab.netns import Lab, Namespace, ip
from tests.vm.netns import die_with_parent, in_netns, setns

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
FRONT_MAC, BACK_MAC = "52:54:00:e1:00:01", "52:54:00:e1:00:02"
APPLIANCE, ROUTER = "192.0.2.2", "192.0.2.1"
CLIENT, ROUTER_CLIENT_SIDE = "198.51.100.130", "198.51.100.129"
ROUTER_BACK_SIDE = "198.51.100.126"
BACKENDS = ("198.51.100.11", "198.51.100.12", "198.51.100.13")
VIP_NAT, VIP_DR = "203.0.113.10", "203.0.113.11"
BACKEND_PORT = 8080


def network_yaml() -> dict[str, Any]:
    return {
        "hostname": "lb1",
        "interfaces": [
            {"name": "front", "mac": FRONT_MAC, "addresses": [f"{APPLIANCE}/24"],
             "gateway": ROUTER},
            {"name": "back", "mac": BACK_MAC, "addresses": ["198.51.100.1/25"]},
        ],
    }


def speaker_yaml(**overrides: Any) -> dict[str, Any]:
    backends = [{"address": b, "port": BACKEND_PORT} for b in BACKENDS]
    health = {"type": "http", "preset": "default", "port": BACKEND_PORT, "http": {"path": "/"}}
    cfg: dict[str, Any] = {
        "node": {"name": "lb1", "router_id": APPLIANCE,
                 "interfaces": [{"name": "front", "role": "client"},
                                {"name": "back", "role": "backend"}]},
        "election": {"engine": "single"},
        "bgp": {"local_asn": 65010, "pools": ["203.0.113.0/24"],
                "peers": [{"name": "r1", "address": ROUTER, "asn": 65000,
                           "local_address": APPLIANCE, "hold_time": "9s",
                           "graceful_restart": {"enabled": True, "restart_time": "120s"}}]},
        "services": [
            {"name": "web", "vip": VIP_NAT, "ports": [80], "announce": "bgp",
             "scheduler": "rr", "forwarding": "nat", "backends": backends, "health": health},
            {"name": "web-dr", "vip": VIP_DR, "ports": [BACKEND_PORT], "announce": "bgp",
             "scheduler": "rr", "forwarding": "dr",
             "backends": [{"address": b} for b in BACKENDS], "health": health},
        ],
    }
    cfg.update(overrides)
    return cfg


def make_medium(path: Path, files: dict[str, str]) -> None:
    """A FAT image labelled ESCONFIG holding ``files`` (what an operator's stick holds).
    An existing image is rewritten in place: a running qemu keeps the file open."""
    fresh = path.with_name(path.name + ".new")
    fresh.unlink(missing_ok=True)
    subprocess.run(["mkfs.vfat", "-n", "ESCONFIG", "-C", str(fresh), "4096"], check=True,
                   capture_output=True)
    with_files = path.parent / "medium-files"
    shutil.rmtree(with_files, ignore_errors=True)
    with_files.mkdir()
    for name, text in files.items():
        (with_files / name).write_text(text)
        subprocess.run(["mcopy", "-o", "-i", str(fresh), str(with_files / name), "::/"],
                       check=True, capture_output=True)
    if path.exists():
        with path.open("r+b") as out:
            out.write(fresh.read_bytes())
            out.truncate()
        fresh.unlink()
    else:
        fresh.rename(path)


class QuietServer(ThreadingHTTPServer):
    """Health checks close connections early: no traceback for that."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class Backend:
    """An HTTP server in a backend namespace that answers with its own address."""

    def __init__(self, ns: Namespace, address: str) -> None:
        self.ns, self.address = ns, address
        self.server: QuietServer | None = None
        self.start()

    def start(self) -> None:
        name = self.address.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(name)))
                self.end_headers()
                self.wfile.write(name)

            def log_message(self, *args: Any) -> None:
                pass

        def make() -> QuietServer:
            return QuietServer(("0.0.0.0", BACKEND_PORT), Handler)

        self.server = in_netns(self.ns.name, make)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def http_get(ns: str, host: str, port: int, timeout: float = 3.0) -> str:
    """One HTTP GET from namespace ``ns``; the body ('' on any failure)."""
    try:
        sock = in_netns(ns, lambda: socket.create_connection((host, port), timeout))
    except OSError:
        return ""
    with sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        except OSError:
            return ""
    return data.partition(b"\r\n\r\n")[2].decode(errors="replace")


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class Appliance:
    """The qemu process booting the image (UEFI, TCG), its console log and SSH."""

    def __init__(self, image: Path, workdir: Path, switch: Namespace, medium: Path,
                 key: Path, router: Namespace) -> None:
        self.workdir, self.key, self.router = workdir, key, router
        self.console = workdir / "console.log"
        vars_fd = workdir / "ovmf-vars.fd"
        shutil.copy2(OVMF_VARS, vars_fd)
        self.argv = [
            "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-m", "1024",
            "-smp", "2", "-display", "none", "-monitor", "none", "-nodefaults",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}",
            # snapshot=on: the guest's writes go to a temporary overlay (they survive a
            # guest reboot, not qemu); the built image is never changed.
            "-drive", f"if=virtio,format=raw,snapshot=on,file={image}",
            "-drive", f"if=virtio,format=raw,file={medium}",
            "-device", "virtio-rng-pci",
            "-serial", f"file:{self.console}",
        ]
        for i, mac in enumerate((FRONT_MAC, BACK_MAC)):
            self.argv += ["-netdev", f"tap,id=n{i},ifname=eimtap{i},script=no,downscript=no",
                          "-device", f"virtio-net-pci,netdev=n{i},mac={mac}"]
        self.switch = switch
        self.proc: subprocess.Popen[bytes] | None = None

    def power_on(self) -> float:
        """Start qemu; returns the monotonic time of power-on."""
        switch = self.switch.name

        def preexec() -> None:
            die_with_parent()
            setns(switch)

        log = (self.workdir / "qemu.log").open("ab")
        # preexec_fn is the only way to prctl/setns the child.
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log, preexec_fn=preexec)  # noqa: PLW1509
        log.close()
        return time.monotonic()

    def console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ssh(self, command: str, check: bool = True, timeout: float = 120.0) -> str:
        argv = ["ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=30", "-o", "BatchMode=yes", f"root@{APPLIANCE}", command]
        proc = subprocess.run(self.router.argv(*argv), capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"ssh {command!r}: rc {proc.returncode}: {proc.stderr}"
                                 f"{proc.stdout}")
        return proc.stdout

    def ssh_up(self) -> bool:
        try:
            return self.ssh("echo ok", check=False, timeout=90).strip() == "ok"
        except subprocess.TimeoutExpired:
            return False

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=30)


@dataclass
class ApplianceLab:
    lab: Lab
    switch: Namespace
    router: Namespace
    client: Namespace
    backends: list[Backend]
    bird: BirdRouter
    appliance: Appliance
    medium: Path
    key: Path

    def vip_routes(self) -> dict[str, list[str]]:
        return self.bird.routes()

    def vip_at_bird(self, vip: str = VIP_NAT) -> bool:
        return f"{vip}/32" in self.vip_routes()


def _bridge_port(lab: Lab, switch: Namespace, bridge: str, host: Namespace, ifname: str,
                 address: str, tag: str) -> None:
    tmp, port = f"{lab.prefix}{tag}x", f"{lab.prefix}{tag}"
    ip("link", "add", tmp, "type", "veth", "peer", "name", port)
    ip("link", "set", tmp, "netns", host.name)
    ip("link", "set", port, "netns", switch.name)
    host.run("ip", "link", "set", tmp, "name", ifname)
    host.run("ip", "addr", "add", address, "dev", ifname)
    host.run("ip", "link", "set", ifname, "up")
    switch.run("ip", "link", "set", port, "master", bridge)
    switch.run("ip", "link", "set", port, "up")


def build_lab(lab: Lab, image: Path, workdir: Path) -> ApplianceLab:
    """Namespaces, bridges, taps, BIRD, backends and the config medium; qemu not started."""
    switch = lab.switch("sw")  # br0: the front segment
    switch.run("ip", "link", "add", "br1", "type", "bridge", "stp_state", "0",
               "forward_delay", "0")
    switch.run("ip", "link", "set", "br1", "up")
    for i, bridge in enumerate(("br0", "br1")):
        switch.run("ip", "tuntap", "add", "dev", f"eimtap{i}", "mode", "tap")
        switch.run("ip", "link", "set", f"eimtap{i}", "master", bridge, "up")
    router, client = lab.host("rt"), lab.host("cl")
    _bridge_port(lab, switch, "br0", router, "eth0", f"{ROUTER}/24", "r")
    # the router's leg on the backend segment carries DR replies (direct server return)
    _bridge_port(lab, switch, "br1", router, "eth2", f"{ROUTER_BACK_SIDE}/25", "d")
    lab.wire(router, client, "eth1", "eth0", [f"{ROUTER_CLIENT_SIDE}/25"], [f"{CLIENT}/25"])
    client.run("ip", "route", "add", "default", "via", ROUTER_CLIENT_SIDE)
    backends = []
    for i, address in enumerate(BACKENDS):
        ns = lab.host(f"be{i}")
        _bridge_port(lab, switch, "br1", ns, "eth0", f"{address}/25", f"b{i}")
        ns.run("ip", "route", "add", "default", "via", "198.51.100.1")
        # replies from the DR VIP skip the director (which drops packets from its own
        # VIP); NAT replies must pass it to be translated back
        ns.run("ip", "rule", "add", "from", VIP_DR, "table", "100")
        ns.run("ip", "route", "add", "default", "via", ROUTER_BACK_SIDE, "table", "100")
        # a DR real server: the VIP on lo, never answered by ARP
        ns.run("ip", "addr", "add", f"{VIP_DR}/32", "dev", "lo")
        ns.sysctl("net.ipv4.conf.all.arp_ignore", "1")
        ns.sysctl("net.ipv4.conf.all.arp_announce", "2")
        backends.append(Backend(ns, address))
    bird = BirdRouter(router, workdir, bird_config(
        ROUTER, 65000, [BirdNeighbor("appliance", APPLIANCE, 65010)]))
    key = workdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    medium = workdir / "medium.img"
    make_medium(medium, {
        "speaker.yaml": yaml.safe_dump(speaker_yaml()),
        "network.yaml": yaml.safe_dump(network_yaml()),
        "authorized_keys": (workdir / "id_ed25519.pub").read_text(),
    })
    appliance = Appliance(image, workdir, switch, medium, key, router)
    return ApplianceLab(lab, switch, router, client, backends, bird, appliance, medium, key)
