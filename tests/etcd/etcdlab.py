"""The etcd election lab: a three-member etcd cluster (TLS, client certificates) on its
own segment, two appliances running `speaker run` with one leg on the client segment
and one on the etcd segment, a BIRD router and a client on the client segment.

    client segment 192.0.2.0/24     : c .50, r (BIRD, AS 65001) .1, a1 .11, a2 .12
    etcd segment   198.51.100.0/24  : e1 .1, e2 .2, e3 .3, a1 .11, a2 .12

Partitions are blackhole routes in the namespaces (this host has no nft binary).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etcdkit import Member, etcdctl, make_certs, wait_healthy
from l2lab import Appliance

from speaker.lab.netns import Lab, Namespace

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")
ARP_WATCH = str(Path(__file__).resolve().parent / "arp_watch.py")
WEB, API = "192.0.2.100", "192.0.2.101"


def appliance_yaml(name: str, index: int, priorities: dict[str, int], sock: Path,
                   certs: dict[str, Path], *, ttl: int = 2, cert: str = "client") -> str:
    """Config of one appliance: web (L2 + BGP active-backup, group blue), api (L2, green)."""
    groups = ", ".join(f"{{name: {g}, priority: {p}}}" for g, p in priorities.items())
    endpoints = ", ".join(f"https://198.51.100.{i}:2379" for i in (1, 2, 3))
    return f"""
node:
  name: {name}
  router_id: 192.0.2.{index}
  interfaces: [{{name: eth0, role: client}}, {{name: eth1, role: backend}}]
election:
  engine: etcd
  etcd:
    endpoints: [{endpoints}]
    prefix: /eet
    lease_ttl: {ttl}
    tls: {{ca_file: {certs["ca.pem"]}, cert_file: {certs[cert + ".pem"]},
          key_file: {certs[cert + ".key"]}}}
  groups: [{groups}]
bgp:
  local_asn: 65010
  mode: active-backup
  peers: [{{name: r, address: 192.0.2.1, asn: 65001, hold_time: 9}}]
dataplane: {{ipvs: false}}
api: {{socket: {sock}}}
services:
  - {{name: web, vip: "{WEB}", ports: [80], announce: both, group: blue,
     backends: [{{address: 192.0.2.31, port: 8080}}], health: {{type: none}}}}
  - {{name: api, vip: "{API}", ports: [80], announce: l2, group: green,
     backends: [{{address: 192.0.2.31, port: 8080}}], health: {{type: none}}}}
