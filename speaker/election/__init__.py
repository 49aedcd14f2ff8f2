"""Leader election per group of VIPs: engines `single` and `vrrp` (VRRPv3), `etcd` later.

    from speaker.election import make_election
    election = make_election(config, wake)     # implements speaker.seams.Election
    election.leadership()["web"].leader
"""

from __future__ import annotations

from speaker.config import AppConfig
from speaker.election.base import ElectionEngine
from speaker.election.single import SingleElection
from speaker.election.vrrp import VrrpElection
from speaker.seams import Wake


def make_election(config: AppConfig, wake: Wake) -> ElectionEngine:
    """The engine `config.election.engine` names."""
    engine = config.election.engine
    if engine == "single":
        return SingleElection(config, wake)
    if engine == "vrrp":
        return VrrpElection(config, wake)
    raise NotImplementedError(f"election engine {engine!r} is not built yet (etcd: a later issue)")


__all__ = ["ElectionEngine", "SingleElection", "VrrpElection", "make_election"]
