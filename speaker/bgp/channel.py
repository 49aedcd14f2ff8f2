"""The speaker's end of the bridge: a unix socket, commands and their acks.

ExaBGP answers every command with `done` or `error`, in order, on the same
stream that carries its JSON events. `BridgeConnection` keeps the commands in
flight in a FIFO, resolves the oldest on each ack, collects the text lines of a
`show` query, and hands state events to a callback. A window bounds the
commands in flight (backpressure); a command unanswered for `ack_timeout`
means the stream lost step, so the connection is closed and the speaker
resynchronises over the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from speaker.bgp.commands import check_line
from speaker.bgp.events import Ack, Ignored, StateEvent, Text, parse_line
from speaker.logs import event_log

LOG = event_log(__name__)
WINDOW = 4
"""Commands in flight. Small on purpose: a new line reaching ExaBGP on every
reactor turn keeps it from sleeping; a deep queue is read in one go and then
worked through with a sleep per turn."""
ACK_TIMEOUT_S = 30.0


class ConnectionLostError(Exception):
    """The bridge went away with commands in flight (their outcome is unknown)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """Outcome of one command: ack plus any text lines it produced."""

    ok: bool
    lines: tuple[str, ...] = ()


@dataclass
class _Pending:
    future: asyncio.Future[Reply]
    line: str
    text: list[str] = field(default_factory=list)


class BridgeConnection:
    """One connection from the bridge (one life of ExaBGP's API process)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_state: Callable[[StateEvent], None], *, window: int = WINDOW,
                 ack_timeout: float = ACK_TIMEOUT_S) -> None:
        self._reader = reader
        self._writer = writer
        self._on_state = on_state
        self._pending: deque[_Pending] = deque()
        self._slots = asyncio.Semaphore(window)
        self._ack_timeout = ack_timeout
        self.closed = asyncio.Event()

    async def read_loop(self) -> None:
        """Dispatch ExaBGP's lines until the bridge closes; then fail what is in flight."""
        try:
            while True:
                raw = await self._reader.readline()
                if not raw:
                    break
                self._dispatch(raw.decode("utf-8", "replace"))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            LOG.warning("bridge_read_failed", reason="read_error", error=repr(exc))
        finally:
            self.close()

    def _dispatch(self, raw: str) -> None:
        msg = parse_line(raw)
        if isinstance(msg, Ack):
            if not self._pending:
                LOG.warning("bridge_unexpected_ack", reason="ack_without_command")
                return
            pending = self._pending.popleft()
            self._slots.release()
            if not pending.future.done():
                pending.future.set_result(Reply(msg.ok, tuple(pending.text)))
            if not msg.ok:
                LOG.warning("exabgp_command_failed", reason="error_ack", line=pending.line[:200])
        elif isinstance(msg, StateEvent):
            self._on_state(msg)
        elif isinstance(msg, Text):
            if self._pending:
                self._pending[0].text.append(msg.line)
        elif isinstance(msg, Ignored):
            pass

    def close(self) -> None:
        """Close the stream and fail every command still waiting for its ack."""
        if self.closed.is_set():
            return
        self.closed.set()
        with contextlib.suppress(Exception):
            self._writer.close()
        while self._pending:
            pending = self._pending.popleft()
            if not pending.future.done():
                pending.future.set_exception(ConnectionLostError(pending.line[:80]))
        LOG.info("bridge_disconnected", reason="closed")

    async def submit(self, line: str) -> asyncio.Future[Reply]:
        """Send one line (waiting for a free slot in the window); the future
        resolves on its ack."""
        check_line(line)
        await self._slots.acquire()
        if self.closed.is_set():
            self._slots.release()
            raise ConnectionLostError("bridge closed")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(future, line))
        self._writer.write(line.encode("ascii") + b"\n")
        await self._writer.drain()
        return future

    async def wait(self, future: asyncio.Future[Reply]) -> Reply:
        """The reply to a submitted line; a stuck stream is closed."""
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancellation that arrives as the future completes (gh-86296).
            async with asyncio.timeout(self._ack_timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            LOG.error("exabgp_ack_timeout", reason="ack_timeout", timeout_s=self._ack_timeout)
            self.close()
            raise ConnectionLostError("ack timeout") from None

    async def request(self, line: str) -> Reply:
        """Send one line and wait for its ack."""
        return await self.wait(await self.submit(line))

    async def request_many(self, lines: Sequence[str]) -> list[Reply]:
        """Pipeline lines through the window; replies in order."""
        futures = [await self.submit(line) for line in lines]
        return [await self.wait(f) for f in futures]

    async def barrier(self, line: str) -> Reply:
        """Send a line only once nothing else is in flight. ExaBGP answers some
        commands (an End-of-RIB to a peer that just went down) synchronously,
        ahead of queued ones; alone in flight its ack cannot be misattributed."""
        while self._pending and not self.closed.is_set():
            await self.wait(self._pending[-1].future)
        return await self.request(line)


class BridgeServer:
    """Listens on the unix socket the bridge connects to; one live connection."""

    def __init__(self, path: Path, on_connect: Callable[[BridgeConnection], None],
                 on_state: Callable[[StateEvent], None], *,
                 ack_timeout: float = ACK_TIMEOUT_S) -> None:
        self.path = path
        self._ack_timeout = ack_timeout
        self._on_connect = on_connect
        self._on_state = on_state
        self._server: asyncio.Server | None = None
        self.current: BridgeConnection | None = None

    async def start(self) -> None:
        """Bind the socket (owner-only permissions).

        The socket lives in a 0700 directory, so nobody else can reach it between the
        bind and the chmod; the umask is never touched (it is per process: a temporary
        0077 made files that other threads created meanwhile unreadable to others)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path.parent.chmod(0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.path))
        self.path.chmod(0o600)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.current is not None:
            self.current.close()
        conn = BridgeConnection(reader, writer, self._on_state, ack_timeout=self._ack_timeout)
        self.current = conn
        LOG.info("bridge_connected", reason="connected")
        self._on_connect(conn)
        await conn.read_loop()

    async def close(self) -> None:
        """Stop listening and drop the live connection."""
        if self.current is not None:
            self.current.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