"""


@dataclass
class EtcdLab:
    """Everything of one lab run."""

    lab: Lab
    workdir: Path
    ttl: int = 2

    def __post_init__(self) -> None:
        lab, wd = self.lab, self.workdir
        self.certs = make_certs(wd / "pki")
        self.sw = lab.switch("sw")
        self.es = lab.switch("es")
        self.client = lab.host("c")
        self.client_port = lab.connect(self.client, self.sw, "eth0", ["192.0.2.50/24"])
        self.router_ns = lab.host("r")
        lab.connect(self.router_ns, self.sw, "eth0", ["192.0.2.1/24"])
        self.members: list[Member] = []
        self.member_ns: list[Namespace] = []
        peers = ",".join(f"e{i}=http://198.51.100.{i}:2380" for i in (1, 2, 3))
        self.cluster = peers
        for i in (1, 2, 3):
            ns = lab.host(f"e{i}")
            lab.connect(ns, self.es, "eth0", [f"198.51.100.{i}/24"])
            m = Member(f"e{i}", f"https://198.51.100.{i}:2379", f"http://198.51.100.{i}:2380",
                       wd / f"e{i}.etcd", argv_prefix=["ip", "netns", "exec", ns.name],
                       extra=["--cert-file", str(self.certs["server.pem"]),
                              "--key-file", str(self.certs["server.key"]),
                              "--trusted-ca-file", str(self.certs["ca.pem"]),
                              "--client-cert-auth"])
            self.members.append(m)
            self.member_ns.append(ns)
        for m in self.members:
            m.start(peers)
        self.tls = ["--cacert", str(self.certs["ca.pem"]), "--cert",
                    str(self.certs["client.pem"]), "--key", str(self.certs["client.key"])]
        wait_healthy(self.endpoints, extra=self.tls, prefix=self.ctl_prefix)
        self.appliances: dict[str, Appliance] = {}
        self.etcd_ports: dict[str, str] = {}
        for i, name in ((11, "a1"), (12, "a2")):
            ns = lab.host(name)
            mac = f"02:00:00:00:00:{i:02x}"
            port = lab.connect(ns, self.sw, "eth0", [f"192.0.2.{i}/24"], mac=mac)
            self.etcd_ports[name] = lab.connect(ns, self.es, "eth1", [f"198.51.100.{i}/24"])
            for key, value in (("arp_ignore", "1"), ("arp_announce", "2")):
                ns.sysctl(f"net.ipv4.conf.all.{key}", value)
            d = wd / name
            d.mkdir(parents=True, exist_ok=True)
            self.appliances[name] = Appliance(ns, port, mac, d, d / "speaker.yaml")
        from routers import Bird, Neighbor

        self.bird = Bird(self.router_ns, wd / "bird", 65001, "192.0.2.1",
                         [Neighbor("192.0.2.11", 65010), Neighbor("192.0.2.12", 65010)])
        self.bird.start()

    @property
    def endpoints(self) -> str:
        """etcdctl's --endpoints for the whole cluster."""
        return ",".join(m.client_url for m in self.members)

    @property
    def ctl_prefix(self) -> list[str]:
        """Run etcdctl inside e1's namespace."""
        return ["ip", "netns", "exec", f"{self.lab.prefix}-e1"]

    def etcdctl(self, *args: str, ns: int = 1) -> str:
        """etcdctl against the cluster, run in member `ns`'s namespace."""
        return etcdctl(self.endpoints, "--command-timeout=3s", *args, extra=self.tls,
                       prefix=["ip", "netns", "exec", f"{self.lab.prefix}-e{ns}"],
                       check=False).stdout

    def raft_leader(self) -> str:
        """Client URL of the member that is raft leader now."""
        out = etcdctl(self.endpoints, "endpoint", "status", "-w", "json", extra=self.tls,
                      prefix=self.ctl_prefix).stdout
        for st in json.loads(out):
            if st["Status"]["leader"] == st["Status"]["header"]["member_id"]:
                return str(st["Endpoint"])
        raise AssertionError(f"no raft leader in {out}")

    def configure(self, name: str, priorities: dict[str, int], **kw: Any) -> Appliance:
        """Write appliance `name`'s config."""
        app = self.appliances[name]
        index = 11 if name == "a1" else 12
        app.config.write_text(appliance_yaml(name, index, priorities, app.sock, self.certs,
                                             ttl=self.ttl, **kw))
        return app

    def engine_status(self, name: str) -> dict[str, Any]:
        """The etcd engine's part of `speaker status --json`."""
        doc = self.appliances[name].status()
        return dict(doc["components"]["EtcdElection"])

    def partition(self, name: str) -> None:
        """Cut appliance `name` and member e1 off from e2 and e3 (e1 is then a minority
        of one; `name` still reaches e1 and the client segment)."""
        for ns in (self.appliances[name].ns, self.member_ns[0]):
            for dst in ("198.51.100.2", "198.51.100.3"):
                ns.run("ip", "route", "add", "blackhole", f"{dst}/32")
        for ns in self.member_ns[1:]:
            ns.run("ip", "route", "add", "blackhole", "198.51.100.1/32")
            ns.run("ip", "route", "add", "blackhole",
                   f"198.51.100.{11 if name == 'a1' else 12}/32")

    def heal(self, name: str) -> None:
        """Undo partition()."""
        for ns in (self.appliances[name].ns, self.member_ns[0]):
            for dst in ("198.51.100.2", "198.51.100.3"):
                ns.run("ip", "route", "del", "blackhole", f"{dst}/32", check=False)
        for ns in self.member_ns[1:]:
            ns.run("ip", "route", "del", "blackhole", "198.51.100.1/32", check=False)
            ns.run("ip", "route", "del", "blackhole",
                   f"198.51.100.{11 if name == 'a1' else 12}/32", check=False)

    def death(self, name: str) -> None:
        """Appliance death: both switch ports cut, then its processes killed."""
        app = self.appliances[name]
        self.lab.port_down(self.sw, app.port)
        self.lab.port_down(self.es, self.etcd_ports[name])
        app.kill()

    def revive(self, name: str) -> None:
        """Ports up, speaker started again."""
        app = self.appliances[name]
        self.lab.port_up(self.sw, app.port)
        self.lab.port_up(self.es, self.etcd_ports[name])
        app.start()

    def watch_arp(self, vip: str, seconds: float) -> ArpWatch:
        """Start the ARP observer in the client namespace."""
        return ArpWatch(self, vip, seconds)

    def plain_routes(self) -> set[str]:
        """Next hops whose route to the web VIP is not prepended (the leader's)."""
        text = self.bird.birdc("show", "route", "all", f"{WEB}/32")
        out = set()
        for block in text.split("unicast")[1:]:
            hop = next(iter(re.findall(r"BGP\.next_hop: (\S+)", block)), None)
            path = re.search(r"BGP\.as_path: ([\d ]*)", block)
            if hop and path and path.group(1).split() == ["65010"]:
                out.add(hop)
        return out



