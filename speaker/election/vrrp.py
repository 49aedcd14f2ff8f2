"""Engine `vrrp`: one VRRPv3 virtual router per election group (RFC 5798).

Each group is one instance with its own VRID on its interface; the address
family of its adverts follows the group's VIPs (IPv6 only if every VIP of the
group is IPv6; VRRPv3 cannot mix families in one advert). Adverts list the
group's VIPs, so keepalived configured with the same VRID and VIPs accepts
them. Timers come from the election preset or the group's override.

The state machine is `vrrp_state` (pure); this module does the I/O: raw
sockets (`vrrp_socket`), the timers, link-state checks, self-health
penalties, and the verdict table the reconciler reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from speaker.config import AppConfig
from speaker.config.election import GroupConfig
from speaker.election import metrics as m
from speaker.election import vrrp_state as sm
from speaker.election.base import Verdicts
from speaker.election.vrrp_packet import (
    VRRP_GROUP_V4,
    VRRP_GROUP_V6,
    VRRP_TTL,
    Advert,
    PacketError,
    centiseconds,
    decode,
    encode,
)
from speaker.election.vrrp_socket import Received, VrrpSocket, interface_address, link_up
from speaker.logs import Throttle, event_log
from speaker.model import IPAddress, L2Vip, Leadership
from speaker.seams import Wake

LOG = event_log(__name__)
LINK_CHECK_S = 0.05
RETRY_S = 1.0


@dataclass(slots=True)
class _Group:
    cfg: GroupConfig
    interface: str
    version: int
    addresses: tuple[IPAddress, ...]
    interval_cs: int
    started: float
    inst: sm.Instance = field(default_factory=sm.Instance)
    source: IPAddress | None = None
    link: bool = True
    mismatch_logged: bool = False
    socket_error: str = ""
    """Last reason the group's socket could not be opened (logged once per reason)."""

    @property
    def key(self) -> tuple[str, int | None, str, int]:
        return (self.cfg.name, self.cfg.vrid, self.interface, self.version)


def _groups_of(config: AppConfig, now: float) -> dict[str, _Group]:
    out: dict[str, _Group] = {}
    for g in config.election.groups:
        vips = sorted({s.vip for s in config.services if s.group == g.name},
                      key=lambda a: (a.version, int(a)))
        version = 6 if vips and all(v.version == 6 for v in vips) else 4
        # The config model requires an interface per group or vrrp.interface for vrrp.
        interface = g.interface or config.election.vrrp.interface or ""
        out[g.name] = _Group(g, interface, version,
                             tuple(v for v in vips if v.version == version),
                             centiseconds(config.election.advert_interval(g)), now)
    return out


