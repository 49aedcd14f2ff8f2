"""IPVS sync daemons: plan (stop what changed, start what is missing), the wire
format (our encoder read back by our decoder, as the kernel's dump would be), and
the connection-sync edge's sysctl handling on a fake /proc/sys."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from dataplane.connsync import ConnSyncState, KernelConnSync
from dataplane.ipvs import codec
from dataplane.ipvs.syncd import (
    ATTR_DAEMON,
    D_MCAST_PORT,
    D_STATE,
    StartDaemon,
    StopDaemon,
    SyncDaemon,
    SyncDaemonKernel,
    daemon_attr,
    decode_daemon,
    plan_daemons,
)

MASTER = SyncDaemon("master", "eth0", 7)
BACKUP = SyncDaemon("backup", "eth0", 7)


def test_plan_starts_missing_and_restarts_changed() -> None:
    assert plan_daemons([MASTER], []) == (StartDaemon(MASTER),)
    assert plan_daemons([MASTER], [MASTER]) == ()
    # Leadership lost: the master stops, a backup starts.
    assert plan_daemons([BACKUP], [MASTER]) == (StopDaemon("master"), StartDaemon(BACKUP))
    changed = SyncDaemon("master", "eth1", 7)
    assert plan_daemons([changed], [MASTER]) == (StopDaemon("master"), StartDaemon(changed))
    assert plan_daemons([], [MASTER, BACKUP]) == (StopDaemon("backup"), StopDaemon("master"))


def test_kernel_chosen_max_len_is_not_a_change() -> None:
    running = SyncDaemon("master", "eth0", 7, max_len=1472)
    assert plan_daemons([MASTER], [running]) == ()
    assert plan_daemons([SyncDaemon("master", "eth0", 7, max_len=1000)], [running])


def _as_dump(attr: bytes) -> bytes:
    return b"\x09\x01\x00\x00" + attr  # genl header (cmd, version, reserved) + attrs


def test_wire_format_round_trip() -> None:
    for daemon in (MASTER, SyncDaemon("backup", "front", 255, IPv4Address("239.1.2.3"),
                                      9000, 3, 1400),
                   SyncDaemon("master", "eth0", 1, IPv6Address("ff02::81"))):
        assert decode_daemon(_as_dump(daemon_attr(daemon))) == daemon


def test_wire_format_fields() -> None:
    outer = codec.parse_attrs(daemon_attr(MASTER))
    inner = codec.parse_attrs(outer[ATTR_DAEMON])
    assert inner[D_STATE] == (1).to_bytes(4, "little")
    assert int.from_bytes(inner[D_MCAST_PORT][:2], "little") == 8848  # host order


class _FakeDaemons(SyncDaemonKernel):
    def __init__(self) -> None:  # no netlink socket
        self.running: list[SyncDaemon] = []
        self.observed = 0

    def observe(self) -> tuple[SyncDaemon, ...]:
        self.observed += 1
        return tuple(self.running)

    def apply(self, ops: object) -> None:
        for op in ops:  # type: ignore[attr-defined]
            if isinstance(op, StopDaemon):
                self.running = [d for d in self.running if d.role != op.role]
            else:
                self.running.append(op.daemon)


def _proc(tmp_path: Path) -> Path:
    for name, value in (("sync_version", "0"), ("sloppy_tcp", "1"), ("sloppy_sctp", "0")):
        path = tmp_path / "net" / "ipv4" / "vs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return tmp_path


def test_edge_sets_sysctls_then_daemons_and_skips_unchanged(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    daemons = _FakeDaemons()
    edge = KernelConnSync(daemons, proc)
    state = ConnSyncState(frozenset({MASTER}), frozenset({"sync", "sloppy_sctp"}))
    assert edge.set(state) == (StartDaemon(MASTER),)
    vs = proc / "net" / "ipv4" / "vs"
    assert (vs / "sync_version").read_text().strip() == "1"
    assert (vs / "sloppy_sctp").read_text().strip() == "1"
    assert (vs / "sloppy_tcp").read_text().strip() == "0"  # not configured: turned off
    assert edge.set(state) == ()
    assert daemons.observed == 1  # unchanged state: no netlink at all
    daemons.running = []  # someone stopped it behind our back
    assert edge.set(state, verify=True) == (StartDaemon(MASTER),)


def test_edge_only_reports_when_not_allowed_to_write(tmp_path: Path) -> None:
    proc = _proc(tmp_path)
    edge = KernelConnSync(_FakeDaemons(), proc)
    edge.set(ConnSyncState(frozenset(), frozenset({"sync"}), manage_sysctls=False))
    assert (proc / "net" / "ipv4" / "vs" / "sync_version").read_text().strip() == "0"
    assert any("sync_version" in m for m in edge.mismatches)