class ArpWatch:
    """The wire observer: ARP requests every 10 ms, every reply's time and MAC."""

    def __init__(self, lab: EtcdLab, vip: str, seconds: float) -> None:
        self.stop_file = lab.workdir / f"arp-stop-{time.monotonic_ns()}"
        self.out = lab.workdir / f"arp-{time.monotonic_ns()}.json"
        out = self.out.open("w")
        self.proc = lab.client.spawn([PYTHON, ARP_WATCH, "eth0", vip, str(seconds), "0.01",
                                      str(self.stop_file)], stdout=out)
        out.close()
        self.client = lab.client

    def stop(self) -> list[tuple[float, str]]:
        """End the capture; the replies seen."""
        self.stop_file.write_text("stop")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.client.stop(self.proc, signal.SIGKILL)
        text = self.out.read_text().strip()
        return [(float(t), str(m)) for t, m in json.loads(text)["replies"]] if text else []


def leads(lab: EtcdLab, name: str, group: str) -> bool:
    """`name` leads `group` per its status (False while its API is not up yet)."""
    try:
        return bool(lab.engine_status(name)["groups"][group]["leader"])
    except RuntimeError:
        return False


def settle(lab: EtcdLab, timeout: float = 40) -> None:
    """Wait for the home state: a1 leads blue, a2 leads green, BIRD has a1's plain route."""
    from routers import wait_for

    wait_for(lambda: leads(lab, "a1", "blue") and leads(lab, "a2", "green"), timeout=timeout,
             interval=0.3, what="home leadership")
    wait_for(lambda: lab.plain_routes() == {"192.0.2.11"}, timeout=timeout, interval=0.3,
             what="BIRD: a1's plain route for web")


def owners_timeline(replies: list[tuple[float, str]]) -> tuple[float, float]:
    """(overlap, gap) of the change of owner in `replies`: overlap = how long both MACs
    answered (last reply of the old owner minus first of the new, if positive); gap =
    silence between them. Exactly one change of owner is expected."""
    macs = [m for _, m in replies]
    if not macs:
        raise AssertionError("no ARP reply seen")
    old, new = macs[0], macs[-1]
    if old == new:
        raise AssertionError(f"owner never changed: {set(macs)}")
    last_old = max(t for t, m in replies if m == old)
    first_new = min(t for t, m in replies if m == new)
    return max(0.0, last_old - first_new), max(0.0, first_new - last_old)
