"""The kernel's IPVS table over generic netlink: dump it, and apply ops fast.

Fast path (``ipvsadm -R`` is the yardstick):

* messages are encoded by :mod:`dataplane.ipvs.codec` with ``struct``, the
  service-key attribute cached per service;
* many messages go in one ``sendmsg`` (up to ``batch_bytes``). Netlink delivers a
  datagram to the kernel synchronously, so when ``sendmsg`` returns every message
  in it has been executed; requests carry no ``NLM_F_ACK``, so only failures
  come back, and we collect them without blocking (``MSG_DONTWAIT``). No round
  trip per message, no ack parsing per message;
* EEXIST on an add and ENOENT/ESRCH on an edit or delete count as success; an add
  that met an existing entry is followed by a set (the entry may differ) and an
  edit of a missing entry by an add, so ``apply`` converges whatever the kernel
  had.

The family id is resolved once with pyroute2 (see :mod:`dataplane.ipvs.detect`).
Blocking calls; the supervisor runs them in a thread. Not thread-safe: one
:class:`IpvsKernel` per thread.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from dataplane.ipvs import codec
from dataplane.ipvs.detect import ipvs_family_id
from dataplane.ipvs.model import (
    Dest,
    DestKey,
    DestStats,
    IpvsStats,
    IpvsTable,
    Service,
    ServiceKey,
    Stats,
)
from dataplane.ipvs.plan import AddDest, AddService, DelService, EditDest, EditService, Op

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
SO_RCVBUFFORCE, SO_SNDBUFFORCE = 33, 32
_ABSENT = (errno.ENOENT, errno.ESRCH)


class IpvsError(RuntimeError):
    """A dump failed, or ops failed with errors other than EEXIST/ENOENT."""

    def __init__(self, message: str, failures: Sequence[tuple[Op, int]] = ()) -> None:
        super().__init__(message)
        self.failures = tuple(failures)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What :meth:`IpvsKernel.apply` did: ops sent and the ones that failed (op, errno)."""

    sent: int
    failures: tuple[tuple[Op, int], ...] = ()


def encode_op(family_id: int, op: Op, seq: int) -> bytes:
    """The netlink message that performs ``op``."""
    if isinstance(op, AddService):
        return codec.message(family_id, codec.CMD_NEW_SERVICE, codec.service_attr(op.service), seq)
    if isinstance(op, EditService):
        return codec.message(family_id, codec.CMD_SET_SERVICE, codec.service_attr(op.service), seq)
    if isinstance(op, DelService):
        return codec.message(family_id, codec.CMD_DEL_SERVICE, codec.service_key_attr(op.key), seq)
    if isinstance(op, AddDest | EditDest):
        cmd = codec.CMD_NEW_DEST if isinstance(op, AddDest) else codec.CMD_SET_DEST
        body = codec.service_key_attr(op.dest.key.service) + codec.dest_attr(op.dest)
        return codec.message(family_id, cmd, body, seq)
    body = codec.service_key_attr(op.key.service) + codec.dest_attr(op.key)
    return codec.message(family_id, codec.CMD_DEL_DEST, body, seq)


def is_benign(op: Op, err: int) -> bool:
    """EEXIST on an add, ENOENT/ESRCH on an edit or delete: the goal is met (or near)."""
    if isinstance(op, AddService | AddDest):
        return err == errno.EEXIST
    return err in _ABSENT


def followup_op(op: Op, err: int) -> Op | None:
    """The op that completes ``op`` after a benign error, or None if it is done."""
    if err == errno.EEXIST and isinstance(op, AddService):
        return EditService(op.service)
    if err == errno.EEXIST and isinstance(op, AddDest):
        return EditDest(op.dest)
    if err in _ABSENT and isinstance(op, EditService):
        return AddService(op.service)
    if err in _ABSENT and isinstance(op, EditDest):
        return AddDest(op.dest)
    return None


