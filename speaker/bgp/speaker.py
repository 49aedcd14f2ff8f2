"""ExaBgpSpeaker: the BgpSpeaker seam, one supervised ExaBGP per peer.

The speaker owns one `instance.ExaBgpInstance` per peer (all passive peers
share one: they listen on the same port). `set()` hands the full desired set
to every instance (each sends what its peers take), the observations are the
union of the instances', and `reconfigure()` restarts only the instances whose
own settings changed, starts the new ones and retires the removed ones
(withdraw, then stop). Why per peer: docs/bgp.md, "One ExaBGP per peer".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from speaker.bgp import commands as cmd
from speaker.bgp.instance import ExaBgpInstance, instance_key
from speaker.bgp.plan import peers_from_config, unplaced
from speaker.config import AppConfig
from speaker.logs import event_log
from speaker.model import BgpAnnouncement, PeerState
from speaker.seams import Wake

LOG = event_log(__name__)


class ExaBgpSpeaker:
    """BGP speaker (speaker.seams.BgpSpeaker) backed by ExaBGP child processes.

    `runtime_dir` (absolute) holds the generated configs and the bridge sockets.
    `netns` runs ExaBGP inside that network namespace (`ip netns exec`), for
    tests that keep the speaker itself in the host namespace. `clock` is the
    monotonic time source of session timestamps."""

    def __init__(self, config: AppConfig, wake: Wake, *, runtime_dir: Path,
                 netns: str | None = None, clock: Callable[[], float] = time.monotonic,
                 reactor_speed: float | None = None) -> None:
        self._config = config
        self._wake = wake
        self._dir = runtime_dir.resolve()
        self._netns = netns
        self._clock = clock
        self._reactor_speed = reactor_speed
        self._desired: frozenset[BgpAnnouncement] = frozenset()
        self._instances: dict[str, ExaBgpInstance] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        for key in self._keys(config):
            self._instances[key] = self._make(key, config)

    @staticmethod
    def _keys(config: AppConfig) -> list[str]:
        peers = config.bgp.peers if config.bgp is not None else []
        return list(dict.fromkeys(instance_key(p) for p in peers))

    def _make(self, key: str, config: AppConfig) -> ExaBgpInstance:
        return ExaBgpInstance(key, config, self._wake, runtime_dir=self._dir,
                              netns=self._netns, clock=self._clock,
                              reactor_speed=self._reactor_speed)

    # -- Component ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every instance until cancelled (each stops its ExaBGP by PID)."""
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for key, instance in self._instances.items():
                    self._start(key, instance)
                await asyncio.Event().wait()  # until cancelled
        finally:
            self._group = None

    def _start(self, key: str, instance: ExaBgpInstance) -> None:
        if self._group is not None:
            self._tasks[key] = self._group.create_task(instance.run(), name=f"exabgp-{key}")

    async def _retire(self, key: str, instance: ExaBgpInstance,
                      task: asyncio.Task[None] | None) -> None:
        """A peer left the config: withdraw its routes (with graceful restart the
        router would keep them for the restart time), then stop its ExaBGP."""
        try:
            async with asyncio.timeout(10):
                await instance.withdraw_all()
        except TimeoutError:
            LOG.warning("bgp_retire_withdraw_timeout", reason="timeout", instance=key)
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def reconfigure(self, config: AppConfig) -> None:
        """Adopt a new config: instances whose peer (or the speaker's own
        settings: local ASN, router id, ExaBGP executable) changed restart their
        ExaBGP, new peers get one, removed peers are withdrawn from and stopped;
        every other session is left alone. Attribute and mode changes need
        nothing here (they arrive through `set()`)."""
        self._config = config
        keys = self._keys(config)
        for key in [k for k in self._instances if k not in keys]:
            instance = self._instances.pop(key)
            task = self._tasks.pop(key, None)
            LOG.info("bgp_peer_removed", reason="config_changed", instance=key)
            if self._group is not None:
                self._group.create_task(self._retire(key, instance, task))
        for key in keys:
            if key in self._instances:
                self._instances[key].reconfigure(config)
                continue
            instance = self._make(key, config)
            self._instances[key] = instance
            LOG.info("bgp_peer_added", reason="config_changed", instance=key)
            self._start(key, instance)
            if self._group is not None:
                self._group.create_task(instance.set(self._desired))

    def status(self) -> dict[str, object]:
        """Sessions (state, since, reason, detail, announced, pending), what was
        sent to whom, and the ExaBGP processes (one per peer)."""
        processes = {key: inst.process_status() for key, inst in self._instances.items()}
        sessions: dict[str, object] = {}
        for inst in self._instances.values():
            sessions.update(inst.session_status())
        announced = {name: sorted(a.prefix.with_prefixlen for a in anns)
                     for name, anns in sorted(self.announced_to().items())}
        peers = peers_from_config(self._config.bgp) if self._config.bgp is not None else ()
        return {
            "exabgp": _summary(list(processes.values())),
            "processes": processes,
            "sessions": sessions,
            "announced": announced,
            "desired": len(self._desired),
            "unplaced": [a.prefix.with_prefixlen for a in unplaced(peers, self._desired)],
        }

    # -- BgpSpeaker -----------------------------------------------------------------------

    async def set(self, announcements: Collection[BgpAnnouncement]) -> None:
        """Make exactly these routes announced. Returns once every running ExaBGP
        acknowledged the change (at once for one that is down: the routes follow
        when it is back). Raises UnsafeValueError (nothing changes) if a value
        could not be sent safely."""
        wanted = frozenset(announcements)
        for ann in wanted - self._desired:  # defence in depth: render before accepting
            cmd.attributes(ann, local_asn=1, ibgp=True)  # ibgp: local_pref checked too
            cmd.prefix_token(ann.prefix)
        self._desired = wanted
        await asyncio.gather(*(inst.set(wanted) for inst in list(self._instances.values())))

    def announced(self) -> frozenset[BgpAnnouncement]:
        """Announcements sent to at least one peer on an established session
        (acknowledged by ExaBGP after the session came up; forgotten when the
        session goes down)."""
        return frozenset(a for anns in self.announced_to().values() for a in anns)

    def announced_to(self) -> Mapping[str, frozenset[BgpAnnouncement]]:
        """Per peer name: what was sent on its established session."""
        out: dict[str, frozenset[BgpAnnouncement]] = {}
        for inst in self._instances.values():
            out.update(inst.announced_to())
        return out

    def accepted(self) -> frozenset[BgpAnnouncement]:
        """What the speaker holds and keeps delivering: the last set() minus
        what ExaBGP refused. Sessions that are down get it when they come up."""
        refused: set[BgpAnnouncement] = set()
        for inst in self._instances.values():
            refused |= self._desired - inst.accepted()
        return self._desired - refused

    def sessions(self) -> Mapping[str, PeerState]:
        """Session state per peer name, in config order."""
        merged: dict[str, PeerState] = {}
        for inst in self._instances.values():
            merged.update(inst.sessions())
        order = [p.name for p in self._config.bgp.peers] if self._config.bgp is not None else []
        return {name: merged[name] for name in order if name in merged}

    async def withdraw_all(self) -> None:
        """Withdraw every route from every peer and wait until ExaBGP could send
        the UPDATEs (planned stop: with graceful restart negotiated ExaBGP closes
        without NOTIFICATION, so routes must be gone before)."""
        self._desired = frozenset()
        await asyncio.gather(*(inst.withdraw_all() for inst in list(self._instances.values())))


def _summary(processes: list[dict[str, object]]) -> dict[str, object]:
    """One view over the ExaBGP processes (running: all of them)."""
    restarts = sum(r for p in processes if isinstance(r := p["restarts"], int))
    exits = [p["last_exit"] for p in processes if p["last_exit"] is not None]
    errors = [p["start_error"] for p in processes if p["start_error"]]
    tail: list[object] = []
    for p in processes:
        lines = p["log_tail"]
        if isinstance(lines, list):
            tail += lines
    return {"running": bool(processes) and all(p["running"] for p in processes),
            "pid": next((p["pid"] for p in processes if p["pid"] is not None), None),
            "pids": [p["pid"] for p in processes if p["pid"] is not None],
            "version": next((p["version"] for p in processes if p["version"]), ""),
            "restarts": restarts, "last_exit": exits[-1] if exits else None,
            "start_error": errors[0] if errors else "", "log_tail": tail[-10:],
            "processes": len(processes)}
