"""Lab kit for L2 failover tests and benchmarks: appliances running `speaker run`,
keepalived peers, a client that pings the VIP every 10 ms and reads its neighbour table.

Used by tests/l2 and tests/election (lab tests) and by bench/l2_*.py and
bench/failover_*.py. Every name starts with the lab prefix; every process is
started through the Lab (ended by PID, dies with its parent).
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speaker.lab.netns import Lab, Namespace

REPO = Path(__file__).resolve().parents[2]
SPEAKER = str(REPO / ".venv" / "bin" / "speaker")


@dataclass
class Group:
    """One election group in a generated config."""

    name: str
    vrid: int
    priority: int
    preempt: bool = True
    preempt_delay: float | None = None
    advert_interval: float | None = None


@dataclass
class Vip:
    """One L2 service in a generated config."""

    name: str
    address: str
    group: str


def appliance_yaml(name: str, router_id: str, groups: Sequence[Group], vips: Sequence[Vip],
                   sock: Path, *, engine: str = "vrrp", preset: str = "fast",
                   unicast_peers: Sequence[str] = (), interface: str = "eth0",
                   uplink: str | None = None, peers: Sequence[str] = ()) -> str:
    """Config text of one appliance (IPVS off: the lab kernel has none). `uplink`: an
    extra interface that self-checks watch (down: priority penalty 50)."""
    extra_if = f", {{name: {uplink}, role: backend}}" if uplink else ""
    lines = [
        "node:", f"  name: {name}", f"  router_id: {router_id}",
        f"  interfaces: [{{name: {interface}, role: client}}{extra_if}]",
        *([f"  self_checks: {{uplinks: [{uplink}], priority_penalty: 50}}"] if uplink else []),
        "election:", f"  engine: {engine}", f"  preset: {preset}",
        f"  vrrp: {{interface: {interface}, unicast_peers: [{', '.join(unicast_peers)}]"
        + (f", peers: [{', '.join(peers)}]" if peers else "") + "}",
        "  groups:",
    ]
    for g in groups:
        extra = f", preempt_delay: {g.preempt_delay}" if g.preempt_delay is not None else ""
        if g.advert_interval is not None:
            extra += f", advert_interval: {g.advert_interval}"
        lines.append(f"    - {{name: {g.name}, vrid: {g.vrid}, priority: {g.priority}, "
                     f"preempt: {str(g.preempt).lower()}{extra}}}")
    lines += ["dataplane: {ipvs: false}", f"api: {{socket: {sock}}}", "services:"]
    for v in vips:
        backend = "192.0.2.31" if ":" not in v.address else "2001:db8::31"
        lines += [f"  - name: {v.name}", f"    vip: \"{v.address}\"", "    ports: [80]",
                  "    announce: l2", f"    group: {v.group}",
                  f"    backends: [{{address: \"{backend}\", port: 8080}}]",
                  "    health: {type: none}"]
    return "\n".join(lines) + "\n"


@dataclass
class Appliance:
    """One appliance namespace running `speaker run`."""

    ns: Namespace
    port: str
    mac: str
    workdir: Path
    config: Path
    proc: subprocess.Popen[Any] | None = None
    log_offset: int = 0
    extra: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.ns.name

    @property
    def log(self) -> Path:
        return self.workdir / "speaker.log"

    @property
    def sock(self) -> Path:
        return self.workdir / "api.sock"

    def start(self) -> None:
        """Start `speaker run` (log appended to speaker.log)."""
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        out = self.log.open("a")
        self.proc = self.ns.spawn([SPEAKER, "run", "-c", str(self.config), "--runtime-dir",
                                   str(self.workdir / "run")], stdout=out)
        out.close()

    def mark(self) -> None:
        """Later `events()`/`wait_event()` only see what is logged from now on."""
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the speaker (kill -9 by default) and reap it."""
        if self.proc is not None:
            self.ns.stop(self.proc, sig)
            self.proc = None

    def events(self) -> list[dict[str, str]]:
        """Parsed logfmt events written since the last start()."""
        text = self.log.read_text()[self.log_offset:] if self.log.exists() else ""
        return [{k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', line)}
                for line in text.splitlines()]

    def wait_event(self, event: str, timeout: float = 20.0, **fields: str) -> dict[str, str]:
        """Wait until the log shows `event` with these fields. (20 s: a start-up now runs
        two interpreters, the supervisor and the timing child; on the shared CI machine
        that alone has taken over 10 s.)"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events():
                if e.get("event") == event and all(e.get(k) == v for k, v in fields.items()):
                    return e
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no {event} {fields} within {timeout}s; log tail:\n"
                             + "\n".join(self.log.read_text().splitlines()[-15:]))

    def status(self) -> dict[str, Any]:
        """`speaker status --json` of this appliance."""
        out = self.ns.run(SPEAKER, "status", "--json", "-s", str(self.sock), timeout=20)
        return dict(json.loads(out.stdout))

    def leader(self, group: str) -> bool:
        """Leadership of `group` as the log tells it (last gained/lost event)."""
        state = False
        for e in self.events():
            if e.get("group") == group and e.get("event") in ("leader_gained", "leader_lost"):
                state = e["event"] == "leader_gained"
        return state


class Segment:
    """A switch, N appliances and a client on 192.0.2.0/24 and 2001:db8::/64."""

    def __init__(self, lab: Lab, workdir: Path, names: Sequence[str]) -> None:
        self.lab = lab
        self.workdir = workdir
        self.switch = lab.switch("sw")
        self.client = lab.host("c")
        self.client_port = lab.connect(self.client, self.switch, "eth0",
                                       ["192.0.2.50/24", "2001:db8::50/64"])
        self.appliances: dict[str, Appliance] = {}
        for i, name in enumerate(names, start=11):
            ns = lab.host(name)
            port = lab.connect(ns, self.switch, "eth0", [f"192.0.2.{i}/24", f"2001:db8::{i}/64"],
                               mac=f"02:00:00:00:00:{i:02x}")
            wd = workdir / name
            wd.mkdir(parents=True, exist_ok=True)
            self.appliances[name] = Appliance(ns, port, f"02:00:00:00:00:{i:02x}", wd,
                                              wd / "speaker.yaml")

    def configure(self, name: str, groups: Sequence[Group], vips: Sequence[Vip],
                  **kw: Any) -> Appliance:
        """Write the config of appliance `name`."""
        app = self.appliances[name]
        index = list(self.appliances).index(name) + 11
        app.config.write_text(appliance_yaml(name, f"192.0.2.{index}", groups, vips, app.sock,
                                             **kw))
        return app

    def death(self, app: Appliance) -> None:
        """Appliance death drill: cut its switch port, then kill its processes."""
        self.lab.port_down(self.switch, app.port)
        app.kill()
        for proc in list(app.extra):
            app.ns.stop(proc, signal.SIGKILL)
            app.extra.remove(proc)

    def revive(self, app: Appliance) -> None:
        """Restore the port and start the speaker again."""
        self.lab.port_up(self.switch, app.port)
        app.start()

    def neigh_mac(self, vip: str) -> str | None:
        """The client's neighbour entry for `vip` (None: none or FAILED)."""
        out = self.client.run("ip", "neigh", "show", vip, "dev", "eth0", check=False).stdout
        match = re.search(r"lladdr (\S+)", out)
        return match.group(1) if match else None

    def wait_neigh(self, vip: str, mac: str, timeout: float = 5.0) -> float:
        """Wait until the client's neighbour entry points at `mac`; returns seconds waited."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.neigh_mac(vip) == mac:
                return time.monotonic() - start
            time.sleep(0.02)
        raise AssertionError(f"neighbour {vip} is {self.neigh_mac(vip)}, not {mac}")

    def who_answers(self, vip: str, count: int = 3) -> set[str]:
        """MACs answering the client's ARP requests / neighbour solicitations for `vip`."""
        if ":" in vip:
            out = self.client.run("ndisc6", "-m", "-n", "-r", str(count), "-w", "300", vip,
                                  "eth0", check=False).stdout
            return {m.lower() for m in re.findall(r"Target link-layer address: (\S+)", out)}
        out = self.client.run("arping", "-c", str(count), "-w", "2", "-I", "eth0", vip,
                              check=False).stdout
        return {m.lower() for m in re.findall(r"\[([0-9A-Fa-f:]{17})\]", out)}

    def prime(self, vip: str) -> None:
        """Make the client resolve `vip` (a neighbour entry exists, as for a real client)."""
        flag = ["-6"] if ":" in vip else []
        self.client.run("ping", *flag, "-c", "3", "-i", "0.2", "-W", "1", vip, check=False)


class Pinger:
    """ICMP echo to the VIP every `interval` from the client; reports the longest gap."""

    def __init__(self, seg: Segment, vip: str, interval: float = 0.01) -> None:
        self.path = seg.workdir / f"ping-{time.monotonic_ns()}.txt"
        self.client = seg.client
        out = self.path.open("w")
        flag = ["-6"] if ":" in vip else []
        self.proc = seg.client.spawn(["ping", *flag, "-D", "-n", "-i", str(interval), vip],
                                     stdout=out)
        out.close()

    def stop(self) -> list[float]:
        """Stop pinging; return the reply timestamps."""
        self.client.stop(self.proc, signal.SIGINT)
        return [float(t) for t in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from",
                                             self.path.read_text(), re.M)]

    @staticmethod
    def longest_gap(times: list[float]) -> float:
        """Longest time between consecutive replies (the outage a client saw)."""
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def keepalived_conf(name: str, vrid: int, priority: int, vips: Sequence[str],
                    interval: float = 0.1, preempt: bool = True,
                    interface: str = "eth0") -> str:
    """A VRRP-only keepalived config (VRRPv3, VIPs on the interface, no auth)."""
    addrs = "\n".join(f"    {v}/{128 if ':' in v else 32} dev {interface}" for v in vips)
    return f"""global_defs {{
  router_id {name}
  vrrp_version 3
  vrrp_garp_master_delay 0
  vrrp_garp_master_repeat 3
}}
vrrp_instance front {{
  state BACKUP
  interface {interface}
  virtual_router_id {vrid}
  priority {priority}
  advert_int {interval}
  {"" if preempt else "nopreempt"}
  virtual_ipaddress {{
{addrs}
  }}
}}
"""


