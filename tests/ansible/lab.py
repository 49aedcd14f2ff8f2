"""The lab around two Debian 12 server VMs that ansible-playbook provisions over ssh.

One segment (bridge ``br0`` in the switch namespace), all TEST-NET; every name starts
with ``s3a``::

    controller ns 192.0.2.2 (runs ansible-playbook, ssh to the VMs)
    router ns     192.0.2.1  BIRD 2, AS 65000 ── eth1 198.51.100.1 ── client ns 198.51.100.2
    VM lb1        192.0.2.11 (tap s3at1, qemu TCG, 1 vCPU, 1 GiB)   AS 65010
    VM lb2        192.0.2.12 (tap s3at2)                            AS 65010
    backend ns    192.0.2.21, 192.0.2.22: HTTP on :80, the VIP on lo (direct routing)

The client reaches the VIP 203.0.113.10 only through the router, which learns it by
BGP from the appliances (ECMP) once the router role has pushed the generated config.
Backends answer the client directly through the router (direct routing). The VMs'
only links are their taps on ``br0``: no path leads outside the lab.

qemu runs inside the switch namespace (where the taps are) with ``snapshot=on`` (the
cached disk is never written) and PR_SET_PDEATHSIG, so it dies with the test process.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speaker.lab.netns import Lab, Namespace
from tests.ansible.server_image import ServerImage
from tests.vm.netns import die_with_parent, setns

ROUTER, CONTROLLER = "192.0.2.1", "192.0.2.2"
SERVERS = {"lb1": "192.0.2.11", "lb2": "192.0.2.12"}
BACKENDS = ("192.0.2.21", "192.0.2.22")
CLIENT = "198.51.100.2"
VIP = "203.0.113.10"
ROUTER_ASN, APPLIANCE_ASN = 65000, 65010
BOOTSTRAP_BIRD = f"router id {ROUTER};\nprotocol device {{}}\n"
BACKEND_HTTP = """
import http.server, socket, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        body = (sys.argv[1] + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 256
S(("0.0.0.0", 80), H).serve_forever()
"""


class ServerVm:
    """One qemu guest booted from the cached server disk."""

    def __init__(self, image: ServerImage, workdir: Path, switch: str, name: str,
                 address: str, tap: str, mac: str) -> None:
        self.name, self.address = name, address
        self.console = workdir / f"{name}-console.log"
        argv = [
            "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-m", "1024",
            "-smp", "1", "-nographic", "-no-reboot", "-monitor", "none", "-display", "none",
            "-kernel", str(image.kernel), "-initrd", str(image.initrd),
            "-append", (f"root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 "
                        f"s3a.host={name} s3a.addr=eth0={address}/24 s3a.gw={ROUTER}"),
            "-drive", f"file={image.root},format=raw,if=virtio,snapshot=on",
            "-serial", f"file:{self.console}",
            "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={mac}",
        ]

        def preexec() -> None:
            die_with_parent()
            setns(switch)

        with (workdir / f"{name}-qemu.log").open("wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, preexec_fn=preexec)  # noqa: PLW1509 - PDEATHSIG and setns

    def tail(self) -> str:
        try:
            return self.console.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@dataclass
class AnsibleLab:
    """Everything the tests touch; :meth:`close` removes it."""

    image: ServerImage
    workdir: Path
    lab: Lab
    switch: Namespace
    controller: Namespace
    router: Namespace
    client: Namespace
    backends: list[Namespace]
    bird_socket: Path
    vms: dict[str, ServerVm] = field(default_factory=dict)

    def ssh_argv(self, host: str, *cmd: str) -> list[str]:
        return self.controller.argv(
            "ssh", "-i", str(self.image.key), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=5", "-o", "BatchMode=yes", f"root@{SERVERS[host]}", *cmd)

    def ssh(self, host: str, *cmd: str, check: bool = True,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.ssh_argv(host, *cmd), capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{host}: {' '.join(cmd)}: {result.returncode} "
                               f"{result.stderr.strip()}")
        return result

    def wait_for_ssh(self, timeout: float = 300.0) -> float:
        start = time.monotonic()
        for name, vm in self.vms.items():
            while True:
                if vm.proc.poll() is not None:
                    raise RuntimeError(f"{name}: qemu exited {vm.proc.returncode}: {vm.tail()}")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    if self.ssh(name, "true", check=False, timeout=20).returncode == 0:
                        break
                if time.monotonic() - start > timeout:
                    raise RuntimeError(f"{name}: no ssh after {timeout}s: {vm.tail()}")
                time.sleep(2)
        return time.monotonic() - start

    def birdc(self, *args: str) -> str:
        return self.router.run("birdc", "-s", str(self.bird_socket), *args).stdout

    def http_get(self, timeout: float = 3.0) -> str:
        return self.client.run("curl", "-sS", "--max-time", str(timeout),
                               f"http://{VIP}/", timeout=timeout + 5).stdout

    def close(self) -> None:
        for vm in self.vms.values():
            with contextlib.suppress(Exception):
                vm.close()
        self.lab.close()


def _start_backends(lab: AnsibleLab) -> None:
    for i, ns in enumerate(lab.backends):
        ns.run("ip", "addr", "add", f"{VIP}/32", "dev", "lo")
        ns.sysctl("net.ipv4.conf.all.arp_ignore", "1")
        ns.sysctl("net.ipv4.conf.all.arp_announce", "2")
        ns.run("ip", "route", "add", "default", "via", ROUTER)
        ns.spawn(["python3", "-c", BACKEND_HTTP, f"backend{i + 1}"])


@contextlib.contextmanager
def ansible_lab(image: ServerImage, workdir: Path, prefix: str) -> Iterator[AnsibleLab]:
    """Build the namespaces, start BIRD and the backends, boot both VMs; remove it all."""
    lab = Lab(prefix)
    try:
        switch = lab.switch("sw")
        controller, router = lab.host("ctl"), lab.host("rt")
        client = lab.host("cl")
        backends = [lab.host(f"be{i + 1}") for i in range(len(BACKENDS))]
        lab.connect(controller, switch, "eth0", [f"{CONTROLLER}/24"])
        lab.connect(router, switch, "eth0", [f"{ROUTER}/24"])
        lab.wire(router, client, "eth1", "eth0", ["198.51.100.1/24"], [f"{CLIENT}/24"])
        client.run("ip", "route", "add", "default", "via", "198.51.100.1")
        for ns, address in zip(backends, BACKENDS, strict=True):
            lab.connect(ns, switch, "eth0", [f"{address}/24"])
        bird_dir = workdir / "bird"
        bird_dir.mkdir()
        conf, sock = bird_dir / "bird.conf", bird_dir / "bird.ctl"
        conf.write_text(BOOTSTRAP_BIRD)
        router.spawn(["bird", "-f", "-c", str(conf), "-s", str(sock)])
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("BIRD did not start")
        result = AnsibleLab(image, workdir, lab, switch, controller, router, client, backends,
                            sock)
        _start_backends(result)
        for i, (name, address) in enumerate(SERVERS.items(), start=1):
            tap = f"{prefix}t{i}"
            switch.run("ip", "tuntap", "add", "dev", tap, "mode", "tap")
            switch.run("ip", "link", "set", tap, "master", "br0", "up")
            result.vms[name] = ServerVm(image, workdir, switch.name, name, address, tap,
                                        f"52:54:00:5a:00:{i:02x}")
    except BaseException:
        lab.close()
        raise
    try:
        yield result
    finally:
        result.close()


def inventory(lab: AnsibleLab, wheels: Path, version: str, configs: Path,
              **overrides: Any) -> dict[str, Any]:
    """The inventory of a BGP pair (ECMP) and its BIRD router, as an operator writes it."""
    ssh_args = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    appliance_vars: dict[str, Any] = {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(lab.image.key),
        "ansible_ssh_common_args": ssh_args,
        "ansible_python_interpreter": "/usr/bin/python3",
        "appliance_version": version,
        "appliance_wheels_dir": str(wheels),
        "appliance_apt_update_cache": False,
        "appliance_interfaces": [{"name": "eth0", "role": "both"}],
        "appliance_services": [{
            "name": "web", "vip": VIP, "ports": [80], "announce": "bgp", "scheduler": "mh",
            "forwarding": "dr", "drain_time": "1s",
            "backends": [{"address": b, "port": 80} for b in BACKENDS],
            "health": {"type": "http", "http": {"path": "/"}},
        }],
        "site_appliance_configs_dir": str(configs),
        **overrides,
    }
    return {"all": {"children": {
        "appliances": {
            "vars": appliance_vars,
            "hosts": {name: {
                "ansible_host": address, "appliance_router_id": address,
                # router-config needs each appliance's own address on the peering
                "appliance_bgp": {"local_asn": APPLIANCE_ASN, "pools": ["203.0.113.0/24"],
                                  "peers": [{"name": "r1", "address": ROUTER, "asn": ROUTER_ASN,
                                             "local_address": address, "hold_time": "3s"}]},
            } for name, address in SERVERS.items()},
        },
        "routers": {"hosts": {"r1": {
            "ansible_connection": "local",
            "ansible_become": False,
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "router_vendor": "bird",
            "router_addresses": [ROUTER],
            "router_appliance_configs": [str(configs / f"{n}.yaml") for n in SERVERS],
            "router_bird_config": str(lab.bird_socket.parent / "bird.conf"),
            "router_bird_socket": str(lab.bird_socket),
        }}},
    }}}
