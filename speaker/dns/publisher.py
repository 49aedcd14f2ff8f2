"""The DNS publisher: keeps each configured name's records in step with what this
appliance announces, in the background, with retries and backoff.

The reconciler calls `set(names)` after every pass with the names whose VIP this
appliance announces now (BGP route sent on an established session, or L2 ownership).
`set` only records the wish and wakes the publisher's task: DNS round trips never
delay a reconcile pass. For each name whose wish changed (and, while it is published,
every `dns.refresh` to renew the claim) the task reads the name from its zone's
primary, computes the update with `speaker.dns.registry.plan` and sends it; a failed
prerequisite (another appliance changed the name meanwhile) is read again at once, an
error is retried with exponential backoff and shown in status and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from speaker.config import AppConfig
from speaker.dns.client import DnsClient, DnsConflictError, DnsError
from speaker.dns.registry import IPAddress, Settled, plan
from speaker.logs import event_log
from speaker.metrics import REGISTRY
from speaker.seams import Wake

LOG = event_log(__name__)
CONFLICT_RETRIES = 5
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 30.0
PARALLEL = 16

DNS_PUBLISHED = Gauge("speaker_dns_record_published",
                      "1 while this appliance's claim on the name is published",
                      ["name"], registry=REGISTRY)
DNS_UPDATES = Counter("speaker_dns_updates_total",
                      "RFC 2136 update attempts by zone and result (ok, conflict, or the "
                      "error reason)", ["zone", "result"], registry=REGISTRY)
DNS_LAST_UPDATE = Gauge("speaker_dns_last_update_timestamp_seconds",
                        "Unix time of the last successful update of the name",
                        ["name"], registry=REGISTRY)


@dataclass(slots=True)
class _Entry:
    """Bookkeeping of one name (publisher-internal)."""

    name: str
    service: str
    ttl: int
    want: IPAddress | None = None
    told: bool = False
    """False until the reconciler has said once what it wants (no early clean-up)."""
    state: str = "pending"
    reason: str = ""
    detail: str = ""
    last_update: float | None = None
    failures: int = 0
    due: float = float("inf")
    busy: bool = False
    removing: bool = False
    """The name left the config: withdraw it, then forget it."""


class DnsPublisher:
    """Publishes A/AAAA records of announced VIPs (a Component of the supervisor)."""

    def __init__(self, config: AppConfig, wake: Wake, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 client: Callable[..., DnsClient] = DnsClient,
                 rng: random.Random | None = None) -> None:
        self._wake = wake
        self._clock = clock
        self._wall = wall
        self._client_factory = client
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._entries: dict[str, _Entry] = {}
        self._clients: dict[str, DnsClient] = {}
        self._event = asyncio.Event()
        self._idle = asyncio.Event()
        self._adopt(config)

    # -- what the reconciler calls ---------------------------------------------------

    def set(self, serving: Mapping[str, IPAddress]) -> None:
        """Serve exactly these names (name -> VIP); every other configured name is
        withdrawn. Returns at once; the updates happen in the background."""
        now = self._clock()
        for name, entry in self._entries.items():
            want = serving.get(name)
            if want != entry.want or not entry.told:
                entry.want, entry.told = want, True
                entry.due, entry.failures = now, 0
                self._event.set()

    async def withdraw_all(self, limit: float) -> bool:
        """Planned stop: withdraw every claim; True if all settled within `limit` s."""
        self.set({})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                while any(e.busy or e.due <= self._clock() for e in self._entries.values()):
                    self._idle.clear()
                    await self._idle.wait()
        return all(e.state not in ("published", "error") for e in self._entries.values())

    # -- Component -------------------------------------------------------------------

    async def run(self) -> None:
        """Work through due names until cancelled."""
        limit = asyncio.Semaphore(PARALLEL)

        async def one(entry: _Entry) -> None:
            async with limit:
                await self._sync(entry)

        while True:
            now = self._clock()
            due = [e for e in self._entries.values() if e.due <= now and not e.busy]
            if due:
                for entry in due:
                    entry.busy = True
                await asyncio.gather(*(one(e) for e in due))
                self._idle.set()
                continue
            self._idle.set()
            later = min((e.due for e in self._entries.values()), default=float("inf"))
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(max(0.0, later - now), 60.0)):
                    await self._event.wait()

    def reconfigure(self, config: AppConfig) -> None:
        """Adopt new names, servers or timers; a removed name is withdrawn first."""
        self._adopt(config)
        self._event.set()

    def status(self) -> dict[str, object]:
        """Per name: state, VIP, zone, last update, last error."""
        now = self._wall()
        names: dict[str, object] = {}
        for name, e in sorted(self._entries.items()):
            names[name] = {
                "service": e.service, "vip": None if e.want is None else str(e.want),
                "state": e.state, "reason": e.reason, "detail": e.detail,
                "zone": self._zone(name),
                "last_update_age_s": (None if e.last_update is None
                                      else round(now - e.last_update, 3)),
                "failures": e.failures,
            }
        return {"owner": self._owner, "names": names}

    # -- work ------------------------------------------------------------------------

    def _zone(self, name: str) -> str | None:
        server = self._dns.server_for(name) if self._dns is not None else None
        return None if server is None else server.zone

    async def _sync(self, entry: _Entry) -> None:
        want = entry.want
        try:
            await self._sync_once(entry, want)
        except DnsError as exc:
            self._failed(entry, want, exc)
        except Exception as exc:  # never let one name end the publisher
            self._failed(entry, want, DnsError("internal_error", repr(exc)))
        finally:
            entry.busy = False

    async def _sync_once(self, entry: _Entry, want: IPAddress | None) -> None:
        zone = self._zone(entry.name)
        client = self._clients.get(zone or "")
        if client is None or self._dns is None:
            if entry.removing:  # its server went with it: nothing left to talk to
                self._forget(entry)
                return
            raise DnsError("no_server", f"no dns.servers entry holds {entry.name}")
        for _ in range(CONFLICT_RETRIES):
            state = await client.read(entry.name)
            result = plan(entry.name, state, want, owner=self._owner, node=self._node,
                          now=self._wall(), ttl=entry.ttl,
                          lifetime=self._dns.claim_lifetime, refresh=self._dns.refresh)
            if isinstance(result, Settled):
                self._settled(entry, want, result.state, result.recheck_at)
                return
            try:
                await client.apply(result)
            except DnsConflictError:
                DNS_UPDATES.labels(client.server.zone, "conflict").inc()
                continue
            DNS_UPDATES.labels(client.server.zone, "ok").inc()
            entry.last_update = self._wall()
            DNS_LAST_UPDATE.labels(entry.name).set(entry.last_update)
            if entry.state != result.outcome:
                LOG.info("dns_" + result.outcome, name=entry.name, vip=str(want or ""),
                         zone=client.server.zone, reason="announced" if want else
                         "not_announced")
            self._settled(entry, want, result.outcome, result.recheck_at)
            return
        raise DnsError("conflict", f"{entry.name} kept changing under "
                                   f"{CONFLICT_RETRIES} updates in a row")

    def _settled(self, entry: _Entry, want: IPAddress | None, state: str,
                 recheck_at: float | None) -> None:
        if entry.state == "error":
            LOG.info("dns_recovered", name=entry.name, reason=state)
        if state == "foreign_owner" and entry.state != state:
            LOG.warning("dns_foreign_owner", name=entry.name, reason="foreign_owner",
                        detail="records exist without this fleet's owner marker; "
                               "left untouched")
        entry.state, entry.reason, entry.detail, entry.failures = state, "", "", 0
        if state == "foreign_owner":
            entry.reason = "foreign_owner"
        if entry.removing and want is None:
            self._forget(entry)
            return
        DNS_PUBLISHED.labels(entry.name).set(int(state == "published"))
        if entry.want == want:  # a newer wish keeps its own (earlier) due time
            refresh = self._dns.refresh if self._dns is not None else 60.0
            if want is not None:  # renew the claim / wait for a foreign owner to leave
                entry.due = self._clock() + refresh
            elif recheck_at is not None:  # others claim it: are they still alive then?
                entry.due = self._clock() + max(0.0, recheck_at - self._wall())
            else:
                entry.due = float("inf")

    def _failed(self, entry: _Entry, want: IPAddress | None, exc: DnsError) -> None:
        zone = self._zone(entry.name) or "none"
        DNS_UPDATES.labels(zone, exc.reason).inc()
        if entry.state != "error" or entry.reason != exc.reason:
            LOG.warning("dns_update_failed", name=entry.name, zone=zone, reason=exc.reason,
                        detail=exc.detail)
        entry.state, entry.reason, entry.detail = "error", exc.reason, exc.detail
        entry.failures += 1
        if entry.want != want:
            return  # a newer wish is already due
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (entry.failures - 1))
        entry.due = self._clock() + delay * self._rng.uniform(0.8, 1.2)

    def _forget(self, entry: _Entry) -> None:
        self._entries.pop(entry.name, None)
        for gauge in (DNS_PUBLISHED, DNS_LAST_UPDATE):
            with contextlib.suppress(KeyError):
                gauge.remove(entry.name)

    # -- config ----------------------------------------------------------------------

    def _adopt(self, config: AppConfig) -> None:
        self._dns = config.dns
        self._node = config.node.name
        self._owner = config.dns.owner if config.dns is not None else "edge-speaker"
        self._clients = ({s.zone: self._client_factory(s, config.dns.timeout)
                          for s in config.dns.servers} if config.dns is not None else {})
        wanted = {name: (svc.name, svc.dns.ttl) for svc in config.services
                  if svc.dns is not None for name in svc.dns.names}
        for name in [n for n in self._entries if n not in wanted]:
            gone = self._entries[name]
            gone.removing, gone.want, gone.told = True, None, True
            gone.due, gone.failures = self._clock(), 0
        for name, (service, ttl) in wanted.items():
            entry = self._entries.get(name)
            if entry is not None and entry.removing:
                entry.removing = False
            if entry is None:
                self._entries[name] = _Entry(name, service, ttl)
                DNS_PUBLISHED.labels(name).set(0)
            else:
                entry.service, entry.ttl = service, ttl
                if entry.told:
                    entry.due = min(entry.due, self._clock())  # re-check under the new config
