"""The hook runner: turns changes of leadership and announcements into commands.

The reconciler calls `observe(leaders, announced)` after each pass with what is true
now (groups led here; VIPs announced here, per service). The runner diffs that with
the previous observation, queues one run per configured hook that matches, and runs
the queue in its own task: at most `PARALLEL` commands at a time, each with its
timeout (the whole process group is killed), stdout/stderr kept short in the log.
`observe` never waits, so no hook can delay a reconcile pass, let alone VRRP adverts
or ARP answers (those run in their own process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import Counter

from speaker.config import AppConfig
from speaker.config.hooks import Hook
from speaker.logs import event_log
from speaker.metrics import REGISTRY
from speaker.model import IPAddress

LOG = event_log(__name__)
PARALLEL = 4
QUEUE_LIMIT = 1024
OUTPUT_LIMIT = 400

HOOK_RUNS = Counter("speaker_hook_runs_total",
                    "Hook commands run, by event and result (ok, failed, timeout, "
                    "error, dropped)", ["event", "result"], registry=REGISTRY)


@dataclass(frozen=True, slots=True)
class HookRun:
    """One command to run for one event."""

    hook: Hook
    env: tuple[tuple[str, str], ...]


def runs_for(hooks: list[Hook], node: str, before_leaders: frozenset[str],
             leaders: frozenset[str], before_vips: Mapping[str, IPAddress],
             vips: Mapping[str, IPAddress]) -> list[HookRun]:
    """The runs that the change from `before_*` to now calls for (pure)."""
    events: list[tuple[str, dict[str, str]]] = []
    events += [("leader_gained", {"SPEAKER_GROUP": g}) for g in sorted(leaders - before_leaders)]
    events += [("leader_lost", {"SPEAKER_GROUP": g}) for g in sorted(before_leaders - leaders)]
    for service in sorted(set(vips) | set(before_vips)):
        now, was = vips.get(service), before_vips.get(service)
        if now == was:
            continue
        if was is not None:
            events.append(("vip_withdrawn", {"SPEAKER_SERVICE": service,
                                             "SPEAKER_VIP": str(was)}))
        if now is not None:
            events.append(("vip_announced", {"SPEAKER_SERVICE": service,
                                             "SPEAKER_VIP": str(now)}))
    out: list[HookRun] = []
    for event, fields in events:
        for hook in hooks:
            if hook.on != event:
                continue
            if hook.group is not None and hook.group != fields.get("SPEAKER_GROUP"):
                continue
            if hook.service is not None and hook.service != fields.get("SPEAKER_SERVICE"):
                continue
            env = {"SPEAKER_EVENT": event, "SPEAKER_NODE": node, **fields}
            out.append(HookRun(hook, tuple(sorted(env.items()))))
    return out


class HookRunner:
    """Runs configured hooks on leadership and announcement changes (a Component)."""

    def __init__(self, config: AppConfig) -> None:
        self._queue: asyncio.Queue[HookRun] = asyncio.Queue(QUEUE_LIMIT)
        self._leaders: frozenset[str] | None = None
        self._vips: dict[str, IPAddress] = {}
        self._running = 0
        self._done = 0
        self._last: dict[str, object] = {}
        self._adopt(config)

    def observe(self, leaders: frozenset[str], vips: Mapping[str, IPAddress]) -> None:
        """What is true now; queue the hooks its changes call for. Never waits."""
        if self._leaders is None:  # the first observation is the starting point
            before_leaders: frozenset[str] = frozenset()
        else:
            before_leaders = self._leaders
        runs = runs_for(self._hooks, self._node, before_leaders, leaders, self._vips, vips)
        self._leaders, self._vips = leaders, dict(vips)
        for run in runs:
            try:
                self._queue.put_nowait(run)
            except asyncio.QueueFull:
                HOOK_RUNS.labels(run.hook.on, "dropped").inc()
                LOG.warning("hook_dropped", hook=run.hook.on, reason="queue_full",
                            command=run.hook.command[0])

    async def run(self) -> None:
        """Run queued hooks until cancelled (running ones are killed on the way out)."""
        async with asyncio.TaskGroup() as group:
            for _ in range(PARALLEL):
                group.create_task(self._worker())

    def reconfigure(self, config: AppConfig) -> None:
        """Adopt new hooks; queued runs keep the hook they were queued with."""
        self._adopt(config)

    def status(self) -> dict[str, object]:
        """Configured hooks, queue depth, runs done, the last run per event."""
        return {"hooks": len(self._hooks), "queued": self._queue.qsize(),
                "running": self._running, "done": self._done, "last": self._last}

    def _adopt(self, config: AppConfig) -> None:
        self._hooks = list(config.hooks)
        self._node = config.node.name

    async def _worker(self) -> None:
        while True:
            run = await self._queue.get()
            self._running += 1
            try:
                result = await self._execute(run)
            finally:
                self._running -= 1
                self._done += 1
            self._last[run.hook.on] = result

    async def _execute(self, run: HookRun) -> dict[str, object]:
        hook, env = run.hook, dict(run.env)
        base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        try:
            proc = await asyncio.create_subprocess_exec(
                *hook.command, env={**base, **env}, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)
        except OSError as exc:
            HOOK_RUNS.labels(hook.on, "error").inc()
            LOG.error("hook_failed", hook=hook.on, reason="cannot_start",
                      command=hook.command[0], error=str(exc))
            return {"result": "error", "error": str(exc)}
        try:
            async with asyncio.timeout(hook.timeout):
                output, _ = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            HOOK_RUNS.labels(hook.on, "timeout").inc()
            LOG.warning("hook_failed", hook=hook.on, reason="timeout",
                        command=hook.command[0], timeout_s=hook.timeout)
            return {"result": "timeout"}
        text = output.decode("utf-8", "replace").strip()[:OUTPUT_LIMIT]
        ok = proc.returncode == 0
        HOOK_RUNS.labels(hook.on, "ok" if ok else "failed").inc()
        (LOG.info if ok else LOG.warning)(
            "hook_ran" if ok else "hook_failed", hook=hook.on,
            reason="exit_0" if ok else f"exit_{proc.returncode}", command=hook.command[0],
            output=text, **{k.lower(): v for k, v in env.items() if k != "SPEAKER_EVENT"})
        return {"result": "ok" if ok else "failed", "exit": proc.returncode}
