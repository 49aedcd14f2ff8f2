"""A BfdRunner in its own thread and event loop, its child inside a lab namespace."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from speaker.bfd.runner import BfdPeerState, BfdRunner
from speaker.config import AppConfig


class RunnerThread:
    """Runs `BfdRunner.run()` until stop(); reads are thread-safe snapshots."""

    def __init__(self, config: AppConfig, netns: str) -> None:
        self.wakes: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.runner = BfdRunner(config, self.wakes.append, netns=netns)
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._task = self.loop.create_task(self.runner.run())
        try:
            self.loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported by stop()
            self.error = exc
        finally:
            self.loop.close()

    def _call(self, fn: Any, *args: Any) -> Any:
        async def wrapper() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(10)

    def sessions(self) -> dict[str, BfdPeerState]:
        """BFD state per peer."""
        return dict(self._call(self.runner.sessions))

    def status(self) -> dict[str, Any]:
        """The runner's status()."""
        result: dict[str, Any] = self._call(self.runner.status)
        return result

    def reconfigure(self, config: AppConfig) -> None:
        """Adopt a new config in the runner's loop."""
        self._call(self.runner.reconfigure, config)

    def stop(self) -> None:
        """Cancel run() (the child is stopped by PID) and join."""
        if self._thread.is_alive() and self._task is not None:
            self.loop.call_soon_threadsafe(self._task.cancel)
            self._thread.join(15)
        if self.error is not None:
            raise AssertionError(f"BfdRunner.run() failed: {self.error!r}") from self.error
