"""The speaker's supervision of ExaBGP, with stand-in executables (no network):
a crash loop backs off and is counted; set() never blocks while ExaBGP is away;
a missing executable is reported, not raised."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
import sys
from collections.abc import Callable
from ipaddress import ip_network
from pathlib import Path

from speaker.bgp.speaker import ExaBgpSpeaker
from speaker.config import AppConfig
from speaker.model import BgpAnnouncement

VIP = BgpAnnouncement(ip_network("203.0.113.10/32"))


def config(exabgp: Path) -> AppConfig:
    """One peer with a local address (no route lookup needed)."""
    return AppConfig.model_validate({
        "node": {"name": "a1", "router_id": "192.0.2.10", "interfaces": [{"name": "eth0"}]},
        "bgp": {"local_asn": 65010, "exabgp": str(exabgp), "peers": [
            {"name": "r1", "address": "192.0.2.1", "asn": 65001,
             "local_address": "192.0.2.10"}]}})


def stand_in_exabgp(tmp_path: Path, body: str) -> Path:
    """An 'exabgp' that knows its version and otherwise runs `body` (Python)."""
    path = tmp_path / "exabgp"
    path.write_text(f"#!{sys.executable}\nimport sys, time\n"
                    "if '--version' in sys.argv: print('ExaBGP : 4.2.25'); sys.exit(0)\n"
                    f"{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def crashing_exabgp(tmp_path: Path) -> Path:
    """Exits 3 at once."""
    return stand_in_exabgp(tmp_path, "print('boom'); sys.exit(3)")


def test_crash_loop_backs_off_is_counted_and_set_does_not_block(tmp_path: Path) -> None:
    wakes: list[str] = []
    spk = ExaBgpSpeaker(config(crashing_exabgp(tmp_path)), wakes.append,
                        runtime_dir=tmp_path / "run")
    reasons: list[str] = []

    async def scenario() -> dict[str, object]:
        task = asyncio.create_task(spk.run())
        for _ in range(50):  # 2.5 s; the reason between two lives names the crash
            await asyncio.sleep(0.05)
            reasons.append(spk.sessions()["r1"].reason)
        async with asyncio.timeout(1):
            await spk.set([VIP])  # returns although nothing can be sent
        status = spk.status()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return status

    status = asyncio.run(scenario())
    exabgp = status["exabgp"]
    assert isinstance(exabgp, dict)
    # delays 0, 0.5, 1, 2 s: 3 or 4 restarts in 2.5 s, not hundreds
    assert 2 <= exabgp["restarts"] <= 5
    assert exabgp["last_exit"] == 3
    assert "boom" in exabgp["log_tail"]
    assert "exabgp_exited" in reasons
    assert spk.accepted() == {VIP}, "held for when ExaBGP is back: not re-planned each resync"
    assert spk.sessions()["r1"].state == "idle"
    assert spk.announced() == frozenset()
    assert status["desired"] == 1
    assert "exabgp_exited" in wakes
    json.dumps(status)  # JSON-ready
    assert not list((tmp_path / "run").glob("*.sock"))
    conf = tmp_path / "run" / "exabgp-peer-r1.conf"
    assert conf.stat().st_mode & 0o077 == 0, "the config holds the MD5 passwords"


def test_missing_executable_is_reported_in_status(tmp_path: Path) -> None:
    spk = ExaBgpSpeaker(config(tmp_path / "nowhere" / "exabgp"), lambda _: None,
                        runtime_dir=tmp_path / "run")

    async def scenario() -> dict[str, object]:
        task = asyncio.create_task(spk.run())
        await asyncio.sleep(0.5)
        status = spk.status()
        status["reason"] = spk.sessions()["r1"].reason
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return status

    status = asyncio.run(scenario())
    exabgp = status["exabgp"]
    assert isinstance(exabgp, dict)
    assert "nowhere" in exabgp["start_error"]
    assert status["reason"] == "exabgp_start_failed"


def test_set_refuses_unsafe_values_before_changing_anything(tmp_path: Path) -> None:
    spk = ExaBgpSpeaker(config(crashing_exabgp(tmp_path)), lambda _: None,
                        runtime_dir=tmp_path / "run")

    async def scenario() -> None:
        await spk.set([VIP])
        bad = BgpAnnouncement(ip_network("203.0.113.11/32"), local_pref=-5)
        try:
            await spk.set([VIP, bad])
        except ValueError:
            pass
        else:
            raise AssertionError("an unsafe local_pref was accepted")

    asyncio.run(scenario())
    assert spk.status()["desired"] == 1


def sleeping_exabgp(tmp_path: Path) -> Path:
    """Stays up."""
    return stand_in_exabgp(tmp_path, "time.sleep(60)")


def test_reconfigure_restarts_exabgp_only_for_its_own_settings(tmp_path: Path) -> None:
    base = config(sleeping_exabgp(tmp_path))
    assert base.bgp is not None
    spk = ExaBgpSpeaker(base, lambda _: None, runtime_dir=tmp_path / "run")
    mode_only = base.model_copy(update={"bgp": base.bgp.model_copy(
        update={"mode": "active-backup"})})
    new_peer = base.bgp.peers[0].model_copy(update={"hold_time": 30.0})
    hold_changed = base.model_copy(update={"bgp": base.bgp.model_copy(
        update={"peers": [new_peer]})})

    async def pid_after(seconds: float) -> object:
        await asyncio.sleep(seconds)
        return spk.status()["exabgp"]["pid"]  # type: ignore[index]

    async def scenario() -> tuple[object, object, object, object]:
        task = asyncio.create_task(spk.run())
        first = await pid_after(0.5)
        spk.reconfigure(mode_only)
        same = await pid_after(0.5)
        spk.reconfigure(hold_changed)
        second = await pid_after(1.0)
        restarts = spk.status()["exabgp"]["restarts"]  # type: ignore[index]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return first, same, second, restarts

    first, same, second, restarts = asyncio.run(scenario())
    assert isinstance(first, int)
    assert same == first, "a mode change does not touch ExaBGP"
    assert isinstance(second, int)
    assert second != first, "a peer change restarts ExaBGP with the new config"
    assert restarts == 0, "a planned restart is not counted as a crash"
    assert "hold-time 30;" in (tmp_path / "run" / "exabgp-peer-r1.conf").read_text()


def test_one_exabgp_per_peer_and_reconfigure_touches_only_the_changed_one(
        tmp_path: Path) -> None:
    base = config(sleeping_exabgp(tmp_path))
    assert base.bgp is not None
    r2 = base.bgp.peers[0].model_copy(update={"name": "r2", "address": "192.0.2.2"})
    two = base.model_copy(update={"bgp": base.bgp.model_copy(
        update={"peers": [base.bgp.peers[0], r2]})})
    r2_changed = r2.model_copy(update={"hold_time": 30.0})
    changed = two.model_copy(update={"bgp": two.bgp.model_copy(  # type: ignore[union-attr]
        update={"peers": [base.bgp.peers[0], r2_changed]})})
    spk = ExaBgpSpeaker(two, lambda _: None, runtime_dir=tmp_path / "run")

    def pids() -> dict[str, object]:
        processes = spk.status()["processes"]
        assert isinstance(processes, dict)
        return {key: p["pid"] for key, p in processes.items()}

    async def until(check: Callable[[dict[str, object]], bool]) -> dict[str, object]:
        async with asyncio.timeout(20):  # polled: the machine may be loaded
            while not check(now := pids()):  # noqa: ASYNC110 - polls the speaker's state
                await asyncio.sleep(0.05)
        return now

    def running(now: dict[str, object]) -> bool:
        return all(isinstance(p, int) for p in now.values())

    async def scenario() -> list[dict[str, object]]:
        task = asyncio.create_task(spk.run())
        seen = [await until(lambda now: len(now) == 2 and running(now))]
        spk.reconfigure(changed)
        seen.append(await until(lambda now: running(now)
                                and now["peer-r2"] != seen[0]["peer-r2"]))
        spk.reconfigure(base)  # r2 removed: withdrawn from (nothing to send) and stopped
        seen.append(await until(lambda now: len(now) == 1))
        await asyncio.sleep(0.3)
        seen[-1] = pids()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return seen

    first, after_change, after_removal = asyncio.run(scenario())
    assert set(first) == {"peer-r1", "peer-r2"}
    assert all(isinstance(p, int) for p in first.values())
    assert first["peer-r1"] != first["peer-r2"], "one ExaBGP per peer"
    assert after_change["peer-r1"] == first["peer-r1"], "r1's ExaBGP is left alone"
    assert isinstance(after_change["peer-r2"], int)
    assert after_change["peer-r2"] != first["peer-r2"], "r2's ExaBGP restarted"
    assert after_removal == {"peer-r1": first["peer-r1"]}
    assert "hold-time 30;" in (tmp_path / "run" / "exabgp-peer-r2.conf").read_text()
    assert "192.0.2.2" not in (tmp_path / "run" / "exabgp-peer-r1.conf").read_text()