class VrrpElection:
    """VRRPv3 per group; implements speaker.seams.Election."""

    def __init__(self, config: AppConfig, wake: Wake, *,
                 clock: Callable[[], float] = time.monotonic,
                 open_socket: Callable[[str, int, IPAddress], VrrpSocket] = VrrpSocket,
                 link_state: Callable[[str], bool] = link_up,
                 source_of: Callable[[str, int], IPAddress | None] = interface_address,
                 ) -> None:
        self._config = config
        self._clock = clock
        self._open_socket = open_socket
        self._link_state = link_state
        self._source_of = source_of
        self._verdicts = Verdicts(wake, clock)
        self._penalty = 0
        self._penalty_reason = ""
        self._groups = _groups_of(config, clock())
        self._sockets: dict[tuple[str, int], VrrpSocket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick = asyncio.Event()
        self._next_link_check = 0.0
        self._throttle = Throttle()
        for g in self._groups.values():
            self._publish(g)

    # --- Protocol: Election ---------------------------------------------------------------

    def leadership(self) -> Mapping[str, Leadership]:
        """Verdict per group: leader while VRRP master (or handing over)."""
        return self._verdicts.snapshot()

    def set_penalty(self, penalty: int, reason: str) -> None:
        """Lower every group's priority by `penalty` (self-health); a master advertises
        the new priority at once so a preempting backup can take over."""
        if penalty == self._penalty:
            return
        LOG.info("election_penalty", reason=reason or "healthy", penalty=penalty)
        self._penalty, self._penalty_reason = penalty, reason
        now = self._clock()
        for g in self._groups.values():
            self._step(g, sm.on_priority(g.inst, self._params(g), now))
            self._publish(g)
        self._kick.set()

    async def resign(self, group: str | None = None) -> None:
        """Planned handover of `group` (None: all): priority 0 now; VIPs stay here until
        the new master's first advert arrives; no preemption until `reclaim()`."""
        now = self._clock()
        for g in self._selected(group):
            LOG.info("election_resign", reason="planned_handover", group=g.cfg.name)
            self._step(g, sm.resign(g.inst, self._params(g), now))
        self._kick.set()

    def reclaim(self, group: str | None = None) -> None:
        """Undo `resign()`: preempt again as configured."""
        for g in self._selected(group):
            g.inst = sm.reclaim(g.inst)
        self._kick.set()

    def resolve_conflict(self, vip: L2Vip, other_mac: str) -> bool:
        """Duplicate L2 owner: as master, advertise now (VRRP's rule then makes the
        lower-priority master step down) and keep answering; otherwise yield."""
        g = self._groups.get(vip.group)
        if g is None or not sm.is_leader(g.inst):
            return True
        LOG.warning("vrrp_conflict_advert", reason="duplicate_owner", group=g.cfg.name,
                    vip=str(vip.address), other_mac=other_mac)
        self._send(g, self._params(g).priority)
        return False

    def handing_over(self, vip: L2Vip) -> bool:
        """True while `vip`'s group is handed to another appliance: resigning, or a backup
        that hears a master (the L2 side keeps answering until that owner announces)."""
        g = self._groups.get(vip.group)
        if g is None:
            return False
        return g.inst.state == sm.State.RESIGNING or (
            g.inst.state == sm.State.BACKUP and g.inst.master is not None)

    async def run(self) -> None:
        """Start every instance, then exchange adverts until cancelled; on the way out a
        master sends priority 0 so a backup takes over without waiting."""
        self._loop = asyncio.get_running_loop()
        try:
            while True:
                self._kick.clear()
                await self._wait(self.tick(self._clock()))
        finally:
            now = self._clock()
            for g in self._groups.values():
                self._step(g, sm.shutdown(g.inst, self._params(g), now))
            self._close()

    def reconfigure(self, config: AppConfig) -> None:
        """Keep instances whose VRID, interface and family are unchanged; restart others."""
        now = self._clock()
        new = _groups_of(config, now)
        for name, g in list(self._groups.items()):
            if name not in new or new[name].key != g.key:
                self._step(g, sm.shutdown(g.inst, self._params(g), now))
                self._verdicts.drop(name)
        for name, g in new.items():
            old = self._groups.get(name)
            if old is not None and old.key == g.key:
                g.inst, g.source, g.link, g.started = old.inst, old.source, old.link, old.started
        self._config = config
        self._groups = new
        for g in new.values():
            self._publish(g)
        self._kick.set()

    def status(self) -> dict[str, object]:
        """Per group: state, priorities, timers, master."""
        return {"engine": "vrrp", "penalty": self._penalty,
                "penalty_reason": self._penalty_reason,
                "groups": {name: {
                    "vrid": g.cfg.vrid, "interface": g.interface, "family": f"ipv{g.version}",
                    "state": g.inst.state.value, "priority": self._params(g).priority,
                    "configured_priority": g.cfg.priority, "preempt": g.cfg.preempt,
                    "advert_interval_s": g.interval_cs / 100,
                    "master_interval_s": g.inst.master_interval_cs / 100,
                    "master": str(g.inst.master) if g.inst.master else None,
                    "source": str(g.source) if g.source else None, "link_up": g.link,
                    "resigned": g.inst.resigned, "socket_error": g.socket_error or None,
                    "addresses": [str(a) for a in g.addresses]}
                    for name, g in sorted(self._groups.items())}}

    def tick(self, now: float) -> float:
        """Check links, start instances, fire due timers; return when to tick next.
        `run()` calls it; unit tests drive it with their own clock."""
        self._check_links(now)
        for g in self._groups.values():
            self._ensure_started(g, now)
            self._step(g, sm.on_timer(g.inst, self._params(g), now))
        return self._next_due(now)

    def handle(self, sock: VrrpSocket, msg: Received, now: float) -> None:
        """One received VRRP message (validated here, RFC 5798 7.1)."""
        self._on_message(sock, msg, now)

    # --- internals --------------------------------------------------------------------------

    def _selected(self, group: str | None) -> list[_Group]:
        return [g for name, g in self._groups.items() if group is None or name == group]

    def _params(self, g: _Group) -> sm.Params:
        priority = g.cfg.priority if self._penalty == 0 else max(1, g.cfg.priority
                                                                 - self._penalty)
        source = g.source or (IPv4Address(0) if g.version == 4 else VRRP_GROUP_V6)
        return sm.Params(priority, g.interval_cs, g.cfg.preempt, source,
                         g.started + (g.cfg.preempt_delay or 0.0))

    def _step(self, g: _Group, result: tuple[sm.Instance, sm.Actions]) -> None:
        before = g.inst
        g.inst, actions = result
        for action in actions:
            self._send(g, action.priority)
        if before.state != g.inst.state or before.master != g.inst.master:
            failover = None
            if (g.inst.state == sm.State.MASTER and before.state == sm.State.BACKUP
                    and before.last_heard is not None):
                failover = self._clock() - before.last_heard
            self._publish(g, failover)

    def _publish(self, g: _Group, failover: float | None = None) -> None:
        master = g.inst.master
        leader_id = (self._config.node.name if sm.is_leader(g.inst)
                     else str(master) if master is not None else None)
        self._verdicts.update(g.cfg.name, sm.is_leader(g.inst), priority=self._params(g).priority,
                              state=g.inst.state.value, leader_id=leader_id, failover=failover)

    def _ensure_started(self, g: _Group, now: float) -> None:
        if g.inst.state != sm.State.INIT or not g.link:
            return
        sock = self._socket(g)
        if sock is None:
            return
        self._step(g, sm.start(g.inst, self._params(g), now))

    def _socket(self, g: _Group) -> VrrpSocket | None:
        key = (g.interface, g.version)
        sock = self._sockets.get(key)
        if sock is None:
            vrrp = self._config.election.vrrp
            source = (vrrp.source_address if vrrp.source_address is not None
                      and vrrp.source_address.version == g.version
                      else self._source_of(g.interface, g.version))
            if source is None:
                if g.socket_error != "no_address":
                    LOG.warning("vrrp_no_source", reason="no_address", interface=g.interface,
                                family=f"ipv{g.version}")
                g.socket_error = "no_address"
                return None
            try:
                sock = self._open_socket(g.interface, g.version, source)
            except OSError as exc:
                if g.socket_error != str(exc):
                    LOG.error("vrrp_socket_failed", reason="os_error", interface=g.interface,
                              error=str(exc))
                g.socket_error = str(exc)
                return None
            self._sockets[key] = sock
            if self._loop is not None:
                self._loop.add_reader(sock.fileno(), self._on_readable, sock)
        g.source = sock.source
        g.socket_error = ""
        return sock

    def _send(self, g: _Group, priority: int) -> None:
        sock = self._sockets.get((g.interface, g.version))
        if sock is None or g.cfg.vrid is None:
            return
        advert = Advert(g.cfg.vrid, priority, g.interval_cs, g.addresses)
        peers = [p for p in self._config.election.vrrp.unicast_peers if p.version == g.version]
        targets: list[IPAddress] = list(peers) or [VRRP_GROUP_V4 if g.version == 4
                                                   else VRRP_GROUP_V6]
        for dst in targets:
            try:
                sock.send(encode(advert, sock.source, dst, with_checksum=g.version == 4), dst)
                m.VRRP_SENT.labels(g.cfg.name).inc()
            except OSError as exc:
                LOG.debug("vrrp_send_failed", reason="os_error", group=g.cfg.name,
                          error=str(exc))

    def _on_readable(self, sock: VrrpSocket) -> None:
        now = self._clock()
        for msg in sock.receive():
            self._on_message(sock, msg, now)
        self._kick.set()

    def _on_message(self, sock: VrrpSocket, msg: Received, now: float) -> None:
        if msg.src == sock.source:
            return
        try:
            if msg.ttl != VRRP_TTL:
                raise PacketError("bad_ttl", str(msg.ttl))
            advert = decode(msg.payload, msg.src, msg.dst, verify_checksum=sock.version == 4)
        except PacketError as exc:
            self._discard(exc.reason, msg, now, exc.args[0] if exc.args else "")
            return
        g = next((g for g in self._groups.values() if g.cfg.vrid == advert.vrid
                  and g.interface == sock.interface and g.version == sock.version), None)
        if g is None:
            m.VRRP_DISCARDED.labels("unknown_vrid").inc()  # another VRID: normal, not logged
            return
        vrrp = self._config.election.vrrp
        peers = vrrp.accepted_peers()
        if peers and msg.src not in peers:
            self._discard("not_a_peer", msg, now, f"vrid {advert.vrid} priority "
                          f"{advert.priority}", group=g.cfg.name)
            return
        interval = advert.interval_cs / 100
        if not vrrp.peer_interval_min <= interval <= vrrp.peer_interval_max:
            self._discard("interval_out_of_range", msg, now, f"{interval:g} s outside "
                          f"{vrrp.peer_interval_min:g}..{vrrp.peer_interval_max:g} s",
                          group=g.cfg.name)
            return
        m.VRRP_RECEIVED.labels(g.cfg.name).inc()
        if set(advert.addresses) != set(g.addresses) and not g.mismatch_logged:
            g.mismatch_logged = True
            LOG.warning("vrrp_address_mismatch", reason="misconfiguration", group=g.cfg.name,
                        src=str(msg.src), theirs=",".join(map(str, advert.addresses)),
                        ours=",".join(map(str, g.addresses)))
        self._step(g, sm.on_advert(g.inst, self._params(g), advert.priority,
                                   advert.interval_cs, msg.src, now))

    def _discard(self, reason: str, msg: Received, now: float, detail: str,
                 group: str | None = None) -> None:
        """Count a rejected advert by reason; log it, at most once per (reason, source)
        every 10 s (a flood of forged adverts must not flood the log)."""
        m.VRRP_DISCARDED.labels(reason).inc()
        suppressed = self._throttle.allow((reason, msg.src), now)
        if suppressed is not None:
            LOG.warning("vrrp_advert_rejected", reason=reason, src=str(msg.src), group=group,
                        detail=detail, suppressed=suppressed)

    def _check_links(self, now: float) -> None:
        if now < self._next_link_check:
            return
        self._next_link_check = now + LINK_CHECK_S
        for g in self._groups.values():
            up = self._link_state(g.interface)
            if up == g.link:
                continue
            g.link = up
            LOG.warning("vrrp_link_up" if up else "vrrp_link_down",
                        reason="carrier", group=g.cfg.name, interface=g.interface)
            if not up:
                before = g.inst
                g.inst = sm.link_down(g.inst, now)
                if before.state != g.inst.state:
                    self._publish(g)

    def _next_due(self, now: float) -> float:
        times = [g.inst.deadline for g in self._groups.values() if g.inst.deadline is not None]
        times.append(self._next_link_check)
        if any(g.inst.state == sm.State.INIT and g.link for g in self._groups.values()):
            times.append(now + RETRY_S)
        return min(times)

    async def _wait(self, due: float) -> None:
        timeout = max(0.0, due - self._clock())
        with contextlib.suppress(TimeoutError):
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancellation that arrives as the event fires (gh-86296).
            async with asyncio.timeout(timeout):
                await self._kick.wait()

    def _close(self) -> None:
        for sock in self._sockets.values():
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets.clear()
        self._loop = None
