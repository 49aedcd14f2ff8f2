"""The kernel's IPVS connection sync daemons: desired state, plan, netlink.

The sync daemon copies IPVS connection entries from one director to others so
that a director taking over knows the established connections (and their
backends). The kernel runs at most one *master* (sends) and one *backup*
(receives) per network namespace, started and stopped with the IPVS generic
netlink commands ``IPVS_CMD_NEW_DAEMON`` / ``IPVS_CMD_DEL_DAEMON`` and listed with
``IPVS_CMD_GET_DAEMON`` (``include/uapi/linux/ip_vs.h``; ``ipvsadm
--start-daemon`` does the same). pyroute2's ``ipvsmsg`` knows the command numbers
but carries the daemon attribute as opaque bytes, so the attribute is encoded
here with ``struct``, like the rest of :mod:`dataplane.ipvs.codec`.

The kernel sends sync messages only to a multicast group (IPv4 or IPv6;
``ip_vs_genl_new_daemon`` rejects a unicast address with EINVAL), from the
configured interface, to ``port + sync id`` style base port; every director of a
pair uses the same sync id, group and port.

:func:`plan_daemons` is pure; :class:`SyncDaemonKernel` does the I/O.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from dataplane.ipvs import codec
from dataplane.ipvs.detect import ipvs_family_id

Role = Literal["master", "backup"]
STATE: dict[Role, int] = {"master": 1, "backup": 2}  # IP_VS_STATE_MASTER / _BACKUP
ROLE_OF: dict[int, Role] = {v: k for k, v in STATE.items()}
# include/uapi/linux/ip_vs.h
CMD_NEW_DAEMON, CMD_DEL_DAEMON, CMD_GET_DAEMON = 9, 10, 11
ATTR_DAEMON = 3
D_STATE, D_MCAST_IFN, D_SYNC_ID, D_SYNC_MAXLEN = 1, 2, 3, 4
D_MCAST_GROUP, D_MCAST_GROUP6, D_MCAST_PORT, D_MCAST_TTL = 5, 6, 7, 8
DEFAULT_GROUP = IPv4Address("224.0.0.81")
DEFAULT_PORT = 8848
IFNAMSIZ = 16


@dataclass(frozen=True, slots=True)
class SyncDaemon:
    """One running (or wanted) sync daemon."""

    role: Role
    interface: str
    sync_id: int
    group: IPv4Address | IPv6Address = DEFAULT_GROUP
    port: int = DEFAULT_PORT
    ttl: int = 1
    max_len: int = 0
    """UDP payload size; 0 lets the kernel derive it from the interface MTU."""

    def __str__(self) -> str:
        return (f"sync {self.role} on {self.interface} id {self.sync_id} "
                f"group {self.group}:{self.port}")


@dataclass(frozen=True, slots=True)
class StartDaemon:
    daemon: SyncDaemon

    def __str__(self) -> str:
        return f"start {self.daemon}"


@dataclass(frozen=True, slots=True)
class StopDaemon:
    role: Role

    def __str__(self) -> str:
        return f"stop sync {self.role}"


DaemonOp = StartDaemon | StopDaemon


def _same(wanted: SyncDaemon, running: SyncDaemon) -> bool:
    """Equal for our purposes: a running max_len chosen by the kernel matches 0."""
    if wanted.max_len == 0:
        running = SyncDaemon(running.role, running.interface, running.sync_id,
                             running.group, running.port, running.ttl, 0)
    return wanted == running


def plan_daemons(desired: Iterable[SyncDaemon],
                 observed: Iterable[SyncDaemon]) -> tuple[DaemonOp, ...]:
    """Stops first (a changed daemon is stopped and started again), then starts.

    A daemon's settings cannot be edited in place; stopping a backup keeps the
    connection entries it already received, so a restart loses nothing but the
    updates sent in between.
    """
    want = {d.role: d for d in desired}
    have = {d.role: d for d in observed}
    stops = [StopDaemon(role) for role, d in sorted(have.items())
             if role not in want or not _same(want[role], d)]
    starts = [StartDaemon(d) for role, d in sorted(want.items())
              if role not in have or not _same(d, have[role])]
    return (*stops, *starts)


# -- wire format ------------------------------------------------------------------

def daemon_attr(daemon: SyncDaemon) -> bytes:
    """The nested ``IPVS_CMD_ATTR_DAEMON`` attribute that starts ``daemon``."""
    ifname = daemon.interface.encode()
    if not 0 < len(ifname) < IFNAMSIZ:
        raise ValueError(f"bad interface name {daemon.interface!r}")
    parts = [
        codec.nla(D_STATE, struct.pack("=I", STATE[daemon.role])),
        codec.nla(D_MCAST_IFN, ifname + b"\0"),
        codec.nla(D_SYNC_ID, struct.pack("=I", daemon.sync_id)),
        # The kernel reads the port with nla_get_be16 but never swaps it: host order.
        codec.nla(D_MCAST_PORT, struct.pack("=H", daemon.port)),
        codec.nla(D_MCAST_TTL, struct.pack("=B", daemon.ttl)),
    ]
    if daemon.max_len:
        parts.append(codec.nla(D_SYNC_MAXLEN, struct.pack("=H", daemon.max_len)))
    if isinstance(daemon.group, IPv4Address):
        parts.append(codec.nla(D_MCAST_GROUP, daemon.group.packed))
    else:
        parts.append(codec.nla(D_MCAST_GROUP6, daemon.group.packed))
    return codec.nla(ATTR_DAEMON, b"".join(parts))


def stop_attr(role: Role) -> bytes:
    return codec.nla(ATTR_DAEMON, codec.nla(D_STATE, struct.pack("=I", STATE[role])))


def decode_daemon(payload: bytes) -> SyncDaemon:
    """A ``GET_DAEMON`` dump message (genl header stripped) as a :class:`SyncDaemon`."""
    outer = codec.parse_attrs(payload, 4)
    attrs = codec.parse_attrs(outer[ATTR_DAEMON])

    def u(kind: int, fmt: str, default: int = 0) -> int:
        raw = attrs.get(kind)
        return int(struct.unpack_from(fmt, raw)[0]) if raw else default

    group: IPv4Address | IPv6Address = DEFAULT_GROUP
    if D_MCAST_GROUP6 in attrs and any(attrs[D_MCAST_GROUP6]):
        group = IPv6Address(attrs[D_MCAST_GROUP6][:16])
    elif D_MCAST_GROUP in attrs:
        group = IPv4Address(attrs[D_MCAST_GROUP][:4])
    return SyncDaemon(
        role=ROLE_OF[u(D_STATE, "=I")],
        interface=attrs.get(D_MCAST_IFN, b"").split(b"\0", 1)[0].decode(),
        sync_id=u(D_SYNC_ID, "=I"),
        group=group,
        port=u(D_MCAST_PORT, "=H", DEFAULT_PORT),
        ttl=u(D_MCAST_TTL, "=B", 1),
        max_len=u(D_SYNC_MAXLEN, "=H"),
    )


class SyncDaemonError(RuntimeError):
    """The kernel refused to start or stop a sync daemon."""


class SyncDaemonKernel:
    """Start, stop and list the kernel's sync daemons. Blocking: call from a thread."""

    def __init__(self) -> None:
        self.family_id = ipvs_family_id()
        self._seq = itertools.count(1)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)  # NETLINK_GENERIC
        self.sock.bind((0, 0))

    def close(self) -> None:
        self.sock.close()

    def _request(self, cmd: int, body: bytes, flags: int) -> list[bytes]:
        seq = next(self._seq)
        self.sock.sendall(codec.message(self.family_id, cmd, body, seq, flags))
        out: list[bytes] = []
        while True:
            data = self.sock.recv(1 << 16)
            for kind, _flags, mseq, payload in codec.split_messages(data):
                if mseq != seq:
                    continue
                if kind == codec.NLMSG_DONE:
                    return out
                if kind == codec.NLMSG_ERROR:
                    err = codec.error_code(payload)
                    if err:
                        raise OSError(err, os.strerror(err))
                    return out
                out.append(payload)

    def observe(self) -> tuple[SyncDaemon, ...]:
        """The daemons running now."""
        replies = self._request(CMD_GET_DAEMON, b"", codec.NLM_F_REQUEST | codec.NLM_F_DUMP)
        return tuple(decode_daemon(p) for p in replies)

    def apply(self, ops: Sequence[DaemonOp]) -> None:
        """Execute ops in order; stopping a stopped daemon (ESRCH) counts as done."""
        for op in ops:
            try:
                if isinstance(op, StartDaemon):
                    self._request(CMD_NEW_DAEMON, daemon_attr(op.daemon),
                                  codec.NLM_F_REQUEST | codec.NLM_F_ACK)
                else:
                    self._request(CMD_DEL_DAEMON, stop_attr(op.role),
                                  codec.NLM_F_REQUEST | codec.NLM_F_ACK)
            except OSError as exc:
                if isinstance(op, StopDaemon) and exc.errno in (errno.ESRCH, errno.ENOENT):
                    continue
                name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                raise SyncDaemonError(f"{op}: {name} ({exc.strerror})") from None

    def set(self, desired: Iterable[SyncDaemon]) -> tuple[DaemonOp, ...]:
        """Make the running daemons ``desired``; returns the ops it took."""
        ops = plan_daemons(desired, self.observe())
        self.apply(ops)
        return ops
