"""Two appliance VMs running the real `speaker run` (IPVS on), and the network around them.

Topology (TEST-NET only; every namespace is ``s3e-<role>-<pid>``, see :func:`run_tag`)::

                 router ns (BIRD, AS 65000) 192.0.2.254
                         │
   client ns ── br-front ┼──────────────┬──────────────  (VRRP, ARP for the L2 VIPs)
   192.0.2.10 (DR src)   │ tap-a0        │ tap-b0
   192.0.2.12 (NAT src)  VM a 192.0.2.1  VM b 192.0.2.2   (lb-a prio 150, lb-b prio 100)
                         │ tap-a1        │ tap-b1
   client eth1 ─ br-back ┴──────────────┴────────────── backends 198.51.100.11-13
   198.51.100.10         VM a .1         VM b .2          (IPVS sync multicast here)

Services (each appliance has them all): ``l2dr`` 192.0.2.100 (L2, DR, rr),
``l2nat`` 192.0.2.101 (L2, NAT, wrr), ``bgpdr`` 203.0.113.10 (BGP ECMP, DR, mh with
sloppy TCP). Ports 80 (HTTP, health-checked) and 9000 (echo, for long-lived flows).
DR replies go from the backends straight to the client's back leg; NAT replies go
through lb-a (the backends route the NAT source via 198.51.100.1), so NAT traffic is
tested while lb-a leads. BIRD merges both appliances' routes (ECMP, L4 hash).

Each VM runs `speaker run` under setsid with its log in /tmp/speaker.log; ExaBGP comes
from the image's Python stage through a small wrapper. An appliance "dies" by cutting
both its switch ports and killing its qemu (the DESIGN's drill: a process crash alone
leaves the kernel answering).
"""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.vm.image import VmImage
from tests.vm.machine import GuestError, Vm
from tests.vm.netns import Namespaces, die_with_parent, sh

PREFIX = "s3e-"
BACKENDS = ("198.51.100.11", "198.51.100.12", "198.51.100.13")
CLIENT_DR, CLIENT_NAT, CLIENT_BACK = "192.0.2.10", "192.0.2.12", "198.51.100.10"
ROUTER = "192.0.2.254"
VIP_DR, VIP_NAT, VIP_BGP = "192.0.2.100", "192.0.2.101", "203.0.113.10"
ECHO_PORT = 9000
NODES = {
    "a": {"front": "192.0.2.1", "back": "198.51.100.1", "priority": 150,
          "macs": ("52:54:00:ee:0a:01", "52:54:00:ee:0a:02")},
    "b": {"front": "192.0.2.2", "back": "198.51.100.2", "priority": 100,
          "macs": ("52:54:00:ee:0b:01", "52:54:00:ee:0b:02")},
}
# ExaBGP from the image's Python stage (pip --target writes no usable entry point).
# Its version probe is answered from a file written once at boot: under TCG on a
# loaded machine `exabgp --version` can exceed the speaker's 20 s probe limit.
# The first start waits until the speaker's API listens, plus 10 s: ExaBGP 4.2's start
# costs a TCG guest's only vCPU for a minute or more, and overlapping it with the
# speaker's own start delayed the timing child past its 15 s readiness limit and left
# that appliance's reconciler idle (seen twice; see docs/performance.md). Later
# starts (respawns) do not wait.
EXABGP_WRAPPER = """#!/bin/sh
if [ "$1" = "--version" ] && [ -s /run/exabgp.version ]; then cat /run/exabgp.version; exit 0; fi
if [ "$1" != "--version" ] && [ ! -e /run/exabgp.started ]; then
  touch /run/exabgp.started
  i=0; while [ ! -S /run/edge-speaker/api.sock ] && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done
  sleep 10
fi
exec python3 -c 'import sys; from exabgp.application import run_exabgp; \\
sys.argv[0] = "exabgp"; sys.exit(run_exabgp())' "$@"
"""


