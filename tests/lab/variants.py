"""Cheap config variants for the `speaker run` robustness test: mutate the examples.

`variants(base, n, seed)` applies 1-3 random edits from `MUTATIONS` to an example
and keeps those that `config check` (load_config) accepts. `for_this_host()` makes
any config runnable in a lab namespace on this kernel (no IPVS: announce-only; API
socket and state under a temporary directory) without changing what is checked.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from speaker.config import ConfigError, ConfigUnreadableError, load_config

Config = dict[str, Any]


def _services(c: Config) -> list[Config]:
    services: list[Config] = c.setdefault("services", [])
    return services


def _announce(c: Config, rng: random.Random) -> None:
    for s in _services(c):
        if rng.random() < 0.5:
            s["announce"] = rng.choice(["bgp", "l2", "both"])


def _engine(c: Config, rng: random.Random) -> None:
    election = c.setdefault("election", {})
    if election.get("engine", "single") == "vrrp":
        c["election"] = {"engine": "single", "groups": [
            {"name": g["name"]} for g in election.get("groups", [{"name": "default"}])]}
        return
    groups = election.get("groups", [{"name": "default"}])
    c["election"] = {"engine": "vrrp", "preset": rng.choice(["fast", "default"]),
                     "vrrp": {"interface": "eth0"},
                     "groups": [{**g, "vrid": 40 + i, "priority": rng.randint(1, 254)}
                                for i, g in enumerate(groups)]}


def _drop_service(c: Config, rng: random.Random) -> None:
    services = _services(c)
    if len(services) > 1:
        services.pop(rng.randrange(len(services)))


def _add_service(c: Config, rng: random.Random) -> None:
    services = _services(c)
    if not services:
        return
    new = copy.deepcopy(rng.choice(services))
    n = rng.randint(1, 200)
    new["name"] = f"gen{n}"
    new["vip"] = f"203.0.113.{n}" if ":" not in str(new["vip"]) else f"2001:db8:100::{n:x}"
    new.pop("fwmark", None)
    services.append(new)


def _ports(c: Config, rng: random.Random) -> None:
    for s in _services(c):
        if "fwmark" not in s and rng.random() < 0.5:
            s["ports"] = sorted(rng.sample(range(1, 65536), rng.randint(1, 3)))


def _scheduler(c: Config, rng: random.Random) -> None:
    for s in _services(c):
        s["scheduler"] = rng.choice(["rr", "wrr", "lc", "wlc", "sh", "mh"])
        s["forwarding"] = rng.choice(["nat", "dr", "tunnel"])


def _health(c: Config, rng: random.Random) -> None:
    for s in _services(c):
        s["health"] = rng.choice([{"type": "none"}, {"type": "tcp", "preset": "fast"},
                                  {"type": "tcp", "interval": "500ms", "timeout": "200ms"}])


def _no_bgp(c: Config, rng: random.Random) -> None:
    c.pop("bgp", None)
    for s in _services(c):
        s["announce"] = "l2"


def _peers(c: Config, rng: random.Random) -> None:
    bgp = c.get("bgp")
    if bgp is None:
        return
    for p in bgp.get("peers", []):
        p["hold_time"] = rng.choice(["3s", "9s", "90s"])
    if rng.random() < 0.5:
        bgp.setdefault("peers", []).append({"name": f"extra{rng.randint(1, 99)}",
                                            "address": "192.0.2.254", "asn": 65099})


def _knobs(c: Config, rng: random.Random) -> None:
    c.setdefault("log", {})["level"] = rng.choice(["info", "warning"])  # debug: pyroute2 floods
    dp = c.setdefault("dataplane", {})
    dp["manage_sysctls"] = rng.random() < 0.5
    dp["keep_on_stop"] = rng.random() < 0.3
    for s in _services(c):
        s["drain_time"] = rng.choice(["1s", "5s"])
        if rng.random() < 0.3:
            s["quorum"] = {"min_healthy": 1, "below": rng.choice(["withdraw", "fail-open"])}


MUTATIONS: tuple[Callable[[Config, random.Random], None], ...] = (
    _announce, _engine, _drop_service, _add_service, _ports, _scheduler, _health, _no_bgp,
    _peers, _knobs)


def accepted(config: Config, path: Path) -> bool:
    """True when `config check` accepts it (written to `path`)."""
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        load_config(path)
    except (ConfigError, ConfigUnreadableError):
        return False
    return True


def for_this_host(config: Config, workdir: Path) -> Config:
    """Runnable here: announce-only (no IPVS in this kernel), API and state in `workdir`."""
    c = copy.deepcopy(config)
    dp = c.setdefault("dataplane", {})
    dp["ipvs"] = False
    dp["state_file"] = str(workdir / "ipvs-owned")
    c["api"] = {"socket": str(workdir / "api.sock")}
    c["metrics"] = {"enabled": True, "address": "127.0.0.1", "port": 9469}
    return c


def variants(base: Config, n: int, seed: int, scratch: Path) -> Iterator[Config]:
    """Up to `n` accepted variants of `base` (deterministic for a seed)."""
    rng = random.Random(seed)
    made = tries = 0
    while made < n and tries < n * 5:
        tries += 1
        c = copy.deepcopy(base)
        for mutate in rng.sample(MUTATIONS, rng.randint(1, 3)):
            mutate(c, rng)
        if accepted(c, scratch):
            made += 1
            yield c
