"""Child processes of the appliance: spawn with limits, die with the parent, framed channel.

The one place that knows how `speaker run` starts a helper process of its own
(the isolated config parser, the time-critical protocol child, BFD):

- `preexec(...)` builds the `preexec_fn` that makes a child die with its parent
  (PR_SET_PDEATHSIG) and caps its address space / CPU time (setrlimit);
- `Channel` is a small, bounded, typed message channel over a stream socket
  (a `socketpair()`): each message is one JSON object prefixed with its length
  as 4 big-endian bytes; frames above `max_frame` are refused on both sides;
- `Backoff` is the restart delay of a supervised child (doubles on each crash up
  to a ceiling, resets after the child stayed up for `stable_after` seconds).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import resource
import signal
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PR_SET_PDEATHSIG = 1
MAX_FRAME = 1 << 20
"""Default largest message (1 MiB): a full desired state of thousands of VIPs fits."""
_HEADER = struct.Struct("!I")


def set_pdeathsig(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def preexec(*, memory_bytes: int | None = None, cpu_seconds: int | None = None,
            deathsig: int = signal.SIGKILL) -> Callable[[], None]:
    """A `preexec_fn`: die with the parent; optional RLIMIT_AS and RLIMIT_CPU caps."""

    def setup() -> None:
        set_pdeathsig(deathsig)
        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        if cpu_seconds is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))

    return setup


class ChannelError(Exception):
    """The peer sent something that is not a valid frame (too large, not a JSON object)."""


_POLICIES = {getattr(os, n): n.removeprefix("SCHED_").lower()
             for n in ("SCHED_OTHER", "SCHED_RR", "SCHED_FIFO", "SCHED_BATCH", "SCHED_IDLE")
             if hasattr(os, n)}


def scheduling(pid: int | None) -> str | None:
    """How the kernel schedules process `pid`: `rr:10`, `fifo:N`, or `other:nice-10`
    (None if it is gone). Read from outside, so it says what the child really got."""
    if pid is None:
        return None
    try:
        policy = os.sched_getscheduler(pid)
        if policy in (getattr(os, "SCHED_RR", -1), getattr(os, "SCHED_FIFO", -1)):
            return f"{_POLICIES[policy]}:{os.sched_getparam(pid).sched_priority}"
        return f"{_POLICIES.get(policy, str(policy))}:nice{os.getpriority(os.PRIO_PROCESS, pid)}"
    except OSError:
        return None


def encode_frame(message: dict[str, Any], max_frame: int = MAX_FRAME) -> bytes:
    """One message as bytes on the wire (length prefix + compact JSON)."""
    body = json.dumps(message, separators=(",", ":"), default=str).encode()
    if len(body) > max_frame:
        raise ChannelError(f"message of {len(body)} bytes exceeds {max_frame}")
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    """The JSON object of one frame body (ChannelError if it is not one)."""
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ChannelError(f"not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ChannelError("a message is a JSON object with a string 'type'")
    return message


@dataclass(slots=True)
class Channel:
    """Length-prefixed JSON messages over one asyncio stream (either end)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    max_frame: int = MAX_FRAME

    @classmethod
    async def open(cls, sock: Any, max_frame: int = MAX_FRAME) -> Channel:
        """Wrap a connected stream socket (one end of a `socketpair()`)."""
        reader, writer = await asyncio.open_connection(sock=sock, limit=max_frame + 4)
        return cls(reader, writer, max_frame)

    def send(self, message: dict[str, Any]) -> None:
        """Queue one message (never blocks; the transport buffers)."""
        self.writer.write(encode_frame(message, self.max_frame))

    async def receive(self) -> dict[str, Any]:
        """The next message; EOFError when the peer closed the channel."""
        try:
            header = await self.reader.readexactly(_HEADER.size)
        except asyncio.IncompleteReadError:
            raise EOFError("channel closed") from None
        (size,) = _HEADER.unpack(header)
        if size > self.max_frame:
            raise ChannelError(f"frame of {size} bytes exceeds {self.max_frame}")
        try:
            body = await self.reader.readexactly(size)
        except asyncio.IncompleteReadError:
            raise EOFError("channel closed mid-frame") from None
        return decode_body(body)

    def close(self) -> None:
        """Close our end."""
        self.writer.close()


@dataclass(slots=True)
class Backoff:
    """Restart delay of a supervised child: 0.1 s, 0.2 s, ... up to `ceiling`."""

    initial: float = 0.1
    ceiling: float = 5.0
    stable_after: float = 30.0
    _next: float = field(default=0.0, init=False)

    def delay(self, uptime: float) -> float:
        """Seconds to wait before restarting a child that ran for `uptime` seconds."""
        if uptime >= self.stable_after or self._next == 0.0:
            self._next = self.initial
        else:
            self._next = min(self.ceiling, self._next * 2)
        return self._next
