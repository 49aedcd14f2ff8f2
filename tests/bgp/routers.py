"""Real BGP routers for the lab tests: BIRD 2, FRR bgpd and GoBGP in namespaces.

Each router is started by hand inside its namespace with its config, pid and
control socket in a temp dir, and answers `routes()` with what it received:
{prefix: Route(next_hops, as_path, med, communities, large_communities)}.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from speaker.lab.netns import Namespace

_WELL_KNOWN = {"graceful-shutdown": "65535:0", "no-export": "65535:65281",
               "no-advertise": "65535:65282", "blackhole": "65535:666"}


@dataclass(frozen=True)
class Neighbor:
    """One session on the router side."""

    address: str
    asn: int
    password: str | None = None
    local_address: str | None = None
    multihop: int | None = None


@dataclass(frozen=True)
class Route:
    """A received route, attributes normalised across daemons."""

    prefix: str
    next_hops: tuple[str, ...]
    as_path: tuple[int, ...] = ()
    med: int | None = None
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    best: str = ""
    """Next hop of the best path."""


def wait_for(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1,
             what: str = "condition") -> Any:
    """Poll until `check()` is truthy; return its value or fail with `what`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")


@dataclass
class Router:
    """Common part: a namespace, a working directory and a process."""

    ns: Namespace
    workdir: Path
    asn: int
    router_id: str
    neighbors: list[Neighbor]
    config_text: str | None = None
    """A config to run instead of the one built from `neighbors` (e.g. the output
    of `speaker router-config`)."""
    proc: subprocess.Popen[Any] | None = field(default=None, init=False)

    def stop(self) -> None:
        """Stop the daemon (by PID)."""
        if self.proc is not None:
            self.ns.stop(self.proc)
            self.proc = None

    def routes(self) -> dict[str, Route]:  # pragma: no cover - overridden
        """Received routes by prefix."""
        raise NotImplementedError

    def established(self) -> int:  # pragma: no cover - overridden
        """Number of established sessions."""
        raise NotImplementedError

    def sessions_since(self) -> dict[str, str]:  # pragma: no cover - overridden
        """Per established neighbor address: a value that changes when it re-forms."""
        raise NotImplementedError

    def refresh(self) -> str:  # pragma: no cover - overridden
        """Send ROUTE-REFRESH to every neighbor."""
        raise NotImplementedError

    def same_sessions(self, before: dict[str, str]) -> bool:
        """Whether the sessions of `before` (from sessions_since) are the ones up now."""
        return self.sessions_since() == before