def appliance_config(name: str, *, scheduler_nat: str = "wrr", nat_weights: tuple[int, ...] = (
        3, 1, 1), sync: dict[str, Any] | None = None, with_bgp: bool = True) -> dict[str, Any]:
    """The YAML (as a dict) of appliance ``name``; keyword changes are for reloads.

    ``with_bgp`` adds the BGP service and peer (ECMP: both appliances announce the
    VIP, whatever the election says)."""
    node = NODES[name]
    # Generous timers: two TCG guests on a shared 2-core machine stall for seconds.
    health = {"type": "http", "port": 80, "interval": "2s", "timeout": "1.5s",
              "rise": 1, "fall": 3}
    backends = [{"address": a} for a in BACKENDS]
    config: dict[str, Any] = {
        "node": {"name": f"lb-{name}", "router_id": node["front"],
                 "interfaces": [{"name": "front", "role": "client"},
                                {"name": "back", "role": "backend"}]},
        "election": {"engine": "vrrp", "preset": "default", "vrrp": {"interface": "front"},
                     "groups": [{"name": "g1", "vrid": 14, "priority": node["priority"],
                                 "preempt": False}]},
        "bgp": {"local_asn": 65010, "exabgp": "/usr/local/bin/exabgp",
                "pools": ["203.0.113.0/24"], "graceful_shutdown_time": "1s",
                "peers": [{"name": "r1", "address": ROUTER, "asn": 65000, "hold_time": "6s",
                           "families": ["ipv4-unicast"]}]},
        "services": [
            {"name": "l2dr", "vip": VIP_DR, "ports": [80, ECHO_PORT], "announce": "l2",
             "group": "g1", "forwarding": "dr", "scheduler": "rr", "backends": backends,
             "health": health, "drain_time": "2s"},
            {"name": "l2nat", "vip": VIP_NAT, "ports": [80], "announce": "l2", "group": "g1",
             "forwarding": "nat", "scheduler": scheduler_nat,
             "backends": [{"address": a, "weight": w}
                          for a, w in zip(BACKENDS, nat_weights, strict=True)],
             "health": health, "drain_time": "2s"},
            {"name": "bgpdr", "vip": VIP_BGP, "ports": [80, ECHO_PORT], "announce": "bgp",
             "group": "g1", "forwarding": "dr", "scheduler": "mh", "scheduler_flags": ["mh-port"],
             "backends": backends,
             "health": health, "drain_time": "2s"},
        ],
        "dataplane": {"ipvs": True, "state_file": "/var/lib/edge-speaker/ipvs-owned",
                      "sloppy_tcp": True,
                      "sync": sync or {"enabled": True, "interface": "back", "sync_id": 14}},
        "api": {"socket": "/run/edge-speaker/api.sock"},
        "metrics": {"enabled": False},
    }
    if not with_bgp:
        del config["bgp"]
        config["services"] = [s for s in config["services"] if s["announce"] != "bgp"]
    return config


@dataclass
class Appliance:
    name: str
    vm: Vm
    taps: tuple[str, str]
    alive: bool = True

    def write_config(self, config: dict[str, Any]) -> None:
        self.vm.request({"op": "run", "argv": ["sh", "-c",
                                               "mkdir -p /etc/edge-speaker && cat > "
                                               "/etc/edge-speaker/speaker.yaml"],
                         "input": yaml.safe_dump(config)})

    def start_speaker(self) -> None:
        self.vm.sh("setsid python3 -m speaker run -c /etc/edge-speaker/speaker.yaml "
                   "> /tmp/speaker.log 2>&1 < /dev/null &")

    def speaker(self, *args: str, check: bool = True) -> str:
        return self.vm.run("python3", "-m", "speaker", *args, "-c",
                           "/etc/edge-speaker/speaker.yaml", check=check, timeout=60)

    def api(self, command: str, **args: Any) -> Any:
        """One API request through the guest agent (the CLI's Python start-up costs
        seconds under TCG; `speaker drain` itself is run as the CLI where it matters)."""
        return self.vm.py(
            "from pathlib import Path\nfrom speaker.api.client import request\n"
            f"result = request(Path('/run/edge-speaker/api.sock'), {command!r}, timeout=30,"
            f" **{args!r})", timeout=60)

    def ready(self) -> bool:
        try:
            status = self.api("status")
        except Exception:  # not listening yet
            return False
        return bool(status)

    def leader(self) -> bool:
        status = self.api("status")
        groups = status.get("election", {}).get("groups", status.get("election", {}))
        return _is_leader(groups)

    def ipvs(self) -> str:
        return self.vm.run("ipvsadm", "-Ln")

    def log(self) -> str:
        return self.vm.run("tail", "-n", "60", "/tmp/speaker.log", check=False)


