"""The timing child: VRRP and the ARP/NDP responder in their own process and event loop.

    python -m speaker.timing.child FD LOG_FORMAT LOG_LEVEL

FD is this end of the supervisor's socketpair. The first message must be
`config`; then the child runs the election engine and (if the config has L2
services) the L2 responder, applies what the supervisor sends, and reports
leadership, owned VIPs and status on every change (plus once a second, with
its metrics). It exits when the supervisor says `stop`, when the channel
closes, or (PR_SET_PDEATHSIG) when the supervisor dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from speaker.childproc import Channel, ChannelError, set_pdeathsig
from speaker.config import AppConfig
from speaker.election import ElectionEngine, make_election
from speaker.l2 import L2Responder
from speaker.logs import event_log, setup_logging
from speaker.timing import protocol as p

LOG = event_log(__name__)
REPORT_EVERY_S = 1.0
NICE = -10
RT_PRIORITY = 10
"""SCHED_RR priority of the child (best effort, as keepalived's vrrp_rt_priority): its
work is tiny (an advert per interval, one frame per ARP request) but must not wait
behind health checks, parsing or other tenants of the CPU. The kernel's RT throttling
(sched_rt_runtime_us) bounds what a runaway child could take; without the privilege
the child falls back to nice -10."""


def forwarded_metrics() -> list[MetricWrapperBase]:
    """The metric objects the child owns (election and L2): the supervisor serves them."""
    from speaker.election import etcd_metrics as xm
    from speaker.election import metrics as em
    from speaker.l2 import metrics as lm

    return [v for mod in (em, xm, lm) for v in vars(mod).values()
            if isinstance(v, MetricWrapperBase)]


class Domain:
    """The parts of the child and the command loop."""

    def __init__(self, config: AppConfig, with_l2: bool, channel: Channel) -> None:
        self.config = config
        self.with_l2 = with_l2
        self.channel = channel
        self.changed = asyncio.Event()
        self.events: set[str] = set()
        self.election: ElectionEngine = make_election(config, self._wake)
        self.l2: L2Responder | None = None
        if with_l2:
            self.l2 = L2Responder(config, self._wake,
                                  conflict_hook=self.election.resolve_conflict,
                                  handover_hook=self.election.handing_over)
        self.registry = CollectorRegistry(auto_describe=True)
        for metric in forwarded_metrics():
            self.registry.register(metric)

    def _wake(self, event: str) -> None:
        self.events.add(event)
        self.changed.set()

    async def run(self) -> int:
        """Run the parts, the command loop and the reporter until stopped; the exit code.
        A part that raises ends the child (the supervisor restarts it)."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.election.run()), group.create_task(self._report())]
            if self.l2 is not None:
                tasks.append(group.create_task(self.l2.run()))
            code = await self._commands()
            for task in tasks:  # the election's way out sends priority 0
                task.cancel()
        return code

    async def _commands(self) -> int:
        while True:
            try:
                msg = await self.channel.receive()
            except EOFError:
                return 0
            except ChannelError as exc:
                LOG.error("timing_channel_error", reason="bad_frame", error=str(exc))
                return 1
            code = await self._handle(msg)
            if code is not None:
                return code

    async def _handle(self, msg: dict[str, Any]) -> int | None:
        kind = msg["type"]
        if kind == "stop":
            return 0
        if kind == "config":
            config = p.config_from(msg["config"])
            if (config.election.engine, bool(msg["l2"])) != (self.config.election.engine,
                                                              self.with_l2):
                self.channel.send({"type": "restart", "reason": "shape_changed"})
                return p.RESTART_EXIT
            self.config = config
            self.election.reconfigure(config)
            if self.l2 is not None:
                self.l2.reconfigure(config)
        elif kind == "l2_set":
            if self.l2 is not None:
                self.l2.apply([p.vip_in(v) for v in msg["vips"]])
            self.channel.send({"type": "l2_done", "seq": msg["seq"], "owned": self._owned()})
        elif kind == "penalty":
            self.election.set_penalty(int(msg["penalty"]), str(msg["reason"]))
        elif kind == "resign":
            await self.election.resign(msg.get("group"))
            self.channel.send({"type": "resign_done", "seq": msg["seq"]})
        elif kind == "reclaim":
            self.election.reclaim(msg.get("group"))
        else:
            LOG.warning("timing_unknown_message", reason="protocol", kind=str(kind))
        self.changed.set()
        return None

    def _owned(self) -> list[dict[str, Any]]:
        return [p.vip_out(v) for v in self.l2.owned()] if self.l2 is not None else []

    def _state(self) -> dict[str, Any]:
        status: dict[str, Any] = {"election": self.election.status(),
                                  "election_class": type(self.election).__name__}
        if self.l2 is not None:
            status["l2"] = self.l2.status()
        events, self.events = sorted(self.events), set()
        return {"type": "state", "owned": self._owned(), "events": events, "status": status,
                "leadership": [p.leadership_out(v)
                               for v in self.election.leadership().values()]}

    async def _report(self) -> None:
        loop = asyncio.get_running_loop()
        next_metrics = 0.0
        while True:
            self.changed.clear()
            self.channel.send(self._state())
            if loop.time() >= next_metrics:
                next_metrics = loop.time() + REPORT_EVERY_S
                self.channel.send({"type": "metrics",
                                   "text": generate_latest(self.registry).decode()})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REPORT_EVERY_S):
                    await self.changed.wait()


async def main(fd: int) -> int:
    """Serve the supervisor on socket `fd`."""
    sock = socket.socket(fileno=fd)
    channel = await Channel.open(sock)
    try:
        first = await channel.receive()
    except (EOFError, ChannelError):
        return 1
    if first.get("type") != "config":
        LOG.error("timing_channel_error", reason="protocol", error="first message not config")
        return 1
    domain = Domain(p.config_from(first["config"]), bool(first["l2"]), channel)
    LOG.info("timing_child_started", reason="spawned", pid=os.getpid(),
             engine=domain.config.election.engine, l2=domain.with_l2)
    code = await domain.run()
    with contextlib.suppress(ConnectionError):
        await channel.writer.drain()
    channel.close()
    return code


if __name__ == "__main__":
    set_pdeathsig()
    refused = ""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(RT_PRIORITY))
    except OSError as exc:
        refused = exc.strerror or repr(exc)
        with contextlib.suppress(OSError):
            os.nice(NICE)
    setup_logging(sys.argv[2] if len(sys.argv) > 2 else "logfmt",
                  sys.argv[3] if len(sys.argv) > 3 else "info")
    if refused:
        event_log("speaker.timing.child").warning(
            "timing_child_not_realtime", reason="sched_rr_refused", error=refused,
            detail="VRRP adverts and ARP answers share the CPU with everything else; "
                   "run as root or with CAP_SYS_NICE / LimitRTPRIO, RestrictRealtime=no")
    sys.exit(asyncio.run(main(int(sys.argv[1]))))
