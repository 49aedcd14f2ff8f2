"""The L2 responder: answers ARP/NDP for owned VIPs, announces takeovers, finds duplicates.

`L2Responder` implements `speaker.seams.L2Announcer`. The reconciler gives it
the full set of VIPs to own (`set()`); the responder
- answers ARP requests and neighbour solicitations for them from prebuilt
  frames on an AF_PACKET socket per interface (BPF-filtered to owned VIPs);
- on takeover sends gratuitous ARP (request and reply form) or an
  unsolicited NA (override) before `set()` returns, then repeats them
  `announce_count - 1` times every `announce_spacing`, and optionally every
  `refresh_interval` after that;
- on release stops answering before `set()` returns (filter and tables);
- probes its VIPs every `probe_interval` (RFC 5227 / DAD-style) and reports
  another MAC answering for one of them as a conflict (log with both MACs,
  `speaker_vip_conflicts_total`, status); a `conflict_hook` (the election's
  rule) decides whether this side yields (stops answering until the other
  owner has been silent for a while).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from speaker.config import AppConfig
from speaker.l2 import bpf, frames
from speaker.l2 import metrics as m
from speaker.l2.answer import Answerer, PortMetrics
from speaker.l2.conflict import ConflictTracker, Verdict
from speaker.l2.port import PacketPort, Port
from speaker.logs import event_log
from speaker.model import IPAddress, L2Vip
from speaker.seams import Wake

LOG = event_log(__name__)

PORT_CHECK_S = 1.0
"""How often the responder checks that its interfaces still exist as opened."""

ConflictHook = Callable[[L2Vip, str], bool]
"""(vip, other owner's MAC) -> True if this appliance should stop answering for it."""

HandoverHook = Callable[[L2Vip], bool]
"""vip -> True if its release is a handover to another appliance (the election is
resigning or hears a new master): keep answering until the new owner announces it."""


@dataclass(frozen=True, slots=True)
class L2Options:
    """Announcement and probing timers (a proposed `l2:` config section)."""

    announce_count: int = 4
    """GARP/NA rounds per takeover: the first at once, the rest `announce_spacing` apart."""
    announce_spacing: float = 1.0
    refresh_interval: float = 0.0
    """Re-announce owned VIPs this often after the takeover rounds (0: never); keep it
    below the switches' MAC ageing time (often 300 s) if clients talk rarely."""
    probe_interval: float = 5.0
    """Duplicate-owner probe period per owned VIP (0: no probing)."""
    conflict_grace: float = 0.3
    """A foreign claim must persist this long to count as a conflict."""
    conflict_expiry: float = 15.0
    """A conflict clears after this long without a foreign claim."""
    handover_linger: float = 3.0
    """On a handover, keep answering a released VIP until the new owner's GARP / NA is
    seen, for at most this long: no moment in which nobody answers (`speaker drain`)."""

    @classmethod
    def from_config(cls, config: AppConfig) -> L2Options:
        """Options for `config` (defaults until the config grows an `l2:` section)."""
        del config
        return cls()


@dataclass(slots=True)
class _Announce:
    remaining: int
    due: float


class L2Responder:
    """ARP/NDP responder plus GARP / unsolicited NA for the VIPs this appliance owns."""

    def __init__(self, config: AppConfig, wake: Wake, *, options: L2Options | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 open_port: Callable[[str], Port] = PacketPort,
                 conflict_hook: ConflictHook | None = None,
                 handover_hook: HandoverHook | None = None) -> None:
        self._config = config
        self._wake = wake
        self.options = options or L2Options.from_config(config)
        self._clock = clock
        self._open_port = open_port
        self.conflict_hook = conflict_hook
        self.handover_hook = handover_hook
        self._lingering: dict[IPAddress, tuple[L2Vip, float]] = {}
        """Released VIPs still answered until the new owner speaks: (vip, deadline)."""
        self._wanted: dict[IPAddress, L2Vip] = {}
        self._yielded: set[IPAddress] = set()
        self._ports: dict[str, Port] = {}
        self._port_errors: dict[str, str] = {}
        self._answer = Answerer()
        self._announce: dict[IPAddress, _Announce] = {}
        self._reprobed: set[IPAddress] = set()
        self._next_probe = 0.0
        self._next_port_check = 0.0
        self._tracker = ConflictTracker(self.options.conflict_grace,
                                        self.options.conflict_expiry)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watched: set[str] = set()
        self._kick = asyncio.Event()
        self.last_set_at: float | None = None

    # --- Protocol: L2Announcer ----------------------------------------------------------

    async def set(self, vips: Collection[L2Vip]) -> None:
        """Answer for exactly `vips`. Released VIPs stop being answered and newly
        owned ones get their first GARP/NA before this returns."""
        self.apply(vips)

    def apply(self, vips: Collection[L2Vip]) -> None:
        """Synchronous body of `set()` (usable from non-async callers)."""
        now = self._clock()
        self.last_set_at = now
        new = {v.address: v for v in vips}
        gone = [a for a, v in self._wanted.items() if new.get(a) != v]
        fresh = [v for a, v in new.items() if self._wanted.get(a) != v]
        for address in gone:
            old = self._wanted[address]
            # a new owner already heard from (its GARP came first): nothing to bridge
            if (address not in new and address not in self._yielded
                    and not self._tracker.seen(address)
                    and self.handover_hook is not None and self.handover_hook(old)
                    and self.options.handover_linger > 0):
                self._lingering[address] = (old, now + self.options.handover_linger)
                LOG.info("vip_handing_over", reason="until_new_owner_announces",
                         vip=str(address))
            else:
                LOG.info("vip_released", reason="not_owner", vip=str(address))
            self._yielded.discard(address)
            self._announce.pop(address, None)
            self._tracker.forget(address)
        for address in new:
            self._lingering.pop(address, None)
        self._wanted = new
        self._rebuild()
        for vip in sorted(fresh, key=vip_key):
            LOG.info("vip_owned", reason="owner", vip=str(vip.address),
                     interfaces=",".join(vip.interfaces))
            self._announce_now(vip, now)
        self._kick.set()

    def owned(self) -> frozenset[L2Vip]:
        """VIPs answered for now (owned and not yielded to another owner)."""
        return frozenset(v for a, v in self._wanted.items() if a not in self._yielded)

    async def run(self) -> None:
        """Open the sockets, then answer and announce until cancelled (the ARP/NDP
        sysctls are the sysctl guard's: speaker.sysctls)."""
        self._loop = asyncio.get_running_loop()
        interfaces = self._config.node.client_interfaces()
        for name in interfaces:
            self._port(name)
        self._rebuild()
        try:
            while True:
                self._kick.clear()
                self._watch_ports()
                due = self.tick(self._clock())
                timeout = None if due is None else max(0.0, due - self._clock())
                with contextlib.suppress(TimeoutError):
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                    # cancellation that arrives as the event fires (gh-86296).
                    async with asyncio.timeout(timeout):
                        await self._kick.wait()
        finally:
            self._close()

    def reconfigure(self, config: AppConfig) -> None:
        """Adopt a new config: new client interfaces get their sockets."""
        self._config = config
        for name in config.node.client_interfaces():
            self._port(name)
        self._rebuild()
        self._kick.set()

    def status(self) -> dict[str, object]:
        """Owned, yielded and conflicting VIPs, ports."""
        return {
            "owned": [str(v.address) for v in sorted(self.owned(), key=vip_key)],
            "yielded": [str(a) for a in sorted(self._yielded, key=lambda a: (a.version, int(a)))],
            "handing_over": [str(a) for a in sorted(self._lingering,
                                                    key=lambda a: (a.version, int(a)))],
            "conflicts": [{"vip": str(c.vip), "other_mac": c.other_mac,
                           "our_mac": self._mac_text(c.interface), "interface": c.interface,
                           "since": c.first_seen, "last_seen": c.last_seen}
                          for c in self._tracker.confirmed()],
            "interfaces": {name: {"mac": frames.mac_text(p.mac),
                                  "answering": self._answer.answering(name)}
                           for name, p in sorted(self._ports.items())},
            "port_errors": dict(self._port_errors),
        }

    def conflicts(self) -> list[dict[str, Any]]:
        """Confirmed duplicate owners (also in status())."""
        return [{"vip": str(c.vip), "other_mac": c.other_mac, "interface": c.interface,
                 "since": c.first_seen} for c in self._tracker.confirmed()]

    # --- timers ---------------------------------------------------------------------------

    def tick(self, now: float) -> float | None:
        """Send what is due at `now` (repeats, refreshes, probes); return the next due
        time. `run()` calls it; unit tests drive it with their own clock."""
        if now >= self._next_port_check:
            self._next_port_check = now + PORT_CHECK_S
            self._reopen_stale_ports(now)
        self._tick_lingering(now)
        self._tick_announcements(now)
        self._tick_probes(now)
        self._tick_conflicts(now)
        return self._next_due()

    def _tick_lingering(self, now: float) -> None:
        expired = [a for a, (_v, deadline) in self._lingering.items() if deadline <= now]
        for address in expired:
            self._stop_lingering(address, "handover_timeout")

    def _stop_lingering(self, address: IPAddress, reason: str) -> None:
        if self._lingering.pop(address, None) is not None:
            LOG.info("vip_released", reason=reason, vip=str(address))
            self._rebuild()

    def lingering(self) -> frozenset[IPAddress]:
        """Released VIPs still answered during a handover."""
        return frozenset(self._lingering)

    def _tick_announcements(self, now: float) -> None:
        for address, ann in list(self._announce.items()):
            if ann.due <= now and address in self._wanted:
                self._send_announcement(self._wanted[address])
                if ann.remaining > 1:
                    ann.remaining -= 1
                    ann.due = now + self.options.announce_spacing
                elif self.options.refresh_interval > 0:
                    ann.remaining = 0
                    ann.due = now + self.options.refresh_interval
                else:
                    del self._announce[address]

    def _tick_probes(self, now: float) -> None:
        if self.options.probe_interval > 0 and self._wanted and now >= self._next_probe:
            for vip in self._wanted.values():
                self._send_probe(vip)
            self._next_probe = now + self.options.probe_interval
        for c in self._tracker.suspects():
            if c.vip not in self._reprobed and now >= c.first_seen + self._tracker.grace:
                self._reprobed.add(c.vip)
                if c.vip in self._wanted:
                    self._send_probe(self._wanted[c.vip])

    def _tick_conflicts(self, now: float) -> None:
        for c in self._tracker.expire(now):
            self._reprobed.discard(c.vip)
            LOG.info("vip_conflict_cleared", reason="other_owner_silent", vip=str(c.vip),
                     other_mac=c.other_mac)
            if c.vip in self._yielded and c.vip in self._wanted:
                self._yielded.discard(c.vip)
                self._rebuild()
                self._announce_now(self._wanted[c.vip], now)

    def _reopen_stale_ports(self, now: float) -> None:
        """An interface deleted and re-created (or re-addressed) leaves a dead socket:
        reopen it, rebuild, and announce again what we own there."""
        stale = [name for name, port in self._ports.items() if port.stale()]
        missing = [n for n in self._config.node.client_interfaces() if n not in self._ports]
        if not stale and not missing:
            return
        for name in stale:
            LOG.warning("l2_port_reopen", reason="interface_changed", interface=name)
            port = self._ports.pop(name)
            if name in self._watched and self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(port.fileno())
            self._watched.discard(name)
            port.close()
        for name in [*stale, *missing]:
            self._port(name)
        self._rebuild()
        for vip in self._wanted.values():
            if any(name in stale and name in self._ports for name in vip.interfaces):
                self._announce_now(vip, now)

    def _next_due(self) -> float | None:
        times = [a.due for a in self._announce.values()]
        times += [deadline for _v, deadline in self._lingering.values()]
        if self._ports or self._port_errors:
            times.append(self._next_port_check)
        if self.options.probe_interval > 0 and self._wanted:
            times.append(self._next_probe)
        times += [c.first_seen + self._tracker.grace for c in self._tracker.suspects()
                  if c.vip not in self._reprobed]
        times += [c.last_seen + self._tracker.expiry for c in self._tracker.confirmed()]
        if self._tracker.suspects():
            times.append(self._clock() + max(4 * self._tracker.grace, 1.0))
        return min(times) if times else None

    # --- sending ----------------------------------------------------------------------------

    def _send(self, port: Port, frame: bytes) -> bool:
        try:
            port.send(frame)
        except OSError as exc:
            self._answer.metrics[port.name].send_errors.inc()
            LOG.debug("l2_send_failed", reason="os_error", interface=port.name, error=str(exc))
            return False
        return True

    def _announce_now(self, vip: L2Vip, now: float) -> None:
        if vip.address in self._yielded:
            return
        self._send_announcement(vip)
        if self.options.announce_count > 1:
            self._announce[vip.address] = _Announce(self.options.announce_count - 1,
                                                    now + self.options.announce_spacing)
        elif self.options.refresh_interval > 0:
            self._announce[vip.address] = _Announce(0, now + self.options.refresh_interval)

    def _send_announcement(self, vip: L2Vip) -> None:
        if vip.address in self._yielded:
            return
        for name in vip.interfaces:
            port = self._port(name)
            if port is None:
                continue
            vm = self._answer.metrics[name].vip(vip.address.packed)
            if isinstance(vip.address, IPv4Address):
                for frame in frames.garp_frames(port.mac, vip.address):
                    if self._send(port, frame):
                        vm.announced.inc()
            elif self._send(port, frames.unsolicited_na(port.mac, vip.address)):
                vm.announced.inc()

    def _send_probe(self, vip: L2Vip) -> None:
        for name in vip.interfaces:
            port = self._port(name)
            if port is None:
                continue
            if isinstance(vip.address, IPv4Address):
                self._send(port, frames.arp_probe(port.mac, vip.address))
            else:
                self._send(port, frames.ns_probe(port.mac, vip.address))

    # --- receiving ----------------------------------------------------------------------------

    def on_readable(self, port: Port) -> None:
        """Handle every frame queued on `port` (see speaker.l2.answer: the hot path)."""
        handle = self._answer.handle
        for frame in port.receive():
            claim = handle(port, frame)
            if claim is not None:
                self._foreign_claim(claim[0], claim[1], port)

    def _foreign_claim(self, address: IPAddress, other: bytes, port: Port) -> None:
        if address in self._lingering:  # the new owner announces: the handover is done
            self._stop_lingering(address, "new_owner_announced")
            self._kick.set()
            return
        vip = self._wanted.get(address)
        if vip is None:
            return
        other_mac = frames.mac_text(other)
        verdict = self._tracker.claim(address, other_mac, port.name, self._clock())
        if verdict is Verdict.SUSPECT:
            self._reprobed.discard(address)
            self._kick.set()
        elif verdict is Verdict.CONFIRMED:
            m.VIP_CONFLICTS.labels(str(address)).inc()
            LOG.warning("vip_conflict", reason="duplicate_owner", vip=str(address),
                        interface=port.name, our_mac=frames.mac_text(port.mac),
                        other_mac=other_mac)
            self._wake("vip_conflict")
            if self.conflict_hook is not None and self.conflict_hook(vip, other_mac):
                self._yielded.add(address)
                self._rebuild()
                LOG.warning("vip_yielded", reason="conflict_lost", vip=str(address),
                            other_mac=other_mac)
            self._kick.set()

    # --- tables, filters and sockets --------------------------------------------------------

    def _rebuild(self) -> None:
        """Reply tables and BPF filters from the owned set (called on every change)."""
        for name in {n for v in self._wanted.values() for n in v.interfaces}:
            self._port(name)
        listed = {**{a: v for a, (v, _d) in self._lingering.items()}, **self._wanted}
        answering = [*self.owned(), *(v for a, (v, _d) in self._lingering.items()
                                      if a not in self._wanted)]
        self._answer.rebuild(answering, listed, self._ports)
        v4 = [a for a in listed if isinstance(a, IPv4Address)]
        v6 = [a for a in listed if isinstance(a, IPv6Address)]
        for name, port in self._ports.items():
            mine4 = [a for a in v4 if name in listed[a].interfaces]
            mine6 = [a for a in v6 if name in listed[a].interfaces]
            try:
                port.set_filter(bpf.program(mine4, mine6))
            except OSError as exc:
                self._port_errors[name] = f"filter: {exc}"
        m.VIPS_OWNED.set(len(self.owned()))

    def _port(self, name: str) -> Port | None:
        port = self._ports.get(name)
        if port is not None:
            return port
        try:
            port = self._open_port(name)
        except OSError as exc:
            if self._port_errors.get(name) != str(exc):
                LOG.error("l2_port_failed", reason="os_error", interface=name, error=str(exc))
            self._port_errors[name] = str(exc)
            return None
        self._port_errors.pop(name, None)
        self._ports[name] = port
        self._answer.metrics.setdefault(name, PortMetrics(name))
        port.set_filter(bpf.program([], []))
        self._watch_ports()
        return port

    def _watch_ports(self) -> None:
        if self._loop is None:
            return
        for name, port in self._ports.items():
            if name not in self._watched and port.fileno() >= 0:
                self._loop.add_reader(port.fileno(), self.on_readable, port)
                self._watched.add(name)

    def _close(self) -> None:
        for name, port in self._ports.items():
            if name in self._watched and self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(port.fileno())
            port.close()
        self._ports.clear()
        self._watched.clear()
        self._answer.clear()
        self._loop = None

    def _mac_text(self, name: str) -> str:
        port = self._ports.get(name)
        return frames.mac_text(port.mac) if port else ""


def vip_key(vip: L2Vip) -> tuple[int, int]:
    """Sort key for VIPs of both families (ipaddress refuses to compare across them)."""
    return (vip.address.version, int(vip.address))


def l2_vip(address: str, interfaces: tuple[str, ...], group: str = "default") -> L2Vip:
    """Convenience constructor (tests, harnesses): L2Vip from text."""
    return L2Vip(ip_address(address), interfaces, group)
