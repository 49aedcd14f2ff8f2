"""Supervisor side of the timing child: spawn, supervise, and the Election / L2 seams.

`TimingDomain` owns the child process: it spawns it (dies with the parent),
sends it the full desired state (config, L2 VIPs, penalty, resigned groups)
on every start, mirrors what the child reports (leadership, owned VIPs,
status, metrics), and restarts it with backoff when it dies. While the child
is down every group counts as not led and nothing as owned, so the
reconciler withdraws what depends on it. `ElectionProxy` and `L2Proxy` are
the `speaker.seams` faces of one domain; the reconciler does not know that
the work happens in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from speaker.childproc import Backoff, Channel, ChannelError, preexec, scheduling
from speaker.config import AppConfig
from speaker.logs import event_log
from speaker.metrics import REGISTRY
from speaker.model import L2Vip, Leadership
from speaker.seams import Wake
from speaker.timing import protocol as p

LOG = event_log(__name__)
ACK_TIMEOUT_S = 2.0
STOP_TIMEOUT_S = 3.0


class ChildMetrics:
    """Prometheus collector serving the child's last reported metrics."""

    def __init__(self) -> None:
        self.text = ""

    def collect(self) -> Iterable[Metric]:
        """The families the child sent last."""
        text = self.text
        return list(text_string_to_metric_families(text)) if text else []

    def describe(self) -> Iterable[Metric]:
        """Nothing up front (the child's families vary with its groups and interfaces)."""
        return []


