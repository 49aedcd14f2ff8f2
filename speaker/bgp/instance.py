"""One ExaBGP process for a group of peers (one peer, or all passive peers).

`ExaBgpSpeaker` runs one instance per peer, so that a peer's new settings
restart only that peer's ExaBGP (see docs/bgp.md, "One ExaBGP per peer").
Three tasks run under `run()`: the supervisor of the ExaBGP process (config
written, started, restarted with backoff, restarted on a change of its own
settings), the sync worker (`sync.RibSync`: the only writer to its bridge),
and the diagnosis of sessions that do not come up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from speaker.bgp.channel import BridgeServer
from speaker.bgp.diagnose import explain, read_sockets
from speaker.bgp.events import StateEvent
from speaker.bgp.exaconf import argv, default_executable, environment, package_root, render_config
from speaker.bgp.install import find_install
from speaker.bgp.metrics import EXABGP_RESTARTS
from speaker.bgp.plan import Peer, peers_from_config
from speaker.bgp.process import STABLE_AFTER_S, ExaBgpProcess, restart_delay, source_address
from speaker.bgp.sessions import SessionTable
from speaker.bgp.sync import RibSync
from speaker.config import AppConfig
from speaker.config.bgp import PeerConfig
from speaker.logs import event_log
from speaker.model import BgpAnnouncement, IPAddress, PeerState
from speaker.seams import Wake

LOG = event_log(__name__)
DIAGNOSE_EVERY_S = 2.0
WITHDRAW_SETTLE_S = 0.3
"""After the last withdrawal ack, time for ExaBGP to put the UPDATEs on the wire
before it may be stopped (with graceful restart it closes silently). ExaBGP acks
a command once the route is in its RIB; its reactor sends within a loop turn."""


def instance_key(peer: PeerConfig) -> str:
    """Which ExaBGP a peer belongs to: its own, or the one shared by the passive
    peers (each ExaBGP listening on port 179 of the same address would collide)."""
    return "passive-peers" if peer.passive else f"peer-{peer.name}"


def instance_peers(config: AppConfig, key: str) -> tuple[PeerConfig, ...]:
    """The configured peers of instance `key`."""
    peers = config.bgp.peers if config.bgp is not None else []
    return tuple(p for p in peers if instance_key(p) == key)


class ExaBgpInstance:
    """The peers of one instance key, served by one ExaBGP child process.

    `runtime_dir` (absolute) holds the generated config (`exabgp-KEY.conf`) and
    the bridge socket (a short name: unix socket paths are limited to 108 bytes).
    `netns` runs ExaBGP inside that network namespace (`ip netns exec`), for
    tests that keep the speaker itself in the host namespace. `clock` is the
    monotonic time source of session timestamps."""

    def __init__(self, key: str, config: AppConfig, wake: Wake, *, runtime_dir: Path,
                 netns: str | None = None, clock: Callable[[], float] = time.monotonic,
                 reactor_speed: float | None = None) -> None:
        self.key = key
        self._config = config
        self._wake = wake
        self._dir = runtime_dir.resolve()
        self.conf_path = self._dir / f"exabgp-{key}.conf"
        socket_name = f"{zlib.crc32(key.encode()):08x}.sock"
        self._netns = netns
        self._clock = clock
        self._reactor_speed = reactor_speed
        self._sessions = SessionTable(self._peer_list(config), clock)
        self._sync = RibSync(self._sessions, wake, clock, self._local_asn)
        self._config_changed = asyncio.Event()
        self._process = ExaBgpProcess(self._exabgp_output)
        self._server = BridgeServer(self._dir / socket_name, self._sync.on_connect,
                                    self._on_state)
        self._log_tail: deque[str] = deque(maxlen=40)
        self._restarts = 0
        self._version = ""
        self._last_exit: int | None = None
        self._start_error = ""

    def _local_asn(self) -> int:
        return self._config.bgp.local_asn if self._config.bgp is not None else 0

    def _peer_list(self, config: AppConfig) -> tuple[Peer, ...]:
        if config.bgp is None:
            return ()
        names = {p.name for p in instance_peers(config, self.key)}
        return tuple(p for p in peers_from_config(config.bgp) if p.name in names)

    # -- Component ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run ExaBGP and keep it in step with the desired routes until cancelled."""
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self._server.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._supervise())
                tg.create_task(self._sync.run())
                tg.create_task(self._diagnose_loop())
        finally:
            await self._server.close()
            await self._process.stop()
            self._sessions.exabgp_stopped("stopped")

    def _process_settings(self, config: AppConfig) -> tuple[object, ...]:
        """What this ExaBGP's config and command line are made of (route
        attributes and modes are not: they only change what `set()` receives;
        other peers are not: they have their own ExaBGP)."""
        bgp = config.bgp
        if bgp is None:
            return ()
        return (bgp.local_asn, bgp.router_id, config.node.router_id,
                instance_peers(config, self.key), bgp.exabgp)

    def reconfigure(self, config: AppConfig) -> bool:
        """Adopt a new config. If this instance's peers or the speaker settings
        changed, its ExaBGP is restarted with a new config (its sessions re-form;
        graceful restart keeps the routes at the peers meanwhile) and True is
        returned; other changes need nothing here."""
        old = self._config
        self._config = config
        if self._process_settings(old) == self._process_settings(config):
            return False
        self._sessions.set_peers(self._peer_list(config))
        self._sync.peers_changed()
        LOG.info("bgp_reconfigured", reason="config_changed", instance=self.key,
                 peers=len(self._sessions.peers))
        self._config_changed.set()
        return True

    def process_status(self) -> dict[str, object]:
        """This instance's ExaBGP: running, pid, version, restarts, last exit, log tail."""
        return {"peers": sorted(self._sessions.peers), "running": self._process.pid is not None,
                "pid": self._process.pid, "version": self._version,
                "restarts": self._restarts, "last_exit": self._last_exit,
                "start_error": self._start_error, "log_tail": list(self._log_tail)[-10:]}

    def session_status(self) -> dict[str, dict[str, object]]:
        """Per peer: state, since, reason, detail, announced (sent on the
        established session) and pending (held by ExaBGP, not sent yet)."""
        now = self._clock()
        out: dict[str, dict[str, object]] = {}
        for name, state in self.sessions().items():
            session = self._sessions.get(name)
            out[name] = {"address": state.address, "state": state.state,
                         "since": state.since, "for_s": round(now - state.since, 3),
                         "reason": state.reason, "detail": session.detail if session else "",
                         "announced": state.announced,
                         "pending": len(set(self._sync.ribs.get(name, {}))
                                        - set(self._sync.sent.get(name, {})))}
        return out

    # -- BgpSpeaker (the speaker validates values before it calls set) -------------------

    async def set(self, wanted: frozenset[BgpAnnouncement]) -> None:
        """Make exactly these routes announced to this instance's peers. Returns
        once ExaBGP acknowledged the change, or at once while ExaBGP is down (the
        routes follow when it is back)."""
        if wanted == self._sync.desired and self._sync.clean:
            return  # periodic resync, all acked: nothing to do (10,000 routes cost ~0.1 s)
        await self._sync.set_desired(wanted)

    def announced_to(self) -> dict[str, frozenset[BgpAnnouncement]]:
        """Per peer: what was sent over the established session."""
        return {name: frozenset(rib.values()) for name, rib in self._sync.sent.items()}

    def accepted(self) -> frozenset[BgpAnnouncement]:
        """What this instance holds and keeps delivering (desired minus refused)."""
        return self._sync.accepted()

    def sessions(self) -> Mapping[str, PeerState]:
        """Session state per peer name (`announced`: prefixes sent on the session)."""
        return self._sessions.states(lambda name: len(self._sync.sent.get(name, {})))

    async def withdraw_all(self) -> None:
        """Withdraw every route, wait for the acks, then give ExaBGP a moment to
        send the UPDATEs (planned stop: with graceful restart negotiated ExaBGP
        closes without NOTIFICATION, so routes must be gone before)."""
        await self.set(frozenset())
        if self._sync.connected():
            remaining = self._sync.last_withdraw + WITHDRAW_SETTLE_S - self._clock()
            if remaining > 0:
                await asyncio.sleep(remaining)
        LOG.info("bgp_withdrawn_all", reason="planned_stop")

    # -- ExaBGP process ---------------------------------------------------------------------

    async def _supervise(self) -> None:
        quick_failures = 0
        while True:
            self._config_changed.clear()
            started = self._clock()
            planned = False
            reason = "exabgp_exited"
            try:
                planned = await self._run_exabgp()
            except (OSError, RuntimeError, ValueError) as exc:
                LOG.error("exabgp_start_failed", reason="exabgp_start_failed", error=repr(exc))
                reason, self._start_error = "exabgp_start_failed", repr(exc)
            self._after_exit("exabgp_restarting" if planned else reason)
            if planned:
                quick_failures = 0
                continue
            self._restarts += 1
            EXABGP_RESTARTS.inc()
            if self._clock() - started >= STABLE_AFTER_S:
                quick_failures = 0
            delay = restart_delay(quick_failures)
            quick_failures += 1
            LOG.warning("exabgp_restart_scheduled", reason="exabgp_exited", delay_s=delay,
                        exit_code=self._last_exit)
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                # cancellation that arrives as the event fires (gh-86296).
                async with asyncio.timeout(delay):
                    await self._config_changed.wait()

    async def _run_exabgp(self) -> bool:
        """One life of ExaBGP; True if it was stopped for a config change."""
        bgp = self._config.bgp
        if bgp is None:
            self._sessions.exabgp_stopped("bgp_not_configured")
            await self._config_changed.wait()
            return True
        exe = Path(bgp.exabgp) if bgp.exabgp else default_executable()
        install = await find_install(exe)
        self._version = install.version.text
        if install.version.major < 5 and install.python is None:
            LOG.warning("exabgp_refresh_unrepaired", reason="not_a_pip_console_script",
                        exabgp=str(exe), version=install.version.text)
        local: dict[str, IPAddress] = {}
        peers = instance_peers(self._config, self.key)
        bgp = bgp.model_copy(update={"peers": list(peers)})
        for peer in peers:
            if peer.keepalive is not None and abs(peer.keepalive - peer.hold_time / 3) > 0.5:
                LOG.warning("bgp_keepalive_ignored", reason="exabgp_uses_hold_time_third",
                            peer=peer.name, keepalive_s=peer.keepalive,
                            used_s=round(peer.hold_time) / 3)
            if peer.local_address is None:
                found = await source_address(peer.address, self._netns)
                if found is not None:
                    local[peer.name] = found
        text = render_config(bgp, node_router_id=str(self._config.node.router_id),
                             local_addresses=local, python=Path(sys.executable),
                             bridge_socket=self._server.path)
        conf = self.conf_path
        tmp = conf.with_suffix(".tmp")
        # 0600: the file holds the TCP-MD5 passwords (base64 is not a secret)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o600)  # an older tmp file may have had other modes
        os.replace(tmp, conf)
        bind = tuple(str(p.local_address or local.get(p.name) or "") for p in bgp.peers
                     if p.passive)
        env = environment(os.environ, python_path=package_root(), bind=bind,
                          reactor_speed=self._reactor_speed)
        self._sessions.exabgp_started()
        self._start_error = ""
        command = argv(exe, conf, install.version, self._netns, install.python)
        run = asyncio.create_task(self._process.run_once(command, env, self._dir))
        change = asyncio.create_task(self._config_changed.wait())
        try:
            await asyncio.wait({run, change}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            change.cancel()
            if not run.done():
                await self._process.stop()
            self._last_exit = await run
        return self._config_changed.is_set()

    def _after_exit(self, reason: str) -> None:
        self._sessions.exabgp_stopped(reason)
        self._sync.exabgp_gone()
        self._wake("exabgp_exited")

    def _exabgp_output(self, line: str) -> None:
        self._log_tail.append(line)
        lowered = line.lower()
        if "error" in lowered or "critical" in lowered or "traceback" in lowered:
            LOG.warning("exabgp_output", reason="exabgp_error", line=line[:300])
        else:
            LOG.debug("exabgp_output", reason="exabgp_log", line=line[:300])

    # -- Bridge events ----------------------------------------------------------------------

    def _on_state(self, event: StateEvent) -> None:
        name = self._sessions.on_event(event)
        session = self._sessions.get(name) if name is not None else None
        if name is None or session is None:
            return
        LOG.info(f"bgp_session_{event.state}", reason=session.reason, peer=name,
                 detail=session.detail)
        if event.state == "up":
            self._sync.session_up(name)
        elif event.state == "down":
            self._sync.session_down(name)
        self._wake(f"bgp_session_{event.state}")

    # -- Diagnosis ------------------------------------------------------------------------------

    async def _diagnose_loop(self) -> None:
        while True:
            await asyncio.sleep(DIAGNOSE_EVERY_S)
            pid = self._process.pid
            if pid is None:
                continue
            now = self._clock()
            sockets = None
            for name, peer in self._sessions.peers.items():
                session = self._sessions.get(name)
                if session is None or session.state == "up" or now - session.since < 3.0:
                    continue
                if sockets is None:
                    sockets = read_sockets(pid)
                self._sessions.diagnosed(name, explain(peer.address, peer.md5, sockets))
