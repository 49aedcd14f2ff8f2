"""Fixtures of the BGP speaker tests: the namespace lab and a speaker in a thread.

Topology (prefix `esb`): switch `esb-sw`; routers `esb-r1` (192.0.2.1,
2001:db8::1) and `esb-r2` (192.0.2.2, 2001:db8::2); appliances `esb-a1`
(192.0.2.10, 2001:db8::10) and `esb-a2` (192.0.2.11, 2001:db8::11). ExaBGP runs
inside the appliance namespace; the speaker object runs in a thread of the
test process with its own event loop, driven synchronously by the test.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from speaker.bgp.speaker import ExaBgpSpeaker
from speaker.config import AppConfig
from speaker.lab.netns import Lab, leftover_namespaces, require_root
from tests.bgp.routers import Neighbor, Router, make_router

T = TypeVar("T")
PREFIX = os.environ.get("ESB_LAB_PREFIX", "esb")
"""Namespace prefix of the BGP lab (ESB_LAB_PREFIX lets parallel runs coexist)."""
ROUTER_ADDR = {"r1": ("192.0.2.1", "2001:db8::1"), "r2": ("192.0.2.2", "2001:db8::2")}
APPLIANCE_ADDR = {"a1": ("192.0.2.10", "2001:db8::10"), "a2": ("192.0.2.11", "2001:db8::11")}


REPO = Path(__file__).resolve().parents[2]
EXABGP5_PIN = (REPO / "requirements-exabgp5.lock").read_text().split("==")[1].strip()
"""The ExaBGP 5.0.x the suite also runs against (scripts/install puts it in .cache)."""


def exabgp_executable(version: str) -> str | None:
    """Executable of ExaBGP `version` ('4.2': the venv's pinned 4.2.25, None;
    '5.0': ESB_EXABGP5 or the one scripts/install set up)."""
    if version == "4.2":
        return None
    default = REPO / ".cache" / f"exabgp-{EXABGP5_PIN}" / "bin" / "exabgp"
    path = Path(os.environ.get("ESB_EXABGP5", str(default)))
    if not path.exists():
        pytest.fail(f"ExaBGP {EXABGP5_PIN} missing at {path}: run scripts/install")
    return str(path)


@pytest.fixture(params=["4.2", "5.0"])
def exabgp(request: pytest.FixtureRequest) -> str | None:
    """Runs the test once with ExaBGP 4.2.25 and once with 5.0.x."""
    return exabgp_executable(str(request.param))


def appliance_config(name: str, peers: list[dict[str, Any]], *, local_asn: int = 65010,
                     graceful_restart: bool = True, exabgp: str | None = None) -> AppConfig:
    """A minimal appliance config with these bgp peers (dicts of PeerConfig fields).
    `exabgp`: executable to use (default: env ESB_EXABGP, else the venv's)."""
    router_id = APPLIANCE_ADDR[name][0]
    for peer in peers:
        peer.setdefault("hold_time", 9)
        if graceful_restart:
            peer.setdefault("graceful_restart", {"enabled": True, "restart_time": 30})
    return AppConfig.model_validate({
        "node": {"name": name, "router_id": router_id, "interfaces": [{"name": "eth0"}]},
        "bgp": {"local_asn": local_asn, "peers": peers,
                "exabgp": exabgp or os.environ.get("ESB_EXABGP")},
    })


class SpeakerThread:
    """An ExaBgpSpeaker running in its own thread and event loop."""

    def __init__(self, config: AppConfig, runtime_dir: Path, netns: str | None,
                 **kwargs: Any) -> None:
        self.wakes: list[str] = []
        self.error: BaseException | None = None
        self.loop = asyncio.new_event_loop()
        self.speaker = ExaBgpSpeaker(config, self.wakes.append, runtime_dir=runtime_dir,
                                     netns=netns, **kwargs)
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._task = self.loop.create_task(self.speaker.run())
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported by stop(): run() must never fail
            self.error = exc
        finally:
            self.loop.close()

    def call(self, make: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
        """Run a coroutine of the speaker in its loop and wait for the result."""
        async def wrapper() -> T:
            return await make()
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def sync(self, fn: Callable[[], T]) -> T:
        """Call a plain method of the speaker inside its loop (thread-safe read)."""
        async def wrapper() -> T:
            return fn()
        return self.call(wrapper, 10.0)

    def stop(self) -> None:
        """Cancel run() (ExaBGP is stopped by PID) and join the thread."""
        if self._thread.is_alive() and self._task is not None:
            self.loop.call_soon_threadsafe(self._task.cancel)
            self._thread.join(15)
        if self.error is not None:
            raise AssertionError(f"speaker.run() failed: {self.error!r}") from self.error


@pytest.fixture
def lab() -> Iterator[Lab]:
    """The namespaces: switch, two routers, two appliances; removed afterwards."""
    if not require_root():
        pytest.skip("lab tests need root")
    with Lab(PREFIX) as the_lab:
        sw = the_lab.switch("sw")
        for name, (v4, v6) in {**ROUTER_ADDR, **APPLIANCE_ADDR}.items():
            host = the_lab.host(name)
            the_lab.connect(host, sw, "eth0", [f"{v4}/24", f"{v6}/64"])
        yield the_lab
    assert not leftover_namespaces(PREFIX)


@pytest.fixture
def speakers(tmp_path: Path) -> Iterator[Callable[..., SpeakerThread]]:
    """Factory: start a speaker for appliance NAME with a config; all stopped after."""
    started: list[SpeakerThread] = []

    def start(name: str, config: AppConfig, **kwargs: Any) -> SpeakerThread:
        runner = SpeakerThread(config, tmp_path / f"run-{name}", f"{PREFIX}-{name}", **kwargs)
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.stop()


@pytest.fixture
def routers(lab: Lab, tmp_path: Path) -> Iterator[Callable[..., Router]]:
    """Factory: start a router KIND in namespace esb-NAME; all stopped after."""
    started: list[Router] = []

    def start(kind: str, name: str, neighbors: list[Neighbor], asn: int = 65001,
              router_id: str | None = None, config_text: str | None = None) -> Router:
        router = make_router(kind, lab.namespaces[f"{PREFIX}-{name}"], tmp_path / f"{kind}-{name}",
                             asn, router_id or ROUTER_ADDR[name][0], neighbors, config_text)
        started.append(router)
        return router

    yield start
    for router in started:
        router.stop()
