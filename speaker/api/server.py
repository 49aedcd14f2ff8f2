"""Server side of the status/admin API: one JSON request line, one JSON response line.

Requests: {"command": "status"|"reload"|"drain"|"undrain"|"ping", "args": {...}}.
Responses: {"ok": true, "result": ...} or {"ok": false, "error": "..."}. A handler
may return an `Encoded` result (JSON already, e.g. the 15 MB status document at
10,000 VIPs, built slice by slice): it is sent as is, in pieces, each written
once the client has read the previous one (memory stays bounded per client).

Bounded, so no client can stall the supervisor: at most `max_concurrent`
requests are served at once (more get `{"ok": false, "error": "busy"}` at
once), a request line is at most `max_request` bytes ("request too large"),
the line must arrive within `read_timeout`, and a handler that runs longer
than its command's timeout answers "timeout".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speaker.logs import event_log

LOG = event_log(__name__)
Handler = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_CONCURRENT = 32
MAX_REQUEST = 64 * 1024
READ_TIMEOUT_S = 5.0
HANDLER_TIMEOUT_S = {"reload": 30.0, "drain": 30.0, "undrain": 30.0, "plan": 30.0}
DEFAULT_HANDLER_TIMEOUT_S = 10.0
WRITE_PIECE = 256 * 1024
"""Bytes handed to the socket between two drains."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """A handler's result that is already JSON (UTF-8): sent as is."""

    body: bytes


class ApiServer:
    """Serves registered command handlers on a unix socket."""

    def __init__(self, path: Path, mode: int = 0o660, *, max_concurrent: int = MAX_CONCURRENT,
                 max_request: int = MAX_REQUEST, read_timeout: float = READ_TIMEOUT_S) -> None:
        self.path = path
        self.mode = mode
        self.handlers: dict[str, Handler] = {}
        self.max_concurrent = max_concurrent
        self.max_request = max_request
        self.read_timeout = read_timeout
        self.active = 0
        self.refused = 0
        """Requests answered "busy" since start."""

    def register(self, command: str, handler: Handler) -> None:
        """Serve `command` with `handler(args) -> result`."""
        self.handlers[command] = handler

    async def _serve_one(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        if self.active >= self.max_concurrent:
            self.refused += 1
            # read the request first: closing with unread data resets the connection
            # before the client has read "busy"
            with contextlib.suppress(TimeoutError, ValueError, asyncio.LimitOverrunError,
                                     ConnectionError):
                async with asyncio.timeout(0.2):
                    await reader.readline()
            await self._answer(writer, {"ok": False, "error": "busy"})
            return
        self.active += 1
        try:
            response = await self._respond(reader)
            if response is not None:
                await self._answer(writer, response)
        finally:
            self.active -= 1
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(self.read_timeout):
                line = await reader.readline()
        except (ValueError, asyncio.LimitOverrunError):
            return {"ok": False, "error": f"request too large (limit {self.max_request} bytes)"}
        except (TimeoutError, ConnectionError) as exc:
            LOG.debug("api_client_error", reason=type(exc).__name__)
            return None
        try:
            request = json.loads(line)
            command, args = request["command"], request.get("args") or {}
            handler = self.handlers[command]
            if not isinstance(args, dict):
                raise TypeError("args")
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": "bad request"}
        try:
            async with asyncio.timeout(HANDLER_TIMEOUT_S.get(command,
                                                             DEFAULT_HANDLER_TIMEOUT_S)):
                return {"ok": True, "result": await handler(args)}
        except TimeoutError:
            return {"ok": False, "error": f"timeout: {command} did not finish"}
        except (ValueError, KeyError) as exc:
            # str(KeyError) adds quotes; a ValueError's message is kept whole
            message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            return {"ok": False, "error": message}

    @staticmethod
    def _encode(response: dict[str, Any]) -> bytes:
        result = response.get("result")
        if isinstance(result, Encoded):
            return b'{"ok": true, "result": ' + result.body + b"}\n"
        return json.dumps(response, default=str).encode() + b"\n"

    @classmethod
    async def _answer(cls, writer: asyncio.StreamWriter, response: dict[str, Any]) -> None:
        try:
            data = memoryview(cls._encode(response))
            for start in range(0, len(data), WRITE_PIECE):
                writer.write(data[start:start + WRITE_PIECE])
                async with asyncio.timeout(READ_TIMEOUT_S):  # a client that does not read
                    await writer.drain()
        except (TimeoutError, ConnectionError) as exc:
            LOG.debug("api_client_error", reason=type(exc).__name__)
        finally:
            writer.close()

    async def run(self) -> None:
        """Listen until cancelled; remove the socket file on the way out."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        server = await asyncio.start_unix_server(self._serve_one, path=str(self.path),
                                                 limit=self.max_request, backlog=4096)
        os.chmod(self.path, self.mode)
        LOG.info("api_listening", socket=str(self.path))
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