@dataclass
class Pair:
    switch: str
    client: str
    router: str
    backends: tuple[str, ...]
    nodes: dict[str, Appliance]
    workdir: Path
    bird: subprocess.Popen[bytes] | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def bird_cmd(self, *args: str) -> str:
        return sh("ip", "netns", "exec", self.router, "birdc", "-s",
                  str(self.workdir / "bird.ctl"), *args)

    def nexthops(self, vip: str) -> set[str]:
        """The next hops of the router's kernel route to ``vip`` (BIRD's merged ECMP
        route: one per announcing appliance; empty when no appliance announces it)."""
        out = sh("ip", "-n", self.router, "route", "show", f"{vip}/32")
        return set(re.findall(r"via ([\d.]+)", out))

    def kill(self, name: str) -> None:
        """Appliance death: its switch ports cut, then its VM (every process) killed."""
        node = self.nodes[name]
        for tap in node.taps:
            sh("ip", "-n", self.switch, "link", "set", tap, "down")
        node.vm.proc.kill()
        node.vm.proc.wait(timeout=30)
        node.alive = False

    def close(self) -> None:
        for node in self.nodes.values():
            node.vm.close()
        if self.bird is not None and self.bird.poll() is None:
            self.bird.kill()
            self.bird.wait(timeout=10)
        for closer in reversed(self.closers):
            closer()


def _is_leader(groups: Any) -> bool:
    if isinstance(groups, dict):
        if "leader" in groups and isinstance(groups["leader"], bool):
            return groups["leader"]
        return any(_is_leader(v) for v in groups.values())
    if isinstance(groups, list):
        return any(_is_leader(v) for v in groups)
    return False


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0,
             every: float = 0.25) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _veth(switch: str, ns: str, bridge: str, host_if: str, peer: str = "eth0") -> None:
    sh("ip", "-n", switch, "link", "add", host_if, "type", "veth", "peer", "name", peer,
       "netns", ns)
    sh("ip", "-n", switch, "link", "set", host_if, "master", bridge, "up")


def _bird_config() -> str:
    peers = "\n".join(textwrap.dedent(f"""
        protocol bgp lb{n} {{
          local {ROUTER} as 65000; neighbor {NODES[n]['front']} as 65010;
          hold time 6; connect retry time 1; error wait time 1, 5;
          ipv4 {{ import all; export none; }};
        }}""") for n in NODES)
    return textwrap.dedent("""
        router id 192.0.2.254;
        protocol device {}
        protocol kernel k4 { ipv4 { export all; import none; }; merge paths on; }
        """) + peers + "\n"


def run_tag() -> str:
    """This run's suffix for namespace names: the test process's PID, so that two
    runs on one machine (CI and an engineer, or two engineers) never collide."""
    return str(os.getpid())


def build_pair(image: VmImage, workdir: Path, nss: Namespaces, run_id: str,
               with_bgp: bool = True, start_speakers: bool = True) -> Pair:
    """Namespaces, bridges, taps, BIRD and two booted, configured appliance VMs.

    ``start_speakers=False`` leaves the guests without `speaker run` (the keepalived
    anchor of bench/conn_survival.py runs keepalived in the same VMs instead)."""
    switch = nss.add(f"{PREFIX}sw-{run_id}")
    client = nss.add(f"{PREFIX}cl-{run_id}")
    router = nss.add(f"{PREFIX}rt-{run_id}")
    backends = tuple(nss.add(f"{PREFIX}be{i}-{run_id}") for i in range(len(BACKENDS)))
    for bridge in ("br-front", "br-back"):
        sh("ip", "-n", switch, "link", "add", bridge, "type", "bridge", "forward_delay", "0")
        sh("ip", "-n", switch, "link", "set", bridge, "up")
    _veth(switch, client, "br-front", "v-cl")
    _veth(switch, client, "br-back", "v-cl-back", "eth1")
    for cmd in (f"addr add {CLIENT_DR}/24 dev eth0", f"addr add {CLIENT_NAT}/24 dev eth0",
                "link set eth0 up", f"addr add {CLIENT_BACK}/24 dev eth1", "link set eth1 up",
                f"route add 203.0.113.0/24 via {ROUTER} src {CLIENT_DR}"):
        sh("ip", "-n", client, *cmd.split())
    _veth(switch, router, "br-front", "v-rt")
    for cmd in (f"addr add {ROUTER}/24 dev eth0", "link set eth0 up"):
        sh("ip", "-n", router, *cmd.split())
    # No ICMP redirects: the router forwards out the interface a packet came in on, and
    # a redirect would send the client straight to one appliance, around the ECMP route.
    for key in ("net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1",
                "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0"):
        sh("ip", "netns", "exec", router, "sysctl", "-qw", key)
    for key in ("net.ipv4.conf.all.accept_redirects=0", "net.ipv4.conf.eth0.accept_redirects=0"):
        sh("ip", "netns", "exec", client, "sysctl", "-qw", key)
    for i, ns in enumerate(backends):
        _veth(switch, ns, "br-back", f"v-be{i}")
        for cmd in (f"addr add {BACKENDS[i]}/24 dev eth0", "link set eth0 up",
                    f"route add default via {CLIENT_BACK}",
                    f"route add {CLIENT_NAT}/32 via {NODES['a']['back']}",
                    f"addr add {VIP_DR}/32 dev lo", f"addr add {VIP_NAT}/32 dev lo",
                    "addr add 203.0.113.0/24 dev lo"):
            sh("ip", "-n", ns, *cmd.split())
        for key in ("arp_ignore=1", "arp_announce=2"):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv4.conf.all.{key}")
    nodes: dict[str, Appliance] = {}
    pair = Pair(switch, client, router, backends, nodes, workdir)
    try:
        (workdir / "bird.conf").write_text(_bird_config())
        with (workdir / "bird.log").open("wb") as log:
            pair.bird = subprocess.Popen(
                ["ip", "netns", "exec", router, "bird", "-f", "-c", str(workdir / "bird.conf"),
                 "-s", str(workdir / "bird.ctl")],
                stdout=log, stderr=log, preexec_fn=die_with_parent,  # noqa: PLW1509
            )
        for name, node in NODES.items():
            taps = (f"tap-{name}0", f"tap-{name}1")
            for tap, bridge in zip(taps, ("br-front", "br-back"), strict=True):
                sh("ip", "-n", switch, "tuntap", "add", "dev", tap, "mode", "tap")
                sh("ip", "-n", switch, "link", "set", tap, "master", bridge, "up")
            vmdir = workdir / name
            vmdir.mkdir()
            vm = Vm(image, vmdir, switch, taps, macs=node["macs"], memory_mb=1024)  # type: ignore[arg-type]
            nodes[name] = Appliance(name, vm, taps)
        for name, appliance in nodes.items():
            t0 = time.monotonic()
            _boot(appliance, image, workdir / name, switch)
            print(f"{name} ready in {time.monotonic() - t0:.1f}s", flush=True)
            _configure_guest(appliance, name, with_bgp)
        for appliance in nodes.values():
            if start_speakers:
                appliance.write_config(appliance_config(appliance.name, with_bgp=with_bgp))
                appliance.start_speaker()
    except BaseException:
        pair.close()
        raise
    return pair


