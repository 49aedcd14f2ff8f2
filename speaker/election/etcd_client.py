"""A small etcd v3 client for the election: gRPC channel, TLS, auth, endpoint rotation.

The wire format and the service stubs are aetcd's generated protobuf modules
(`aetcd.rpc`, pinned); aetcd's own `Client` is not used because it opens only an
insecure channel to one host (no TLS, no client certificate, no second endpoint).
This module opens a `grpc.aio` channel to one endpoint at a time, authenticates
when a user is configured, and maps every gRPC failure to an `EtcdError` with a
stable reason code (`unreachable`, `timeout`, `tls_error`, `auth_failed`,
`no_leader`, `lease_not_found`, `error`) that status, logs and metrics show.
Every call has a deadline (`request_timeout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC's C core logs TLS retries at INFO

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from aetcd import rpc

from speaker.config.election import EtcdConfig
from speaker.election import etcd_metrics as em


class EtcdError(Exception):
    """An etcd request failed; `reason` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as etcd returned it."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A put (kv set) or a delete (kv.value empty) of one key."""

    deleted: bool
    kv: KeyValue


def prefix_end(prefix: bytes) -> bytes:
    """The range end that selects every key starting with `prefix`."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def _kv(msg: Any) -> KeyValue:
    return KeyValue(msg.key.decode(), bytes(msg.value), int(msg.create_revision),
                    int(msg.mod_revision), int(msg.lease))


_BY_DETAIL = (
    (("ssl", "tls", "certificate", "handshake", "tsi_", "unwrap failed"), "tls_error"),
    (("no leader", "leader changed"), "no_leader"),
    (("lease not found",), "lease_not_found"),
    (("authentication failed", "auth token", "user name is empty", "permission denied"),
     "auth_failed"),
)
_BY_CODE = {"DEADLINE_EXCEEDED": "timeout", "UNAUTHENTICATED": "auth_failed",
            "PERMISSION_DENIED": "auth_failed", "UNAVAILABLE": "unreachable"}


def classify(exc: grpc.aio.AioRpcError) -> EtcdError:
    """Map a gRPC failure to a reason code (the detail text first: etcd and gRPC put
    the useful part there; then the status code)."""
    code, detail = exc.code(), exc.details() or ""
    low = detail.lower()
    for words, reason in _BY_DETAIL:
        if any(w in low for w in words):
            return EtcdError(reason, detail)
    by_code = _BY_CODE.get(code.name)
    if by_code is not None:
        return EtcdError(by_code, detail)
    return EtcdError("error", f"{code.name}: {detail}")


def read_password(config: EtcdConfig) -> str | None:
    """The configured password (password_file: its first line)."""
    if config.password_file is not None:
        lines = Path(config.password_file).read_text().splitlines()
        return lines[0] if lines else ""
    return config.password


class EtcdClient:
    """One channel to one etcd member at a time; `rotate()` moves to the next."""

    def __init__(self, config: EtcdConfig, *, index: int = 0) -> None:
        self._config = config
        self._endpoints: Sequence[str] = config.endpoints
        self._index = index % max(1, len(self._endpoints))
        self._channel: grpc.aio.Channel | None = None
        self._metadata: tuple[tuple[str, str], ...] | None = None
        self._kv: Any = None
        self._lease: Any = None
        self._watch: Any = None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        """The member this client talks to now."""
        return self._endpoints[self._index]

    @property
    def timeout(self) -> float:
        """Deadline of one request, seconds."""
        return self._config.timers()[1]

    def rotate(self) -> None:
        """Use the next endpoint from the next call on (after a failure)."""
        self._index = (self._index + 1) % len(self._endpoints)
        self._drop_channel()

    def _drop_channel(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            # close in the background (ends the calls still on it, e.g. a watch), so
            # rotate() stays synchronous and never blocks
            with contextlib.suppress(RuntimeError):  # no running loop: grpc's finaliser
                task = asyncio.get_running_loop().create_task(channel.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        self._metadata = None

    async def close(self) -> None:
        """Close the channel."""
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    def _open(self) -> grpc.aio.Channel:
        url = self.endpoint
        target = url.split("://", 1)[1]
        options: list[tuple[str, Any]] = [
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
            ("grpc.enable_retries", 0),
        ]
        tls = self._config.tls
        if url.startswith("https://") and tls is not None:
            creds = grpc.ssl_channel_credentials(
                root_certificates=Path(tls.ca_file).read_bytes(),
                private_key=Path(tls.key_file).read_bytes() if tls.key_file else None,
                certificate_chain=Path(tls.cert_file).read_bytes() if tls.cert_file else None)
            if tls.server_name:
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            return grpc.aio.secure_channel(target, creds, options=options)
        return grpc.aio.insecure_channel(target, options=options)

    async def _connect(self) -> None:
        if self._channel is not None:
            return
        channel = self._open()
        self._channel = channel
        self._kv = rpc.KVStub(channel)
        self._lease = rpc.LeaseStub(channel)
        self._watch = rpc.WatchStub(channel)
        if self._config.username is not None:
            auth = rpc.AuthStub(channel)
            try:
                resp = await auth.Authenticate(rpc.AuthenticateRequest(
                    name=self._config.username, password=read_password(self._config) or ""),
                    timeout=self.timeout)
            except grpc.aio.AioRpcError as exc:
                self._drop_channel()
                raise classify(exc) from None
            self._metadata = (("token", resp.token),)

    async def _call(self, op: str, stub: str, method: str, request: Any) -> Any:
        try:
            await self._connect()
            fn = getattr(getattr(self, stub), method)
            resp = await fn(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            err = classify(exc)
            em.REQUESTS.labels(op, err.reason).inc()
            if err.reason == "auth_failed":
                self._drop_channel()  # a fresh token on the next call
            raise err from None
        except EtcdError as err:
            em.REQUESTS.labels(op, err.reason).inc()
            raise
        em.REQUESTS.labels(op, "ok").inc()
        return resp

    async def grant(self, ttl: int) -> tuple[int, int]:
        """A new lease: (id, granted TTL)."""
        resp = await self._call("lease_grant", "_lease", "LeaseGrant",
                                rpc.LeaseGrantRequest(TTL=ttl, ID=0))
        return int(resp.ID), int(resp.TTL)

    async def keepalive(self, lease: int) -> int:
        """Renew `lease` once; the TTL the server granted (0: the lease is gone)."""
        try:
            await self._connect()
            call = self._lease.LeaseKeepAlive(iter([rpc.LeaseKeepAliveRequest(ID=lease)]),
                                              timeout=self.timeout, metadata=self._metadata)
            async for resp in call:
                em.REQUESTS.labels("lease_keepalive", "ok").inc()
                return int(resp.TTL)
        except grpc.aio.AioRpcError as exc:
            err = classify(exc)
            em.REQUESTS.labels("lease_keepalive", err.reason).inc()
            if err.reason == "auth_failed":
                self._drop_channel()
            raise err from None
        except EtcdError as err:
            em.REQUESTS.labels("lease_keepalive", err.reason).inc()
            raise
        em.REQUESTS.labels("lease_keepalive", "error").inc()
        raise EtcdError("error", "keepalive stream ended without an answer")

    async def revoke(self, lease: int) -> None:
        """Revoke `lease`: etcd deletes every key attached to it at once."""
        await self._call("lease_revoke", "_lease", "LeaseRevoke", rpc.LeaseRevokeRequest(ID=lease))

    async def put(self, key: str, value: bytes, lease: int) -> int:
        """Put a key attached to `lease`; returns the revision."""
        resp = await self._call("put", "_kv", "Put",
                                rpc.PutRequest(key=key.encode(), value=value, lease=lease))
        return int(resp.header.revision)

    async def delete(self, key: str) -> None:
        """Delete one key (absent is success)."""
        await self._call("delete", "_kv", "DeleteRange", rpc.DeleteRangeRequest(key=key.encode()))

    async def campaign(self, key: str, value: bytes, lease: int) -> tuple[bool, KeyValue | None]:
        """Create `key` with `lease` if it does not exist (create revision 0), in one
        transaction. Returns (won, the key as it is now)."""
        k = key.encode()
        absent = rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=k,
                             create_revision=0)
        put = rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value, lease=lease))
        get = rpc.RequestOp(request_range=rpc.RangeRequest(key=k))
        resp = await self._call("campaign", "_kv", "Txn",
                                rpc.TxnRequest(compare=[absent], success=[put], failure=[get]))
        if resp.succeeded:
            rev = int(resp.header.revision)
            return True, KeyValue(key, value, rev, rev, lease)
        kvs = resp.responses[0].response_range.kvs if resp.responses else []
        return False, (_kv(kvs[0]) if kvs else None)

    async def delete_if_created(self, key: str, create_revision: int) -> bool:
        """Delete `key` only if it is still the one created at `create_revision`
        (the fencing token): a resign never deletes a successor's key."""
        k = key.encode()
        same = rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=k,
                           create_revision=create_revision)
        delete = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k))
        resp = await self._call("resign", "_kv", "Txn",
                                rpc.TxnRequest(compare=[same], success=[delete], failure=[]))
        return bool(resp.succeeded)

    async def range_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under `prefix` and the store revision they were read at."""
        p = prefix.encode()
        resp = await self._call("range", "_kv", "Range",
                                rpc.RangeRequest(key=p, range_end=prefix_end(p)))
        return [_kv(kv) for kv in resp.kvs], int(resp.header.revision)

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        """Changes under `prefix` from `start_revision` on, a batch per response. The
        stream asks for a member with a leader (`hasleader`), so a member cut off from
        the majority ends it instead of going silent."""
        await self._connect()
        p = prefix.encode()
        create = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=p, range_end=prefix_end(p), start_revision=start_revision))
        metadata = (*(self._metadata or ()), ("hasleader", "true"))
        try:
            call = self._watch.Watch(iter([create]), metadata=metadata)
            async for resp in call:
                em.REQUESTS.labels("watch_response", "ok").inc()
                if resp.canceled:
                    raise EtcdError("error", f"watch canceled: {resp.cancel_reason}")
                if resp.compact_revision:
                    raise EtcdError("error", "watch compacted")
                if resp.events:
                    yield [WatchEvent(int(e.type) == rpc.Event.DELETE, _kv(e.kv))
                           for e in resp.events]
        except grpc.aio.AioRpcError as exc:
            err = classify(exc)
            em.REQUESTS.labels("watch_response", err.reason).inc()
            raise err from None
        raise EtcdError("unreachable", "watch stream ended")
