"""Leader election per group of VIPs: engines `single`, `vrrp` (VRRPv3) and `etcd` (leases).

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
    if engine == "etcd":
        from speaker.election.etcd import EtcdElection  # grpc loads only when used

        return EtcdElection(config, wake)
    raise ValueError(f"unknown election engine {engine!r}")


__all__ = ["ElectionEngine", "SingleElection", "VrrpElection", "make_election"]