def _boot(appliance: Appliance, image: VmImage, vmdir: Path, switch: str) -> None:
    """Wait for the guest; boot it once more if its kernel panicked in the timer check
    ("IO-APIC + timer doesn't work": TCG on a loaded host can miss the 8254 test)."""
    try:
        appliance.vm.wait_ready(timeout=300, ping_timeout=300)
    except GuestError as exc:
        if "IO-APIC + timer" not in str(exc):
            raise
        print(f"{appliance.name}: kernel timer check failed under load, booting again",
              flush=True)
        appliance.vm.close()
        retry = vmdir / "retry"
        retry.mkdir()
        appliance.vm = Vm(image, retry, switch, appliance.taps,
                          macs=NODES[appliance.name]["macs"], memory_mb=1024)  # type: ignore[arg-type]
        appliance.vm.wait_ready(timeout=300, ping_timeout=300)


def _configure_guest(appliance: Appliance, name: str, with_bgp: bool) -> None:
    node = NODES[name]
    front_mac, back_mac = node["macs"]  # type: ignore[misc]
    appliance.vm.sh(f"""
        front=$(grep -l {front_mac} /sys/class/net/*/address | cut -d/ -f5)
        back=$(grep -l {back_mac} /sys/class/net/*/address | cut -d/ -f5)
        ip link set "$front" name front; ip link set "$back" name back
        ip addr add {node['front']}/24 dev front; ip addr add {node['back']}/24 dev back
        ip link set front up; ip link set back up
        sysctl -qw net.ipv4.ip_forward=1
        for m in ip_vs_rr ip_vs_wrr ip_vs_mh ip_vs_wlc ip_vs_lc nf_conntrack; do modprobe $m; done
        mkdir -p /var/lib/edge-speaker /run/edge-speaker /usr/local/bin
        hostname lb-{name}
    """)
    if not with_bgp:
        return
    appliance.vm.request({"op": "run", "argv": ["sh", "-c",
                                               "cat > /usr/local/bin/exabgp && "
                                               "chmod 755 /usr/local/bin/exabgp"],
                          "input": EXABGP_WRAPPER})
    appliance.vm.sh("/usr/local/bin/exabgp --version > /run/exabgp.version.tmp && "
                    "mv /run/exabgp.version.tmp /run/exabgp.version")
