"""An asyncio loop on a thread that lives in a lab network namespace.

setns(CLONE_NEWNET) changes the namespace of the calling thread only, so a
test can run the health checker (or a server) in a lab namespace without a
subprocess: sockets, and commands the loop starts, belong to that namespace.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

_CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def enter_netns(name: str) -> None:
    """Move the calling thread into network namespace `name`."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


class NsLoop:
    """A running event loop in a namespace; `call()` runs a coroutine on it."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"nsloop-{netns}", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            enter_netns(self.netns)
        except OSError as exc:
            self._error = exc
            self._ready.set()
            return
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run `coro` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        """Start `coro` as a task on the loop (cancelled when the loop closes)."""
        async def start() -> asyncio.Future[Any]:
            return asyncio.ensure_future(coro)
        return self.call(start())

    def cancel(self, future: asyncio.Future[Any]) -> None:
        """Cancel a task started with spawn() and wait until it has finished."""
        async def stop() -> None:
            future.cancel()
            await asyncio.gather(future, return_exceptions=True)
        self.call(stop())

    def close(self) -> None:
        """Stop the loop (its tasks are cancelled) and join the thread."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
