"""Engine `etcd`: one leader key per group under a prefix, held by this appliance's lease.

Three tasks share one client (one etcd member at a time, rotating on failure):
- the session keeps one lease alive (keepalive every renew_interval; on a
  failure the next endpoint is tried at once) and records, from the send time of
  the last acknowledged renewal, until when this appliance may announce;
- the watch mirrors every key under the prefix (a range read, then a watch from
  the next revision; restarted on every reconnect);
- the decider (no etcd I/O, so nothing can delay it) publishes the verdicts,
  steps down when the local deadline passes, and starts the campaigns
  (create-revision transactions), candidate registrations and resignations
  that the rules in `etcd_rules` call for.

Safety: a group is led only while this appliance's lease holds its key and
`now < renewal_sent + ttl - step_down_margin`; the config enforces
`renew_interval + 2 x request_timeout + step_down_margin <= lease_ttl`, so one
lost renewal is retried in time. A handover (resign, preemption, removed group)
steps down first and deletes the key `step_down_margin` later, only if its
create revision is still the fencing token. etcd unreachable or without
quorum: every leader steps down at its deadline; nobody announces until a
quorum is back (safety over availability, documented in docs/etcd.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from speaker.config import AppConfig
from speaker.config.election import EtcdConfig, GroupConfig
from speaker.election import etcd_metrics as em
from speaker.election import etcd_rules as rules
from speaker.election.base import Verdicts
from speaker.election.etcd_client import EtcdClient, EtcdError, KeyValue
from speaker.election.etcd_view import View
from speaker.logs import event_log
from speaker.model import L2Vip, Leadership
from speaker.seams import Wake

LOG = event_log(__name__)
RETRY_S = 0.1


def _session_key(cfg: EtcdConfig) -> tuple[Any, ...]:
    """Settings that need a new connection and lease when they change."""
    return (tuple(cfg.endpoints), cfg.prefix, cfg.lease_ttl, cfg.username, cfg.password,
            cfg.password_file, cfg.tls)


@dataclass(slots=True)
class _Group:
    cfg: GroupConfig
    resigned: bool = False
    leading: bool = False
    token: int = 0
    state: str = "init"
    vacant_since: float | None = None
    yield_at: float | None = None
    yield_reason: str = ""


class EtcdElection:
    """Lease-based election on etcd; implements speaker.seams.Election."""

    def __init__(self, config: AppConfig, wake: Wake, *,
                 clock: Callable[[], float] = time.monotonic,
                 client_factory: Callable[[EtcdConfig], EtcdClient] = EtcdClient) -> None:
        self._config = config
        self._clock = clock
        self._client_factory = client_factory
        self._client = client_factory(config.election.etcd)
        self._verdicts = Verdicts(wake, clock)
        self._penalty = 0
        self._penalty_reason = ""
        self._started = clock()
        self._groups = {g.name: _Group(g) for g in config.election.groups}
        self._lease = 0
        self._granted_ttl = 0
        self._valid_until = 0.0
        self._view = View(config.election.etcd.prefix)
        self._reason = "connecting"
        self._last_error = ""
        self._kick = asyncio.Event()
        self._session_kick = asyncio.Event()
        self._restart = False
        self._ops: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._watch_task: asyncio.Task[None] | None = None
        for g in self._groups.values():
            self._publish(g, False, "init", None)

    # --- Protocol: Election ---------------------------------------------------------------

    def leadership(self) -> Mapping[str, Leadership]:
        """Verdict per group: leader while this lease holds the key and is surely valid.
        A deadline that passed is applied here too, even if the decider has not run yet."""
        if not self._may_lead(self._clock()) and any(g.leading for g in self._groups.values()):
            self._evaluate(self._clock())
        return self._verdicts.snapshot()

    def set_penalty(self, penalty: int, reason: str) -> None:
        """Lower every group's priority by `penalty`; the candidate keys are rewritten,
        so a preferred appliance with preemption takes over."""
        if penalty == self._penalty:
            return
        LOG.info("election_penalty", reason=reason or "healthy", penalty=penalty)
        self._penalty, self._penalty_reason = penalty, reason
        self._evaluate(self._clock())
        self._kick.set()

    async def resign(self, group: str | None = None) -> None:
        """Planned handover: stop announcing now, delete the key step_down_margin later
        (the next candidate then campaigns at once); no campaign until `reclaim()`."""
        for g in self._selected(group):
            LOG.info("election_resign", reason="planned_handover", group=g.cfg.name)
            g.resigned = True
        self._evaluate(self._clock())
        self._kick.set()
        margin = self._etcd.timers()[2]
        deadline = self._clock() + margin + self._etcd.timers()[1] + 0.5
        while self._clock() < deadline and any(  # noqa: ASYNC110 - polls the view
                self._holds(g) for g in self._selected(group)):
            await asyncio.sleep(0.05)

    def reclaim(self, group: str | None = None) -> None:
        """Undo `resign()`: register and campaign again."""
        for g in self._selected(group):
            g.resigned = False
        self._kick.set()

    def resolve_conflict(self, vip: L2Vip, other_mac: str) -> bool:
        """Duplicate L2 owner: the key decides. Keep answering only while this appliance
        leads the group."""
        del other_mac
        g = self._groups.get(vip.group)
        return g is None or not g.leading

    def handing_over(self, vip: L2Vip) -> bool:
        """Never: with etcd the key is the fence, and an appliance that no longer holds it
        must be silent before the new holder speaks (no L2 linger)."""
        del vip
        return False

    async def run(self) -> None:
        """Session, watch and decider until cancelled; on the way out step down and
        revoke the lease (etcd deletes every key of this appliance at once)."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._session_loop())
                tasks.create_task(self._decide_loop())
        finally:
            await self._shutdown()

    def reconfigure(self, config: AppConfig) -> None:
        """Timers, priorities, preemption and groups change live; endpoints, TLS, auth,
        prefix or TTL make a new session (step down, revoke, reconnect)."""
        old = self._config
        self._config = config
        new_groups: dict[str, _Group] = {}
        for gc in config.election.groups:
            g = self._groups.get(gc.name) or _Group(gc)
            g.cfg = gc
            new_groups[gc.name] = g
        for name, g in self._groups.items():
            if name not in new_groups:
                self._forget(g, old.election.etcd)
        self._groups = new_groups
        if _session_key(old.election.etcd) != _session_key(config.election.etcd):
            LOG.info("etcd_session_restart", reason="config_changed")
            self._restart = True
            self._session_kick.set()
        self._evaluate(self._clock())
        self._kick.set()

    def status(self) -> dict[str, object]:
        """Connection, lease and per-group verdicts with fencing tokens."""
        now = self._clock()
        renew, timeout, margin = self._etcd.timers()
        return {
            "engine": "etcd", "endpoint": self._client.endpoint, "reason": self._reason,
            "last_error": self._last_error or None, "lease": f"{self._lease:x}" if self._lease
            else None, "lease_ttl_s": self._granted_ttl,
            "may_lead_for_s": round(max(0.0, self._valid_until - margin - now), 3),
            "renew_interval_s": renew, "request_timeout_s": timeout,
            "step_down_margin_s": margin, "penalty": self._penalty,
            "penalty_reason": self._penalty_reason,
            "groups": {name: {
                "leader": g.leading, "state": g.state, "fencing_token": g.token or None,
                "holder": rules.holder_of(self._view.get(self._leader_key(name))),
                "priority": self._candidate(g, now).priority,
                "configured_priority": g.cfg.priority, "preempt": g.cfg.preempt,
                "resigned": g.resigned}
                for name, g in sorted(self._groups.items())}}

    # --- the session: connection and lease --------------------------------------------------

    @property
    def _etcd(self) -> EtcdConfig:
        return self._config.election.etcd

    def _may_lead(self, now: float) -> bool:
        return self._lease != 0 and now < self._valid_until - self._etcd.timers()[2]

    async def _session_loop(self) -> None:
        recovered, failures = True, 0
        while True:
            if self._restart:
                await self._end_session("config_changed")
                self._client = self._client_factory(self._etcd)
                self._restart = False
            sent = self._clock()
            try:
                if self._lease == 0:
                    self._lease, self._granted_ttl = await self._client.grant(
                        self._etcd.lease_ttl)
                    LOG.info("etcd_lease_granted", reason="new_session",
                             lease=f"{self._lease:x}", ttl=self._granted_ttl,
                             endpoint=self._client.endpoint)
                    ttl = self._granted_ttl
                    recovered = True
                else:
                    ttl = await self._client.keepalive(self._lease)
                if ttl <= 0:
                    LOG.warning("etcd_lease_lost", reason="lease_expired",
                                lease=f"{self._lease:x}")
                    self._lease_gone()
                    continue
                self._valid_until = rules.step_down_at(sent, ttl, 0.0)
                self._granted_ttl = ttl
                em.LEASE_VALID.set(max(0.0, self._valid_until - self._etcd.timers()[2]
                                       - self._clock()))
                em.CONNECTED.set(1)
                if self._reason != "ok":
                    LOG.info("etcd_connected", reason="renewed", endpoint=self._client.endpoint)
                self._reason, self._last_error, failures = "ok", "", 0
                if recovered:
                    self._restart_watch()
                    recovered = False
                self._kick.set()
            except EtcdError as err:
                self._on_error(err)
                recovered = True
                if err.reason == "lease_not_found":
                    self._lease_gone()
                self._client.rotate()
                failures += 1
                # retry at once on the next endpoint while the lease may still be valid
                # (a leader must renew before its deadline); once it cannot be, one
                # round of endpoints per renew_interval while etcd stays away
                fast = failures <= len(self._etcd.endpoints) or self._valid_until > self._clock()
                await asyncio.sleep(RETRY_S if fast else self._etcd.timers()[0])
                continue
            await self._sleep_session(sent + self._etcd.timers()[0] - self._clock())

    async def _sleep_session(self, seconds: float) -> None:
        self._session_kick.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await self._session_kick.wait()

    def _on_error(self, err: EtcdError) -> None:
        em.CONNECTED.set(0)
        if (err.reason, err.detail) != (self._reason, self._last_error):
            LOG.warning("etcd_request_failed", reason=err.reason, endpoint=self._client.endpoint,
                        error=err.detail[:200])
        self._reason, self._last_error = err.reason, err.detail
        self._kick.set()

    def _lease_gone(self) -> None:
        self._lease, self._valid_until = 0, 0.0
        self._evaluate(self._clock())

    def _restart_watch(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
        self._view.fresh = False
        self._watch_task = asyncio.get_running_loop().create_task(self._watch_loop())

    async def _watch_loop(self) -> None:
        prefix = self._etcd.prefix
        while True:
            try:
                kvs, revision = await self._client.range_prefix(prefix + "/")
                self._view.reset(kvs, prefix)
                self._view.fresh = True
                self._kick.set()
                async for batch in self._client.watch(prefix + "/", revision + 1):
                    for event in batch:
                        if event.deleted:
                            self._view.delete(event.kv.key)
                        else:
                            self._view.put(event.kv)
                    self._kick.set()  # the decider coalesces bursts of events
            except EtcdError as err:
                self._view.fresh = False
                self._on_error(err)
                await asyncio.sleep(self._etcd.timers()[0])

    async def _end_session(self, reason: str) -> None:
        """Step down everywhere, wait the margin (announcements withdrawn), revoke."""
        held = any(g.leading or g.yield_at is not None for g in self._groups.values())
        lease, self._lease, self._valid_until = self._lease, 0, 0.0
        for (_group, kind), task in self._ops.items():
            if kind != "forget":
                task.cancel()
        self._evaluate(self._clock())  # step down everywhere first
        if self._watch_task is not None:
            self._watch_task.cancel()
            self._watch_task = None
        if lease:
            if held:
                await asyncio.sleep(self._etcd.timers()[2])
            with contextlib.suppress(EtcdError, TimeoutError):
                async with asyncio.timeout(self._etcd.timers()[1] * 2):
                    await self._client.revoke(lease)
                    LOG.info("etcd_lease_revoked", reason=reason, lease=f"{lease:x}")
        self._view.clear()
        await self._client.close()

    async def _shutdown(self) -> None:
        for task in self._ops.values():
            task.cancel()
        await self._end_session("shutdown")  # run() may be called again: a new session

    # --- the decider ----------------------------------------------------------------------------

    async def _decide_loop(self) -> None:
        while True:
            self._kick.clear()
            due = self._evaluate(self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, due - self._clock())):
                    await self._kick.wait()

    def _leader_key(self, group: str) -> str:
        return rules.leader_key(self._etcd.prefix, group)

    def _candidate(self, g: _Group, now: float) -> rules.Candidate:
        priority = max(1, g.cfg.priority - self._penalty)
        ready = now >= self._started + (g.cfg.preempt_delay or 0.0)
        return rules.Candidate(self._config.node.name, priority, g.cfg.preempt and ready,
                               g.resigned)

    def _holds(self, g: _Group) -> bool:
        kv = self._view.get(self._leader_key(g.cfg.name))
        return kv is not None and self._lease != 0 and kv.lease == self._lease

    def _evaluate(self, now: float) -> float:
        """Publish every verdict and start what the rules ask for; returns when to look
        again. Never waits for etcd."""
        renew, _timeout, margin = self._etcd.timers()
        may_lead = self._may_lead(now)
        due = now + max(renew, 0.05)
        if may_lead:
            due = min(due, self._valid_until - margin)
        for name, g in self._groups.items():
            me = self._candidate(g, now)
            kv = self._view.get(self._leader_key(name))
            holder = rules.holder_of(kv)
            holds = self._holds(g)
            others = self._view.candidates(name)
            if holds and kv is not None:
                g.token = kv.create_revision
                target = rules.should_yield(me, others)
                if (g.resigned or target is not None) and g.yield_at is None:
                    g.yield_at = now + margin
                    g.yield_reason = "resign" if g.resigned else "preempted"
                    LOG.info("etcd_handover", reason=g.yield_reason, group=name,
                             fencing_token=g.token, to=target.node if target else "")
            else:
                g.yield_at = None
            leading = holds and may_lead and g.yield_at is None
            state = ("leader" if leading else "handing_over" if holds and g.yield_at
                     else "lease_unrenewed" if holds else "follower" if kv is not None
                     else "no_etcd" if not self._view.fresh else "vacant")
            failover = None
            if leading and not g.leading and g.vacant_since is not None:
                failover = now - g.vacant_since
            self._publish(g, leading, state, holder, failover)
            if kv is None:
                g.vacant_since = g.vacant_since if g.vacant_since is not None else now
            else:
                g.vacant_since = None
            if not holds:
                g.token = 0
            if not may_lead or not self._view.fresh:
                continue
            due = min(due, self._act(g, me, kv, others, now))
        return due

    def _act(self, g: _Group, me: rules.Candidate, kv: KeyValue | None,
             others: list[rules.Candidate], now: float) -> float:
        """Start the etcd operations `g` needs; returns when to look again."""
        name, due = g.cfg.name, now + 3600.0
        ckey = rules.candidate_key(self._etcd.prefix, name, me.node)
        mine = self._view.get(ckey)
        if mine is None or mine.lease != self._lease or self._view.candidate(
                name, me.node) != me:
            self._spawn(name, "register", self._register(ckey, me, self._lease))
        if not me.preempt and g.cfg.preempt and not g.resigned:
            due = min(due, self._started + (g.cfg.preempt_delay or 0.0))
        if kv is None and not g.resigned and g.vacant_since is not None:
            at = g.vacant_since + rules.rank(me, others) * self._etcd.standby_delay
            if now >= at:
                self._spawn(name, "campaign", self._campaign(g, me, self._lease))
            else:
                due = min(due, at)
        if g.yield_at is not None and g.token:
            if now >= g.yield_at:
                self._spawn(name, "resign", self._delete_key(g, g.token, g.yield_reason))
            else:
                due = min(due, g.yield_at)
        return due

    def _spawn(self, group: str, kind: str, coro: Coroutine[Any, Any, None]) -> None:
        key = (group, kind)
        running = self._ops.get(key)
        if running is not None and not running.done():
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(self._op_done)
        self._ops[key] = task

    def _op_done(self, task: asyncio.Task[None]) -> None:
        self._kick.set()
        if task.cancelled():
            return
        err = task.exception()
        if isinstance(err, EtcdError):
            self._on_error(err)
            if err.reason == "lease_not_found":
                self._lease_gone()
        elif err is not None:
            LOG.error("etcd_op_failed", reason=type(err).__name__, error=str(err))

    async def _register(self, key: str, me: rules.Candidate, lease: int) -> None:
        if lease == 0 or lease != self._lease:
            return  # never write a key without this session's lease
        revision = await self._client.put(key, me.encode(), lease)
        if lease == self._lease:
            self._view.put(KeyValue(key, me.encode(), revision, revision, lease))

    async def _campaign(self, g: _Group, me: rules.Candidate, lease: int) -> None:
        if lease == 0 or lease != self._lease:
            return  # a campaign without a lease would create a key that never expires
        key = self._leader_key(g.cfg.name)
        won, kv = await self._client.campaign(key, rules.leader_value(me.node, me.priority),
                                              lease)
        if kv is not None and lease == self._lease:
            self._view.put(kv)
        if won and kv is not None:
            LOG.info("etcd_campaign_won", reason="key_created", group=g.cfg.name,
                     fencing_token=kv.create_revision, lease=f"{lease:x}")

    async def _delete_key(self, g: _Group, token: int, reason: str) -> None:
        key = self._leader_key(g.cfg.name)
        deleted = await self._client.delete_if_created(key, token)
        em.STEP_DOWNS.labels(reason).inc()
        LOG.info("etcd_key_released", reason=reason, group=g.cfg.name, fencing_token=token,
                 deleted=deleted)
        current = self._view.get(key)
        if current is not None and current.create_revision == token:
            self._view.delete(key)
        g.yield_at = None

    def _forget(self, g: _Group, old: EtcdConfig) -> None:
        """A group left the config: step down, then release its keys after the margin."""
        token, name = g.token if self._holds(g) else 0, g.cfg.name
        self._verdicts.drop(name)
        with contextlib.suppress(KeyError):
            em.FENCING_TOKEN.remove(name)
        node = self._config.node.name

        async def release() -> None:
            await asyncio.sleep(old.timers()[2])
            if token:
                await self._client.delete_if_created(rules.leader_key(old.prefix, name), token)
            await self._client.delete(rules.candidate_key(old.prefix, name, node))

        with contextlib.suppress(RuntimeError):  # no running loop (unit tests)
            self._spawn(name, "forget", release())

    def _selected(self, group: str | None) -> list[_Group]:
        return [g for name, g in self._groups.items() if group is None or name == group]

    def _publish(self, g: _Group, leading: bool, state: str, holder: str | None,
                 failover: float | None = None) -> None:
        if leading != g.leading:
            if leading:
                LOG.info("etcd_leading", reason="key_held", group=g.cfg.name,
                         fencing_token=g.token)
            else:
                em.STEP_DOWNS.labels(state).inc()
                (LOG.warning if state in ("lease_unrenewed", "no_etcd") else LOG.info)(
                    "etcd_step_down", reason=state, group=g.cfg.name, fencing_token=g.token)
        g.leading, g.state = leading, state
        em.FENCING_TOKEN.labels(g.cfg.name).set(g.token if leading else 0)
        self._verdicts.update(g.cfg.name, leading,
                              priority=max(1, g.cfg.priority - self._penalty), state=state,
                              leader_id=holder, failover=failover)
