"""Check probes: one factory per check type, building a probe for one Target.

A probe is an argument-less coroutine function returning an Outcome or raising
(the engine turns exceptions into reasons and bounds every probe with the
check's timeout). Factories do the per-target work once (request bytes, TLS
context, compiled regexes), so a check costs only its I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from speaker.health.outcome import Outcome
from speaker.health.targets import Target

Probe = Callable[[], Awaitable[Outcome]]
ProbeFactory = Callable[[Target], Probe]


def default_factories() -> Mapping[str, ProbeFactory]:
    """The real probes, by check type (`none` has no probe: it is always up)."""
    from speaker.health.probes.dns import dns_probe
    from speaker.health.probes.exec import exec_probe
    from speaker.health.probes.http import http_probe
    from speaker.health.probes.tcp import tcp_probe

    return {"tcp": tcp_probe, "http": http_probe, "https": http_probe, "dns": dns_probe,
            "exec": exec_probe}


__all__ = ["Probe", "ProbeFactory", "default_factories"]