class TimingDomain:
    """The timing child under supervision, and the state it reports."""

    def __init__(self, config: AppConfig, wake: Wake) -> None:
        self.config = config
        self._wake = wake
        self._leadership: dict[str, Leadership] = {}
        self._owned: frozenset[L2Vip] = frozenset()
        self._status: dict[str, Any] = {}
        self._penalty: tuple[int, str] = (0, "")
        self._resigned: list[str | None] = []
        self._l2: frozenset[L2Vip] = frozenset()
        self._channel: Channel | None = None
        self._seq = 0
        self._acks: dict[int, asyncio.Future[None]] = {}
        self.pid: int | None = None
        self._spawned: tuple[subprocess.Popen[bytes], socket.socket] | None = None
        self.restarts = 0
        self.metrics = ChildMetrics()
        self._metrics_registered = False
        self.ready = asyncio.Event()
        """Set once the child reported its first state (the time-critical domain runs)."""
        self.election = ElectionProxy(self)
        self.l2 = L2Proxy(self)
        self._users = 0
        self._task: asyncio.Task[None] | None = None

    # --- what the proxies read -------------------------------------------------------------

    def leadership(self) -> Mapping[str, Leadership]:
        """Verdicts the child reported (none led while it is down)."""
        return dict(self._leadership)

    def owned(self) -> frozenset[L2Vip]:
        """VIPs the child answers for."""
        return self._owned

    def status(self, part: str) -> dict[str, Any]:
        """The child's last status of `part` ('election' or 'l2'), with child details."""
        doc = dict(self._status.get(part) or {})
        doc["process"] = {"pid": self.pid, "up": self._channel is not None,
                          "restarts": self.restarts, "sched": scheduling(self.pid)}
        return doc

    def status_name(self, part: str) -> str:
        """Class name of the part in the child (keys of `speaker status` components)."""
        if part == "l2":
            return "L2Responder"
        return str(self._status.get("election_class") or (
            "VrrpElection" if self.config.election.engine == "vrrp" else "SingleElection"))

    # --- what the proxies send ---------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> bool:
        if self._channel is None:
            return False
        try:
            self._channel.send(message)
        except (ChannelError, ConnectionError, RuntimeError) as exc:
            LOG.error("timing_send_failed", reason=type(exc).__name__, error=str(exc))
            return False
        return True

    async def _request(self, message: dict[str, Any]) -> None:
        self._seq += 1
        seq = self._seq
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[seq] = future
        try:
            if self._send({**message, "seq": seq}):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ACK_TIMEOUT_S):
                        await future
        finally:
            self._acks.pop(seq, None)

    def reconfigure(self, config: AppConfig) -> None:
        """New config: the child adopts it (or asks to be restarted for it)."""
        self.config = config
        self._send(self._config_message())

    def set_penalty(self, penalty: int, reason: str) -> None:
        """Self-health penalty of every group (kept and resent after a restart)."""
        self._penalty = (penalty, reason)
        self._send({"type": "penalty", "penalty": penalty, "reason": reason})

    async def resign(self, group: str | None) -> None:
        """Planned handover of `group` (None: all); resent after a restart until reclaimed."""
        self._resigned.append(group)
        await self._request({"type": "resign", "group": group})

    def reclaim(self, group: str | None) -> None:
        """Undo resign()."""
        self._resigned = [g for g in self._resigned if group is not None and g != group]
        self._send({"type": "reclaim", "group": group})

    async def set_l2(self, vips: Collection[L2Vip]) -> None:
        """Answer for exactly `vips`; returns once the child applied it (first GARP sent)."""
        self._l2 = frozenset(vips)
        await self._request({"type": "l2_set", "vips": [p.vip_out(v) for v in self._l2]})

    def _config_message(self) -> dict[str, Any]:
        return {"type": "config", "config": p.slim_config(self.config),
                "l2": p.child_shape(self.config)[1]}

    # --- supervision ---------------------------------------------------------------------

    def _prepare_host(self) -> None:
        """The L2 sysctls (arp_ignore/arp_announce...) before the first reconcile pass puts
        a VIP on lo: otherwise the kernel answers ARP for it while the child starts."""
        if not p.child_shape(self.config)[1]:
            return
        from dataplane import sysctl

        interfaces = sysctl.with_lower_devices(self.config.node.client_interfaces())
        found = sysctl.check({"l2"}, interfaces=interfaces)
        sysctl.fix(found, self.config.dataplane.manage_sysctls)

    async def run(self) -> None:
        """Keep one child running until cancelled; stop it on the way out."""
        self._prepare_host()  # synchronous: runs before the reconciler's first pass
        self._register_metrics()
        backoff = Backoff()
        try:
            while True:
                started = time.monotonic()
                code = await self._run_child()
                if code == p.RESTART_EXIT:
                    LOG.info("timing_child_restart", reason="config_shape_changed")
                    continue
                self.restarts += 1
                delay = backoff.delay(time.monotonic() - started)
                LOG.error("timing_child_exited", reason="crash", status=code,
                          restart_in_s=delay)
                await asyncio.sleep(delay)
        finally:
            self._unregister_metrics()

    async def run_shared(self) -> None:
        """Run the child while at least one proxy's task runs: the election and the L2
        parts share it and may start and stop independently (a reload adds L2 to an
        appliance whose election runs in-process, or the other way round)."""
        self._users += 1
        try:
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self.run(),
                                                                    name="timing-child")
            await asyncio.shield(self._task)
        finally:
            self._users -= 1
            if self._users == 0 and self._task is not None:
                task, self._task = self._task, None
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def prespawn(self) -> None:
        """Start the child now (synchronously), so its start-up overlaps the supervisor's;
        `run()` adopts it. The factory calls this right after building the domain."""
        if self._spawned is None:
            self._spawned = self._spawn()

    def _spawn(self) -> tuple[subprocess.Popen[bytes], socket.socket]:
        parent, child = socket.socketpair()
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET",
                                                                 "WATCHDOG_USEC")}
        fmt, level = self.config.log.format, self.config.log.level
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "speaker.timing.child", str(child.fileno()), fmt, level],
                pass_fds=[child.fileno()], preexec_fn=preexec(), env=env)  # noqa: PLW1509
        except OSError:
            parent.close()
            raise
        finally:
            child.close()
        return proc, parent

    async def _run_child(self) -> int:
        spawned, self._spawned = self._spawned, None
        proc, parent = spawned or self._spawn()
        self.pid = proc.pid
        channel = await Channel.open(parent)
        try:
            channel.send(self._config_message())
            self._channel = channel
            if self._penalty[0]:
                self.set_penalty(*self._penalty)
            for group in self._resigned:
                self._send({"type": "resign", "group": group, "seq": 0})
            # nothing is owned until the reconciler says so again (it is woken below)
            self._send({"type": "l2_set", "vips": [], "seq": 0})
            await self._read(channel)
        except asyncio.CancelledError:
            with contextlib.suppress(ChannelError, ConnectionError, RuntimeError):
                channel.send({"type": "stop"})
                await channel.writer.drain()
            await _reap(proc, STOP_TIMEOUT_S)
            raise
        finally:
            self._channel_down()
            channel.close()
        return await _reap(proc, 1.0)

    async def _read(self, channel: Channel) -> None:
        while True:
            try:
                msg = await channel.receive()
            except (EOFError, ConnectionError):
                return
            except ChannelError as exc:
                LOG.error("timing_channel_error", reason="bad_frame", error=str(exc))
                return
            self._on_message(msg)

    def _on_message(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "state":
            table = {lead.group: lead for lead in map(p.leadership_in, msg["leadership"])}
            owned = frozenset(p.vip_in(v) for v in msg["owned"])
            changed = table != self._leadership or owned != self._owned
            self._leadership, self._owned, self._status = table, owned, msg["status"]
            self.ready.set()
            for event in msg.get("events") or ([] if not changed else ["timing_state"]):
                self._wake(str(event))
        elif kind == "metrics":
            self.metrics.text = str(msg["text"])
        elif kind in ("l2_done", "resign_done"):
            if kind == "l2_done":
                self._owned = frozenset(p.vip_in(v) for v in msg["owned"])
            future = self._acks.get(int(msg["seq"]))
            if future is not None and not future.done():
                future.set_result(None)
        elif kind == "restart":
            LOG.info("timing_child_restart_requested", reason=str(msg.get("reason")))

    def _channel_down(self) -> None:
        self._channel = None
        for future in self._acks.values():
            if not future.done():
                future.set_result(None)
        if any(lead.leader for lead in self._leadership.values()) or self._owned:
            LOG.warning("timing_child_down", reason="no_leadership_without_child")
        self._leadership = {g: Leadership(g, False, time.monotonic(), 0, "child_down", None)
                            for g in self._leadership}
        self._owned = frozenset()
        self._wake("timing_child_down")

    def _register_metrics(self) -> None:
        from speaker.timing.child import forwarded_metrics

        for metric in forwarded_metrics():  # the child's copies are served instead
            with contextlib.suppress(KeyError):
                REGISTRY.unregister(metric)
        with contextlib.suppress(ValueError):
            REGISTRY.register(self.metrics)
        self._metrics_registered = True

    def _unregister_metrics(self) -> None:
        if not self._metrics_registered:
            return
        from speaker.timing.child import forwarded_metrics

        with contextlib.suppress(KeyError):
            REGISTRY.unregister(self.metrics)
        for metric in forwarded_metrics():
            with contextlib.suppress(ValueError):
                REGISTRY.register(metric)
        self._metrics_registered = False


async def _reap(proc: subprocess.Popen[bytes], grace: float) -> int:
    """Wait up to `grace` seconds for the child to exit, then kill it; its exit status."""
    try:
        return await asyncio.to_thread(proc.wait, grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return await asyncio.to_thread(proc.wait)


class ElectionProxy:
    """speaker.seams.Election, answered by the timing child."""

    def __init__(self, domain: TimingDomain) -> None:
        self._domain = domain

    @property
    def status_name(self) -> str:
        """Name of the engine in `speaker status` (as if it ran in-process)."""
        return self._domain.status_name("election")

    def leadership(self) -> Mapping[str, Leadership]:
        """Verdict per group, as the child last reported it."""
        return self._domain.leadership()

    def set_penalty(self, penalty: int, reason: str) -> None:
        """Lower every group's priority (self-health)."""
        self._domain.set_penalty(penalty, reason)

    async def resign(self, group: str | None = None) -> None:
        """Planned handover; returns once the child has resigned."""
        await self._domain.resign(group)

    def reclaim(self, group: str | None = None) -> None:
        """Undo resign()."""
        self._domain.reclaim(group)

    async def run(self) -> None:
        """Supervise the child until cancelled (shared with the L2 proxy)."""
        await self._domain.run_shared()

    async def wait_ready(self) -> None:
        """Return once the child runs (the supervisor waits for it before reconciling, so
        READY means adverts and ARP answers are being handled)."""
        await self._domain.ready.wait()

    def reconfigure(self, config: AppConfig) -> None:
        """Hand the new config to the child."""
        self._domain.reconfigure(config)

    def status(self) -> dict[str, object]:
        """The engine's status in the child, plus the child process."""
        return self._domain.status("election")


class L2Proxy:
    """speaker.seams.L2Announcer, answered by the timing child."""

    def __init__(self, domain: TimingDomain) -> None:
        self._domain = domain

    @property
    def status_name(self) -> str:
        """Name of the responder in `speaker status`."""
        return self._domain.status_name("l2")

    async def set(self, vips: Collection[L2Vip]) -> None:
        """Answer for exactly `vips` (newly owned ones get GARP/NA before this returns)."""
        await self._domain.set_l2(vips)

    def owned(self) -> frozenset[L2Vip]:
        """VIPs the child answers for now."""
        return self._domain.owned()

    async def run(self) -> None:
        """Keep the child running while this part runs (shared with the election proxy)."""
        await self._domain.run_shared()

    def reconfigure(self, config: AppConfig) -> None:
        """Hand the new config to the child (harmless if the election proxy did too)."""
        self._domain.reconfigure(config)

    def status(self) -> dict[str, object]:
        """The responder's status in the child."""
        return self._domain.status("l2")

    def conflicts(self) -> list[dict[str, Any]]:
        """Confirmed duplicate owners the child reported."""
        return list(self._domain.status("l2").get("conflicts") or [])
