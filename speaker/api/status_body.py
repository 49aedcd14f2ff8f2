"""The `status` answer at scale: built and encoded slice by slice, shared by callers.

At 10,000 VIPs the status document is about 15 MB of JSON; building it costs
about a second of CPU and `json.dumps` of the whole document is one C call that
holds the GIL (a worker thread would stall the loop just the same). So the
document is built from one consistent :class:`speaker.status_index.StatusIndex`
and encoded in slices of `SLICE` VIPs (or health-checker services), yielding to
the loop between slices: a withdrawal, a signal or a health check waits for one
slice (milliseconds), never for the whole document. The index holds only
immutable or copied state, so what the loop changes meanwhile cannot tear it.

Callers share work: one build at a time; while a document is being built, new
callers wait for it; a finished one is served again for `MAX_AGE_S` unless what
it shows moved (a reconcile pass, a drain, a reload).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from speaker.api.server import Encoded
from speaker.health import HealthChecker
from speaker.status import (
    component_name,
    head_sections,
    health_verdict,
    tail_sections,
    vip_reasons,
    vip_row,
)
from speaker.status_index import take_index

if TYPE_CHECKING:
    from speaker.supervisor import Supervisor

SLICE = 200
"""VIP rows (or health-checker services) built and encoded between two yields."""
MAX_AGE_S = 0.25
"""How long a finished document answers new callers when nothing it shows moved."""
_MARK = "\x00status-slot\x00"
T = TypeVar("T")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _members(items: Iterable[tuple[str, Any]]) -> str:
    """`"key": value, ...` of a JSON object, without the braces (one C call)."""
    return _dumps(dict(items))[1:-1]


async def _off_loop(read: Callable[[], T]) -> T:
    """`read()` in a thread: the health checker's reads walk one entry per backend in
    pure Python, so the loop keeps getting the GIL every switch interval (5 ms)
    meanwhile. Its backend table only changes on the loop at a reload; if that
    happens mid-read (RuntimeError: dict changed size), read again on the loop."""
    try:
        return await asyncio.to_thread(read)
    except RuntimeError:
        return read()


async def _component_statuses(sup: Supervisor) -> dict[str, Any]:
    """Each running part's status; the health checker's (one entry per backend) off
    the loop."""
    out: dict[str, Any] = {}
    for component in sup.components():
        big = isinstance(component, HealthChecker)
        out[component_name(component)] = (await _off_loop(component.status) if big
                                          else component.status())
    return out


async def _encoded_components(components: dict[str, Any]) -> str:
    """The `components` object; a large `services` map is encoded in slices."""
    parts: list[str] = []
    for name, status in components.items():
        services = status.get("services") if isinstance(status, dict) else None
        if not isinstance(services, dict) or len(services) <= SLICE:
            parts.append(f"{_dumps(name)}: {_dumps(status)}")
            continue
        rest = {k: v for k, v in status.items() if k != "services"}
        items = list(services.items())
        chunks = []
        for i in range(0, len(items), SLICE):
            chunks.append(_members(items[i:i + SLICE]))
            await asyncio.sleep(0)
        inner = _members(rest.items())
        parts.append(f"{_dumps(name)}: {{{inner}{', ' if inner else ''}"
                     f"\"services\": {{{', '.join(chunks)}}}}}")
    return "{" + ", ".join(parts) + "}"  # parts: one per component, never empty strings


async def encode_status(sup: Supervisor, slice_size: int = SLICE) -> bytes:
    """The whole status document (as `speaker.status.status_document` builds it) as
    JSON, yielding to the loop after every `slice_size` VIP rows."""
    health = sup.built.health
    snapshot = (await _off_loop(health.snapshot) if isinstance(health, HealthChecker)
                else health.snapshot())
    index = take_index(sup, snapshot)
    doc = head_sections(sup, index)
    chunks: list[str] = []
    reasons: list[str] = []
    decisions = index.decisions
    for i in range(0, len(decisions), slice_size):
        rows = [vip_row(index, d) for d in decisions[i:i + slice_size]]
        for row in rows:
            reasons += vip_reasons(row)
        chunks.append(_dumps(rows)[1:-1])
        await asyncio.sleep(0)
    components = await _component_statuses(sup)
    doc["vips"] = []
    doc.update(tail_sections(sup, index, components))
    state, why = health_verdict(doc, reasons)
    doc["health"] = {"state": state, "reasons": why}
    doc["vips"] = _MARK + "vips"
    doc["components"] = _MARK + "components"
    head, rest = _dumps(doc).split(_dumps(_MARK + "vips"), 1)  # `vips` comes first
    middle, tail = rest.split(_dumps(_MARK + "components"), 1)
    encoded_components = await _encoded_components(components)
    return "".join((head, "[", ", ".join(chunks), "]", middle, encoded_components,
                    tail)).encode()


class SharedStatus:
    """One status build at a time, shared by every caller that arrives meanwhile."""

    def __init__(self, sup: Supervisor, max_age: float = MAX_AGE_S) -> None:
        self.sup = sup
        self.max_age = max_age
        self.builds = 0
        self._key: tuple[object, ...] | None = None
        self._task: asyncio.Task[bytes] | None = None
        self._done_at = 0.0

    def _moved(self) -> tuple[object, ...]:
        rec = self.sup.reconciler
        last = rec.last
        return (id(rec.drains), id(self.sup.last_reload), id(self.sup.config),
                last.finished if last is not None else None)

    async def get(self) -> Encoded:
        """The current document: the one being built (if nothing moved since it
        started), a fresh finished one, or a new build. Never two builds at once: a
        caller that finds a stale build running waits for it to end, then builds (an
        abandoned build would otherwise keep running beside the new one, and under a
        storm of changes they pile up)."""
        while True:
            key = self._moved()
            task = self._task
            if task is not None and not task.done():
                if self._key == key:
                    return Encoded(await asyncio.shield(task))
                await asyncio.wait([task])
                continue
            if (task is not None and self._key == key and not task.cancelled()
                    and task.exception() is None
                    and time.monotonic() - self._done_at <= self.max_age):
                return Encoded(task.result())
            self._task = asyncio.create_task(self._build(), name="status-build")
            self._key = key

    async def _build(self) -> bytes:
        try:
            return await encode_status(self.sup)
        finally:
            self.builds += 1
            self._done_at = time.monotonic()
