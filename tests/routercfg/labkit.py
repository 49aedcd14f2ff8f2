"""Lab kit for router-config tests: ExaBGP appliances and BIRD/FRR/GoBGP routers.

Every daemon runs inside a lab namespace with its files in a test temp dir and
is started through `Namespace.spawn`, so the lab ends it by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from speaker.lab.netns import Namespace

T = TypeVar("T")
EXABGP = str(Path(sys.executable).with_name("exabgp"))
EXABGP_ENV = {"exabgp_daemon_user": "root", "exabgp_daemon_drop": "false",
              "exabgp_log_destination": "stdout", "exabgp_api_ack": "true"}


def wait_for(check: Callable[[], T | None], timeout: float, what: str,
             interval: float = 0.2) -> T:
    """Poll `check` until it returns a truthy value; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass(frozen=True)
class ExaPeer:
    """One session of a hand-written ExaBGP appliance."""

    router: str
    local: str
    local_as: int
    peer_as: int
    password: str
    routes: Sequence[str]
    """ExaBGP `route` statements without the keyword, e.g. '203.0.113.10/32 next-hop self'."""
    graceful_restart: int | None = None


def exabgp_config(router_id: str, peers: Sequence[ExaPeer]) -> str:
    """A minimal ExaBGP 4.2 config announcing static routes."""
    out = []
    for p in peers:
        family = "ipv6 unicast" if ":" in p.router else "ipv4 unicast"
        out += [f"neighbor {p.router} {{", f"  router-id {router_id};",
                f"  local-address {p.local};", f"  local-as {p.local_as};",
                f"  peer-as {p.peer_as};", f"  md5-password {p.password};",
                "  hold-time 9;", f"  family {{ {family}; }}"]
        if p.graceful_restart:
            out.append(f"  capability {{ graceful-restart {p.graceful_restart}; }}")
        out.append("  static {")
        out += [f"    route {r};" for r in p.routes]
        out += ["  }", "}", ""]
    return "\n".join(out)


def start_exabgp(ns: Namespace, tmp: Path, name: str, config: str) -> subprocess.Popen[Any]:
    """Run ExaBGP with `config` in `ns`; its log goes to tmp/NAME.log."""
    conf = tmp / f"{name}.conf"
    conf.write_text(config)
    env = {**os.environ, **EXABGP_ENV}
    with (tmp / f"{name}.log").open("w") as log:
        return ns.spawn([EXABGP, str(conf)], stdout=log, env=env, cwd=tmp)


@contextlib.contextmanager
def frr_dir() -> Iterator[Path]:
    """A run directory user `frr` can reach (pytest's tmp_path is root-only); removed after."""
    with tempfile.TemporaryDirectory(prefix="esr-frr-") as name:
        path = Path(name)
        path.chmod(0o755)
        shutil.chown(path, "frr", "frr")  # the daemons drop to user frr, as Debian runs them
        yield path


# ---------------------------------------------------------------- BIRD

def start_bird(ns: Namespace, tmp: Path, config: str) -> Path:
    """Run BIRD with `config`; returns its control socket."""
    conf = tmp / "bird.conf"
    conf.write_text(config)
    sock = tmp / "bird.ctl"
    with (tmp / "bird.log").open("w") as log:
        ns.spawn(["bird", "-f", "-c", str(conf), "-s", str(sock), "-P", str(tmp / "bird.pid")],
                 stdout=log)
    wait_for(sock.exists, 10, "the BIRD control socket")
    return sock


def birdc(ns: Namespace, sock: Path, *cmd: str) -> str:
    """Run a birdc command and return its output."""
    return ns.run("birdc", "-s", str(sock), *cmd).stdout


_BIRD_ROUTE = re.compile(r"^(\S+/\d+)\s+unicast \[(\S+)")
_BIRD_ALT = re.compile(r"^\s+unicast \[(\S+)")


def bird_routes(ns: Namespace, sock: Path) -> dict[str, set[str]]:
    """Prefix -> protocols it was learned from (every path, best or not)."""
    routes: dict[str, set[str]] = {}
    current = None
    for line in birdc(ns, sock, "show", "route", "all").splitlines():
        m = _BIRD_ROUTE.match(line)
        if m:
            current = m.group(1)
            routes.setdefault(current, set()).add(m.group(2))
            continue
        alt = _BIRD_ALT.match(line)
        if alt and current:
            routes[current].add(alt.group(1))
    return routes


def bird_import_stats(ns: Namespace, sock: Path, protocol: str) -> dict[str, int]:
    """BIRD's 'Import updates' counters of one BGP protocol (received, filtered, ...)."""
    text = birdc(ns, sock, "show", "protocols", "all", protocol)
    m = re.search(r"Import updates:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\d+)", text)
    if not m:
        return {}
    return {"received": int(m.group(1)), "rejected": int(m.group(2)),
            "filtered": int(m.group(3)), "accepted": int(m.group(5))}