class IpvsKernel:
    """The real IPVS table. Implements the ``Forwarder`` seam (observe/apply)."""

    def __init__(self, batch_bytes: int = 128 * 1024, buffer_bytes: int = 16 << 20) -> None:
        self.family_id = ipvs_family_id()
        self.batch_bytes = batch_bytes
        self._seq = itertools.count(1)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sock.bind((0, 0))
        sizes = ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF))
        for force, plain in sizes:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, force, buffer_bytes)
            except PermissionError:
                self.sock.setsockopt(socket.SOL_SOCKET, plain, buffer_bytes)
        # Error reports carry only the header of the failed request, not all of it.
        self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self._decoder = codec.DumpDecoder()
        self._lock = threading.RLock()
        """One request at a time on the socket: the reconciler's observe and the stats
        poller run in worker threads, and a second dump started on a netlink socket
        while one is in progress fails with EBUSY (seen under load in the VM tier)."""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> IpvsKernel:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------

    def _send_batch(self, ops: Sequence[Op]) -> list[tuple[Op, int]]:
        """Send ops in datagrams of up to ``batch_bytes``; return (op, errno) failures."""
        by_seq: dict[int, Op] = {}
        failures: list[tuple[Op, int]] = []
        chunk: list[bytes] = []
        size = 0
        for op in ops:
            seq = next(self._seq)
            by_seq[seq] = op
            data = encode_op(self.family_id, op, seq)
            if size + len(data) > self.batch_bytes and chunk:
                failures += self._flush(chunk, by_seq)
                chunk, size = [], 0
            chunk.append(data)
            size += len(data)
        if chunk:
            failures += self._flush(chunk, by_seq)
        return failures

    def _flush(self, chunk: list[bytes], by_seq: dict[int, Op]) -> list[tuple[Op, int]]:
        self.sock.sendall(b"".join(chunk))
        failures: list[tuple[Op, int]] = []
        while True:
            try:
                data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return failures
            for kind, _flags, seq, payload in codec.split_messages(data):
                if kind == codec.NLMSG_ERROR and seq in by_seq:
                    err = codec.error_code(payload)
                    if err:
                        failures.append((by_seq[seq], err))

    def apply(self, ops: Sequence[Op]) -> ApplyResult:
        """Execute ``ops`` in order; benign errors are success (see module doc).

        Returns the failures instead of raising, so one bad entry (an unknown
        scheduler, say) does not stop the rest of a sync; :meth:`apply_or_raise`
        is the strict variant the ``Forwarder`` seam uses.
        """
        with self._lock:
            return apply_in_rounds(ops, self._send_batch)

    def apply_or_raise(self, ops: Sequence[Op]) -> None:
        result = self.apply(ops)
        if result.failures:
            op, err = result.failures[0]
            raise IpvsError(
                f"{len(result.failures)} IPVS ops failed, first {op}: "
                f"{errno.errorcode.get(err, err)} ({os.strerror(err)})",
                result.failures,
            )

    # -- reading ---------------------------------------------------------------

    def _dump(self, cmd: int, body: bytes) -> list[bytes]:
        seq = next(self._seq)
        self.sock.sendall(codec.message(
            self.family_id, cmd, body, seq, codec.NLM_F_REQUEST | codec.NLM_F_DUMP))
        out: list[bytes] = []
        while True:
            data = self.sock.recv(1 << 20)
            for kind, _flags, mseq, payload in codec.split_messages(data):
                if mseq != seq:
                    continue  # a stale error report of an earlier batch
                if kind == codec.NLMSG_DONE:
                    return out
                if kind == codec.NLMSG_ERROR:
                    err = codec.error_code(payload)
                    if err:
                        raise IpvsError(f"IPVS dump failed: {errno.errorcode.get(err, err)}")
                    return out
                out.append(payload)

    def _services(self) -> list[bytes]:
        return self._dump(codec.CMD_GET_SERVICE, b"")

    def _dests(self, key: ServiceKey) -> list[bytes]:
        try:
            return self._dump(codec.CMD_GET_DEST, codec.service_key_attr(key))
        except IpvsError:
            return []  # the service vanished between the two dumps

    def observe(self) -> IpvsTable:
        """Dump services and dests (no stats decoding: the resync path)."""
        services: list[Service] = []
        dests: list[Dest] = []
        with self._lock:
            decoder = self._decoder
            decoder.start()
            for payload in self._services():
                service = decoder.service(payload)
                services.append(service)
                key = service.key
                dests += [decoder.dest(key, p) for p in self._dests(key)]
            decoder.finish()
        return IpvsTable.of(services, dests)

    def snapshot(self) -> tuple[IpvsTable, IpvsStats]:
        """Dump the table and every counter (for status and metrics)."""
        services: list[Service] = []
        dests: list[Dest] = []
        svc_stats: dict[ServiceKey, Stats] = {}
        dest_stats: dict[DestKey, DestStats] = {}
        with self._lock:
            for payload in self._services():
                service, stats = codec.decode_service(payload, with_stats=True)
                services.append(service)
                svc_stats[service.key] = stats
                for p in self._dests(service.key):
                    dest, dstats = codec.decode_dest(service.key, p, with_stats=True)
                    dests.append(dest)
                    dest_stats[dest.key] = dstats
        return IpvsTable.of(services, dests), IpvsStats(svc_stats, dest_stats)

    def flush_owned(self, keys: Iterable[ServiceKey]) -> ApplyResult:
        """Delete these services (tests and ``speaker`` uninstall; never the whole table)."""
        return self.apply([DelService(k) for k in keys])


def apply_in_rounds(ops: Sequence[Op],
                    send: Callable[[Sequence[Op]], Iterable[tuple[Op, int]]]) -> ApplyResult:
    """Send ``ops``; benign errors are success, and an error that calls for a
    follow-up op (see :func:`followup_op`) is answered by one more round (at most 3).
    ``send`` returns the (op, errno) of the ops that failed. Shared by the kernel
    and the fake so both have the same error semantics."""
    pending: Sequence[Op] = ops
    sent = 0
    hard: list[tuple[Op, int]] = []
    for _round in range(3):
        sent += len(pending)
        followups: list[Op] = []
        for op, err in send(pending):
            if not is_benign(op, err):
                hard.append((op, err))
            elif (nxt := followup_op(op, err)) is not None:
                followups.append(nxt)
        if not followups:
            break
        pending = followups
    return ApplyResult(sent, tuple(hard))