def start_keepalived(app: Appliance, conf: str) -> subprocess.Popen[Any]:
    """Run Debian's keepalived (VRRP only, foreground, own pid files) in `app`'s namespace."""
    path = app.workdir / "keepalived.conf"
    path.write_text(conf)
    log = (app.workdir / "keepalived.log").open("a")
    proc = app.ns.spawn(["keepalived", "-n", "-l", "-D", "-G", "-P", "-f", str(path),
                         "-p", str(app.workdir / "ka.pid"), "-r",
                         str(app.workdir / "ka-vrrp.pid")], stdout=log)
    log.close()
    app.extra.append(proc)
    return proc


def keepalived_states(app: Appliance) -> list[str]:
    """States keepalived entered, in order ('MASTER', 'BACKUP', 'FAULT')."""
    path = app.workdir / "keepalived.log"
    text = path.read_text() if path.exists() else ""
    return re.findall(r"Entering (\w+) STATE", text)


def wait_keepalived(app: Appliance, state: str, count: int = 1, timeout: float = 10.0) -> None:
    """Wait until keepalived has entered `state` at least `count` times."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if keepalived_states(app).count(state) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"keepalived in {app.name} states {keepalived_states(app)}, "
                         f"wanted {state} x{count}; log tail:\n"
                         + "\n".join((app.workdir / "keepalived.log").read_text()
                                     .splitlines()[-15:]))