def bird_established(ns: Namespace, sock: Path, protocols: Sequence[str]) -> bool:
    """True when every named protocol is Established."""
    text = birdc(ns, sock, "show", "protocols")
    up = {line.split()[0] for line in text.splitlines() if "Established" in line}
    return set(protocols) <= up


# ---------------------------------------------------------------- FRR

FRR_DIR = Path("/usr/lib/frr")


def start_frr(ns: Namespace, run: Path, config: str) -> None:
    """Run zebra and bgpd with `config`, every file in `run` (see frr_dir)."""
    conf = run / "frr.conf"
    conf.write_text(config)
    conf.chmod(0o644)
    zsock = run / "zserv.api"
    common = ["--vty_socket", str(run), "-u", "frr", "-g", "frr"]
    zebra_conf = run / "zebra.conf"
    zebra_conf.write_text("")
    with (run / "zebra.log").open("w") as log:
        ns.spawn([str(FRR_DIR / "zebra"), "-f", str(zebra_conf), "-i", str(run / "zebra.pid"),
                  "-z", str(zsock), "-P", "0", *common], stdout=log)
    wait_for(zsock.exists, 10, "zebra's socket")
    with (run / "bgpd.log").open("w") as log:
        ns.spawn([str(FRR_DIR / "bgpd"), "-f", str(conf), "-i", str(run / "bgpd.pid"),
                  "-z", str(zsock), "-P", "0", *common], stdout=log)
    wait_for((run / "bgpd.vty").exists, 10, "bgpd's vty socket")


def vtysh(ns: Namespace, run: Path, command: str) -> str:
    """One vtysh command against the lab's FRR."""
    return ns.run("vtysh", "--vty_socket", str(run), "-c", command).stdout


def frr_routes(ns: Namespace, run: Path) -> dict[str, set[str]]:
    """Prefix -> peer addresses it was learned from (valid paths), both families."""
    routes: dict[str, set[str]] = {}
    for afi in ("ipv4", "ipv6"):
        data = json.loads(vtysh(ns, run, f"show bgp {afi} unicast json") or "{}")
        for prefix, paths in data.get("routes", {}).items():
            for path in paths:
                if path.get("valid"):
                    routes.setdefault(prefix, set()).add(path.get("peerId", "?"))
    return routes


def frr_established(ns: Namespace, run: Path, peers: Sequence[str]) -> bool:
    """True when every peer address is Established."""
    data = json.loads(vtysh(ns, run, "show bgp neighbors json") or "{}")
    return all(data.get(p, {}).get("bgpState") == "Established" for p in peers)


# ---------------------------------------------------------------- GoBGP

def start_gobgp(ns: Namespace, tmp: Path, config: str) -> None:
    """Run gobgpd with `config` (its API on 127.0.0.1:50051 inside the namespace)."""
    conf = tmp / "gobgpd.toml"
    conf.write_text(config)
    with (tmp / "gobgpd.log").open("w") as log:
        ns.spawn(["gobgpd", "-f", str(conf), "-p", "--api-hosts=127.0.0.1:50051",
                  "--pprof-disable"], stdout=log)
    wait_for(lambda: ns.run("gobgp", "-u", "127.0.0.1", "global", check=False
                            ).returncode == 0, 10, "gobgpd's API")


def gobgp_routes(ns: Namespace) -> dict[str, set[str]]:
    """Prefix -> neighbor addresses it was learned from, both families."""
    routes: dict[str, set[str]] = {}
    for family in ("ipv4", "ipv6"):
        out = ns.run("gobgp", "-u", "127.0.0.1", "global", "rib", "-a", family, "-j").stdout
        data = json.loads(out or "{}")
        for prefix, paths in data.items():
            for path in paths:
                routes.setdefault(prefix, set()).add(path.get("neighbor-ip", "?"))
    return routes


def gobgp_established(ns: Namespace, peers: Sequence[str]) -> bool:
    """True when every neighbor is Established."""
    out = ns.run("gobgp", "-u", "127.0.0.1", "neighbor", "-j").stdout
    states = {n["state"]["neighbor_address"]: n["state"].get("session_state")
              for n in json.loads(out or "[]")}
    return all(states.get(p) == 6 for p in peers)  # 6: ESTABLISHED


def gobgp_adj(ns: Namespace, peer: str, direction: str) -> set[str]:
    """Prefixes in a neighbor's adj-in (as received, before import policy) or adj-out."""
    family = "ipv6" if ":" in peer else "ipv4"
    out = ns.run("gobgp", "-u", "127.0.0.1", "neighbor", peer, direction, "-a", family,
                 "-j").stdout
    return set(json.loads(out or "{}"))


def have(*tools: str) -> bool:
    """True when every tool is installed."""
    return all(shutil.which(t) or Path(t).exists() for t in tools)