class Bird(Router):
    """BIRD 2.0 (`bird -f -c CONF -s SOCK`)."""

    def start(self) -> None:
        """Write the config and start bird."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [f"router id {self.router_id};", "timeformat protocol iso long ms;",
                 "protocol device {}"]
        for i, nb in enumerate(self.neighbors):
            chan = "ipv6" if ":" in nb.address else "ipv4"
            lines += [f"protocol bgp n{i} {{", f"  local as {self.asn};",
                      f"  neighbor {nb.address} as {nb.asn};", "  hold time 9;",
                      "  error wait time 1, 5;", "  connect retry time 1;",
                      "  graceful restart on;",
                      f"  {chan} {{ import all; export none; }};"]
            if nb.password:
                lines.append(f'  password "{nb.password}";')
            if nb.local_address:
                lines.append(f"  source address {nb.local_address};")
            if nb.multihop:
                lines.append(f"  multihop {nb.multihop};")
            lines.append("}")
        conf = self.workdir / "bird.conf"
        text = "\n".join(lines) + "\n"
        if self.config_text is not None:  # timestamps with ms: a re-formed session shows
            text = "timeformat protocol iso long ms;\n" + self.config_text
        conf.write_text(text)
        self.sock = self.workdir / "bird.ctl"
        self.proc = self.ns.spawn(["bird", "-f", "-c", str(conf), "-s", str(self.sock),
                                   "-P", str(self.workdir / "bird.pid")])

    def birdc(self, *args: str) -> str:
        """Run a birdc command."""
        return self.ns.run("birdc", "-s", str(self.sock), *args, check=False).stdout

    def established(self) -> int:
        """Established BGP protocols."""
        return self.birdc("show", "protocols").count("Established")

    def sessions_since(self) -> dict[str, str]:
        """When each established session (by neighbor address) came up: a new
        value means the session was re-established."""
        text = self.birdc("show", "protocols")
        return dict(re.findall(r"^(\S+)\s+BGP\s+\S+\s+up\s+(\S+ \S+)\s+Established",
                               text, re.MULTILINE))

    def refresh(self) -> str:
        """Ask every neighbor for a route refresh (`birdc reload in all`)."""
        return self.birdc("reload", "in", "all")

    def same_sessions(self, before: dict[str, str]) -> bool:
        """Same sessions up: BIRD prints a session's start time ±1 ms from one
        query to the next; a re-formed session starts at least a second later
        (TCP, OPEN, BIRD's connect retry), so 0.2 s tells them apart."""
        now = self.sessions_since()
        if set(now) != set(before):
            return False
        def seconds(stamp: str) -> float:
            return datetime.fromisoformat(stamp).timestamp()
        return all(abs(seconds(now[k]) - seconds(before[k])) < 0.2 for k in now)

    def routes(self) -> dict[str, Route]:
        """Parse `show route all` (both tables)."""
        out: dict[str, Route] = {}
        text = self.birdc("show", "route", "all")
        blocks = re.split(r"\n(?=\S)", text)
        for block in blocks:
            head = block.split()
            if not head or "/" not in head[0]:
                continue
            prefix = head[0]
            hops = tuple(sorted(set(re.findall(r"BGP\.next_hop: (\S+)", block))))
            path = re.search(r"BGP\.as_path:(.*)", block)
            med = re.search(r"BGP\.med: (\d+)", block)
            comm = re.search(r"BGP\.community: (.*)", block)
            large = re.search(r"BGP\.large_community: (.*)", block)
            via_list = re.findall(r"via (\S+)", block)
            vias = tuple(sorted(set(via_list)))
            out[prefix] = Route(
                prefix, vias or hops,
                tuple(int(a) for a in path.group(1).split()) if path else (),
                int(med.group(1)) if med else None,
                tuple(f"{a}:{b}" for a, b in re.findall(r"\((\d+),\s*(\d+)\)",
                                                         comm.group(1))) if comm else (),
                tuple(f"{a}:{b}:{c}" for a, b, c in re.findall(
                    r"\((\d+),\s*(\d+),\s*(\d+)\)", large.group(1))) if large else (),
                via_list[0] if via_list else "")
        return out

    def count(self) -> int:
        """Total routes (fast: `show route count`)."""
        text = self.birdc("show", "route", "count")
        return sum(int(n) for n in re.findall(r"for (\d+) networks in table", text))


class Frr(Router):
    """FRR bgpd without zebra (`bgpd -Z` with a private vty socket dir)."""

    def start(self) -> None:
        """Write bgpd.conf and start bgpd (as user frr: its directory must be
        reachable by frr, which pytest's 0700 tmp_path is not)."""
        self.workdir = Path(tempfile.mkdtemp(prefix="esb-frr-"))
        self.workdir.chmod(0o755)
        subprocess.run(["chown", "-R", "frr:frr", str(self.workdir)], check=False)
        lines = ["frr defaults traditional", "hostname r", "log stdout", "!",
                 f"router bgp {self.asn}", f" bgp router-id {self.router_id}",
                 " no bgp ebgp-requires-policy", " no bgp default ipv4-unicast",
                 " bgp bestpath as-path multipath-relax"]
        for nb in self.neighbors:
            lines += [f" neighbor {nb.address} remote-as {nb.asn}",
                      f" neighbor {nb.address} timers 3 9",
                      f" neighbor {nb.address} timers connect 1"]
            if nb.password:
                lines.append(f" neighbor {nb.address} password {nb.password}")
        for fam in ("ipv4", "ipv6"):
            lines.append(f" address-family {fam} unicast")
            lines.append("  maximum-paths 8")
            for nb in self.neighbors:
                if (":" in nb.address) == (fam == "ipv6"):
                    lines.append(f"  neighbor {nb.address} activate")
            lines.append(" exit-address-family")
        conf = self.workdir / "bgpd.conf"
        conf.write_text(self.config_text or "\n".join(lines) + "\n")
        self.vty = self.workdir
        self.proc = self.ns.spawn([
            "/usr/lib/frr/bgpd", "-f", str(conf), "-i", str(self.workdir / "bgpd.pid"),
            "-Z", "--vty_socket", str(self.workdir), "-z", str(self.workdir / "zserv.api"),
            "-A", "127.0.0.1", "-P", "0"])

    def stop(self) -> None:
        """Stop bgpd and remove its directory."""
        super().stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def vtysh(self, command: str) -> str:
        """Run one show command through vtysh on the private socket dir."""
        return self.ns.run("vtysh", "--vty_socket", str(self.vty), "-c", command,
                           check=False).stdout

    def established(self) -> int:
        """Established neighbors."""
        try:
            data = json.loads(self.vtysh("show bgp neighbors json") or "{}")
        except ValueError:
            return 0
        return sum(1 for v in data.values()
                   if isinstance(v, dict) and v.get("bgpState") == "Established")

    def sessions_since(self) -> dict[str, str]:
        """Per established neighbor: connections established and dropped so far
        (a new value means it was re-established; FRR's epoch of the current
        session jitters by a second, it is computed from the uptime)."""
        try:
            data = json.loads(self.vtysh("show bgp neighbors json") or "{}")
        except ValueError:
            return {}
        return {addr: f"{v.get('connectionsEstablished')}/{v.get('connectionsDropped')}"
                for addr, v in data.items()
                if isinstance(v, dict) and v.get("bgpState") == "Established"}

    def refresh(self) -> str:
        """Ask every neighbor for a route refresh (`clear bgp * soft in`)."""
        return self.vtysh("clear bgp * soft in")

    def routes(self) -> dict[str, Route]:
        """Received routes from `show bgp ipv4/ipv6 unicast json` (detail per prefix)."""
        out: dict[str, Route] = {}
        for fam in ("ipv4", "ipv6"):
            try:
                table = json.loads(self.vtysh(f"show bgp {fam} unicast json") or "{}")
            except ValueError:
                continue
            for prefix in table.get("routes", {}):
                detail = json.loads(self.vtysh(f"show bgp {fam} unicast {prefix} json") or "{}")
                paths = detail.get("paths", [])
                if not paths:
                    continue
                first = next((p for p in paths if p.get("bestpath", {}).get("overall")), paths[0])
                best = next((h.get("ip", "") for h in first.get("nexthops", [])), "")
                hops = sorted({h.get("ip", "") for p in paths for h in p.get("nexthops", [])
                               if h.get("scope", "global") == "global"})
                seg = first.get("aspath", {}).get("string", "")
                out[prefix] = Route(
                    prefix, tuple(hops),
                    tuple(int(a) for a in seg.split() if a.isdigit()),
                    first.get("metric"),
                    tuple(_WELL_KNOWN.get(c, c) for c in
                          first.get("community", {}).get("string", "").split()),
                    tuple(first.get("largeCommunity", {}).get("string", "").split()), best)
        return out


class GoBgp(Router):
    """GoBGP (`gobgpd -f gobgpd.toml -p --api-hosts=127.0.0.1:50051`)."""

    def start(self) -> None:
        """Write gobgpd.toml and start gobgpd."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = ["[global.config]", f"  as = {self.asn}", f'  router-id = "{self.router_id}"',
                 "  port = 179"]
        for nb in self.neighbors:
            fam = "ipv6-unicast" if ":" in nb.address else "ipv4-unicast"
            lines += ["[[neighbors]]", "  [neighbors.config]",
                      f'    neighbor-address = "{nb.address}"', f"    peer-as = {nb.asn}"]
            if nb.password:
                lines.append(f'    auth-password = "{nb.password}"')
            lines += ["  [neighbors.timers.config]", "    connect-retry = 1",
                      "    hold-time = 9", "    keepalive-interval = 3",
                      "  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                      f'      afi-safi-name = "{fam}"']
        conf = self.workdir / "gobgpd.toml"
        conf.write_text("\n".join(lines) + "\n")
        self.log = (self.workdir / "gobgpd.log").open("w")
        self.proc = self.ns.spawn(["gobgpd", "-f", str(conf), "-p",
                                   "--api-hosts=127.0.0.1:50051", "--pprof-disable"],
                                  stdout=self.log)

    def stop(self) -> None:
        """Stop gobgpd and close its log."""
        super().stop()
        self.log.close()

    def gobgp(self, *args: str) -> str:
        """Run the gobgp client in the router namespace."""
        return self.ns.run("gobgp", "-u", "127.0.0.1", *args, check=False).stdout

    def established(self) -> int:
        """Established neighbors."""
        try:
            data = json.loads(self.gobgp("neighbor", "-j") or "[]")
        except ValueError:
            return 0
        if not isinstance(data, list):  # an error object while gobgpd starts
            return 0
        return sum(1 for n in data
                   if isinstance(n, dict) and n.get("state", {}).get("session_state") == 6)

    def routes(self) -> dict[str, Route]:
        """Received routes from `gobgp global rib -a FAM -j`."""
        out: dict[str, Route] = {}
        for fam in ("ipv4", "ipv6"):
            try:
                table = json.loads(self.gobgp("global", "rib", "-a", fam, "-j") or "{}")
            except ValueError:
                continue
            if not isinstance(table, dict):
                continue
            for prefix, paths in table.items():
                if not isinstance(paths, list):
                    continue
                hops: list[str] = []
                path_asns: tuple[int, ...] = ()
                med = None
                comms: tuple[str, ...] = ()
                larges: tuple[str, ...] = ()
                for i, path in enumerate(p for p in paths if isinstance(p, dict)):
                    for attr in path.get("attrs", []):
                        kind = attr.get("type")
                        if kind == 3:
                            hops.append(attr["nexthop"])
                        elif kind == 14:
                            hops.append(attr.get("nexthop", ""))
                        if i:
                            continue
                        if kind == 2:
                            path_asns = tuple(a for seg in attr.get("as_paths", [])
                                              for a in seg.get("asns", []))
                        elif kind == 4:
                            med = attr.get("metric")
                        elif kind == 8:
                            comms = tuple(f"{c >> 16}:{c & 0xFFFF}"
                                          for c in attr.get("communities", []))
                        elif kind == 32:
                            larges = tuple(f"{v['ASN']}:{v['LocalData1']}:{v['LocalData2']}"
                                           for v in attr.get("value", []))
                out[prefix] = Route(prefix, tuple(sorted(set(hops))), path_asns, med, comms,
                                    larges)
        return out


def make_router(kind: str, ns: Namespace, workdir: Path, asn: int, router_id: str,
                neighbors: Sequence[Neighbor], config_text: str | None = None) -> Router:
    """A started router of `kind` ('bird', 'frr', 'gobgp'), with the config built
    from `neighbors` or `config_text`."""
    cls: type[Bird | Frr | GoBgp] = {"bird": Bird, "frr": Frr, "gobgp": GoBgp}[kind]
    router = cls(ns, workdir, asn, router_id, list(neighbors), config_text)
    router.start()
    return router
