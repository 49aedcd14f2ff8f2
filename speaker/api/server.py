"""Server side of the status/admin API: one JSON request line, one JSON response line.

Requests: {"command": "status"|"reload"|"drain"|"undrain"|"ping", "args": {...}}.
Responses: {"ok": true, "result": ...} or {"ok": false, "error": "..."}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from speaker.logs import event_log

LOG = event_log(__name__)
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class ApiServer:
    """Serves registered command handlers on a unix socket."""

    def __init__(self, path: Path, mode: int = 0o660) -> None:
        self.path = path
        self.mode = mode
        self.handlers: dict[str, Handler] = {}

    def register(self, command: str, handler: Handler) -> None:
        """Serve `command` with `handler(args) -> result`."""
        self.handlers[command] = handler

    async def _serve_one(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            try:
                request = json.loads(line)
                command, args = request["command"], request.get("args") or {}
                handler = self.handlers[command]
            except (ValueError, KeyError, TypeError):
                response: dict[str, Any] = {"ok": False, "error": "bad request"}
            else:
                try:
                    response = {"ok": True, "result": await handler(args)}
                except (ValueError, KeyError) as exc:
                    # str(KeyError) adds quotes; a ValueError's message is kept whole
                    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args \
                        else str(exc)
                    response = {"ok": False, "error": message}
            writer.write(json.dumps(response, default=str).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError) as exc:
            LOG.debug("api_client_error", reason=type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def run(self) -> None:
        """Listen until cancelled; remove the socket file on the way out."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        server = await asyncio.start_unix_server(self._serve_one, path=str(self.path))
        os.chmod(self.path, self.mode)
        LOG.info("api_listening", socket=str(self.path))
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
