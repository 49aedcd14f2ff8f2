"""The etcd engine against one real etcd 3.4 member on loopback: campaign, preference,
fencing tokens, resign, preemption, a hung server (step down before the lease can
expire), reconfigure, TLS with client certificates, auth, and wrong certificates."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from etcdkit import Member, etcdctl, make_certs, single, wait_healthy

from speaker.config import AppConfig
from speaker.election.etcd import EtcdElection

pytestmark = [pytest.mark.etcd, pytest.mark.timeout(120)]


def config(name: str, endpoint: str, priorities: dict[str, int], *, prefix: str = "/eet",
           preempt: bool = True, **etcd: Any) -> AppConfig:
    doc: dict[str, Any] = {
        "node": {"name": name, "router_id": "192.0.2.1", "interfaces": [{"name": "eth0"}]},
        "election": {"engine": "etcd", "etcd": {"endpoints": [endpoint], "prefix": prefix,
                                                 **etcd},
                     "groups": [{"name": g, "priority": p, "preempt": preempt}
                                for g, p in priorities.items()]},
        "dataplane": {"ipvs": False},
    }
    return AppConfig.model_validate(yaml.safe_load(yaml.safe_dump(doc)))


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Member]:
    m = single(tmp_path)
    try:
        wait_healthy(m.client_url)
        yield m
    finally:
        m.stop()


class Node:
    """One engine running in this event loop, with its wake-ups counted."""

    def __init__(self, cfg: AppConfig) -> None:
        self.wakes = 0
        self.engine = EtcdElection(cfg, self._wake)
        self.task: asyncio.Task[None] | None = None

    def _wake(self, _event: str) -> None:
        self.wakes += 1

    def leads(self, group: str) -> bool:
        v = self.engine.leadership().get(group)
        return v is not None and v.leader

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.engine.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


@contextlib.asynccontextmanager
async def nodes(*cfgs: AppConfig) -> AsyncIterator[list[Node]]:
    ns = [Node(c) for c in cfgs]
    for n in ns:
        n.start()
    try:
        yield ns
    finally:
        for n in ns:
            await n.stop()


async def until(cond: Any, limit: float = 10.0, what: str = "") -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > limit:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def test_preferred_node_leads_each_group_and_groups_spread(etcd: Member) -> None:
    async def main() -> None:
        a = config("a", etcd.client_url, {"blue": 200, "green": 100})
        b = config("b", etcd.client_url, {"blue": 100, "green": 200})
        async with nodes(a, b) as (na, nb):
            await until(lambda: na.leads("blue") and nb.leads("green"), what="spread")
            await asyncio.sleep(1.0)  # stable: nobody flaps
            assert na.leads("blue")
            assert not na.leads("green")
            assert nb.leads("green")
            assert not nb.leads("blue")
            st = na.engine.status()["groups"]
            assert isinstance(st, dict)
            token = st["blue"]["fencing_token"]
            got = etcdctl(etcd.client_url, "get", "/eet/blue/leader", "-w", "json").stdout
            assert f'"create_revision":{token}' in got
            assert st["green"]["holder"] == "b"
    asyncio.run(main())


def test_resign_hands_over_at_once_and_reclaim_preempts_back(etcd: Member) -> None:
    async def main() -> None:
        a = config("a", etcd.client_url, {"blue": 200})
        b = config("b", etcd.client_url, {"blue": 100})
        async with nodes(a, b) as (na, nb):
            await until(lambda: na.leads("blue"))
            await until(lambda: nb.engine.status()["groups"]["blue"]["holder"] == "a")  # type: ignore[index]
            lease = na.engine.status()["lease"]
            await na.engine.resign("blue")
            assert not na.leads("blue")
            await until(lambda: nb.leads("blue"), what="b takes over")
            # b won while a's lease is alive: the key was deleted, not left to expire
            ttl = etcdctl(etcd.client_url, "lease", "timetolive", str(lease)).stdout
            assert "remaining" in ttl, ttl
            assert na.engine.status()["lease"] == lease
            na.engine.reclaim("blue")
            await until(lambda: na.leads("blue"), what="a preempts back")
            assert not nb.leads("blue")
    asyncio.run(main())


def test_graceful_stop_revokes_lease_and_standby_leads_at_once(etcd: Member) -> None:
    async def main() -> None:
        a = config("a", etcd.client_url, {"blue": 200})
        b = config("b", etcd.client_url, {"blue": 100})
        async with nodes(a, b) as (na, nb):
            await until(lambda: na.leads("blue"))
            await until(lambda: nb.engine.status()["groups"]["blue"]["holder"] == "a")  # type: ignore[index]
            lease = str(na.engine.status()["lease"])
            await na.stop()  # SIGTERM path: step down, wait the margin, revoke the lease
            # revoked, not left to expire: gone as soon as stop() returns (it was renewed
            # at most 0.5 s ago with a 2 s TTL)
            leases = etcdctl(etcd.client_url, "lease", "list").stdout
            assert lease not in leases, leases
            await until(lambda: nb.leads("blue"), limit=5.0)
            out = etcdctl(etcd.client_url, "get", "--prefix", "/eet/blue/candidates/").stdout
            assert "/eet/blue/candidates/a" not in out
    asyncio.run(main())


def test_hung_etcd_leader_steps_down_before_lease_can_expire(etcd: Member) -> None:
    async def main() -> None:
        a = config("a", etcd.client_url, {"blue": 200})
        async with nodes(a) as (na,):
            await until(lambda: na.leads("blue"))
            await asyncio.sleep(0.6)  # at least one renewal
            etcd.pause()
            try:
                await until(lambda: not na.leads("blue"), limit=5)
                # the safety claim: the verdict flipped before the server could expire the
                # lease, i.e. before the last acknowledged renewal's send time + TTL
                flipped = na.engine.leadership()["blue"].since
                earliest_expiry = na.engine._valid_until  # sent + ttl (engine's clock)
                assert flipped < earliest_expiry, (flipped, earliest_expiry)
                status = na.engine.status()
                assert status["reason"] in ("timeout", "unreachable")
                assert status["groups"]["blue"]["state"] in ("lease_unrenewed",  # type: ignore[index]
                                                             "no_etcd", "vacant")
            finally:
                etcd.resume()
            await until(lambda: na.leads("blue"), limit=10, what="leads again")
    asyncio.run(main())


def test_penalty_hands_group_to_preferred_candidate(etcd: Member) -> None:
    async def main() -> None:
        a = config("a", etcd.client_url, {"blue": 200})
        b = config("b", etcd.client_url, {"blue": 150})
        async with nodes(a, b) as (na, nb):
            await until(lambda: na.leads("blue"))
            na.engine.set_penalty(100, "uplink_down")
            await until(lambda: nb.leads("blue"), what="b preempts the penalised a")
            assert not na.leads("blue")
    asyncio.run(main())


def test_reconfigure_group_priority_and_endpoint(etcd: Member, tmp_path: Path) -> None:
    async def main() -> None:
        a = config("a", etcd.client_url, {"blue": 200})
        b = config("b", etcd.client_url, {"blue": 100})
        async with nodes(a, b) as (na, nb):
            await until(lambda: na.leads("blue"))
            nb.engine.reconfigure(config("b", etcd.client_url, {"blue": 250, "red": 100}))
            await until(lambda: nb.leads("blue") and nb.leads("red"), what="b preempts")
            # a new prefix is a new session: b steps down, revokes and campaigns again
            nb.engine.reconfigure(config("b", etcd.client_url, {"blue": 250}, prefix="/eet2"))
            await until(lambda: nb.leads("blue") and "red" not in nb.engine.leadership())
            await until(lambda: na.leads("blue"), what="a alone under /eet")
            assert nb.engine.status()["groups"]["blue"]["fencing_token"]  # type: ignore[index]
    asyncio.run(main())


def test_tls_client_certs_auth_and_wrong_certs(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "pki")
    m = single(tmp_path, scheme="https", extra=[
        "--cert-file", str(certs["server.pem"]), "--key-file", str(certs["server.key"]),
        "--trusted-ca-file", str(certs["ca.pem"]), "--client-cert-auth"])
    tls = ["--cacert", str(certs["ca.pem"]), "--cert", str(certs["client.pem"]),
           "--key", str(certs["client.key"])]
    try:
        wait_healthy(m.client_url, extra=tls)
        for args in (["user", "add", "root:rootpw"], ["user", "add", "eet:s3cret"],
                     ["role", "add", "eet"],
                     ["role", "grant-permission", "eet", "--prefix=true", "readwrite", "/eet/"],
                     ["user", "grant-role", "eet", "eet"], ["auth", "enable"]):
            etcdctl(m.client_url, *args, extra=tls)
        pw = tmp_path / "pw"
        pw.write_text("s3cret\n")
        good = {"ca_file": str(certs["ca.pem"]), "cert_file": str(certs["client.pem"]),
                "key_file": str(certs["client.key"])}
        rogue = {**good, "cert_file": str(certs["rogue.pem"]), "key_file": str(certs["rogue.key"])}

        async def main() -> None:
            ok = config("a", m.client_url, {"blue": 200}, tls=good, username="eet",
                        password_file=str(pw))
            bad_cert = config("b", m.client_url, {"blue": 100}, tls=rogue, username="eet",
                              password="s3cret")
            bad_ca = config("c", m.client_url, {"blue": 100},
                            tls={**good, "ca_file": str(certs["rogue-ca.pem"])},
                            username="eet", password="s3cret")
            bad_pw = config("d", m.client_url, {"blue": 100}, tls=good, username="eet",
                            password="nope")
            async with nodes(ok, bad_cert, bad_ca, bad_pw) as (na, nb, nc, nd):
                await until(lambda: na.leads("blue"), what="TLS + auth leader")
                await until(lambda: nd.engine.status()["reason"] == "auth_failed",
                            what="auth_failed")
                await until(lambda: nb.engine.status()["reason"] == "tls_error",
                            what="rogue client cert refused")
                await until(lambda: nc.engine.status()["reason"] == "tls_error",
                            what="server cert not trusted")
                reasons = {n: x.engine.status() for n, x in (("b", nb), ("c", nc), ("d", nd))}
                assert not any(x.leads("blue") for x in (nb, nc, nd)), reasons
                print({n: (s["reason"], s["last_error"]) for n, s in reasons.items()})
        asyncio.run(main())
    finally:
        m.stop()


def test_vacant_key_goes_to_the_preferred_standby_not_the_fastest(etcd: Member) -> None:
    async def main() -> None:
        cfgs = [config(n, etcd.client_url, {"blue": p}) for n, p in
                (("a", 250), ("c", 100), ("b", 200))]
        async with nodes(*cfgs) as (na, nc, nb):
            await until(lambda: na.leads("blue"))
            await until(lambda: all(len(x.engine.status()["groups"]) == 1  # type: ignore[arg-type]
                                    for x in (nb, nc)))
            await asyncio.sleep(0.5)  # every candidate key is registered and watched
            for _ in range(2):
                await na.stop()
                await until(lambda: nb.leads("blue") or nc.leads("blue"), what="a standby")
                assert nb.leads("blue"), "the higher-priority standby wins the vacant key"
                assert not nc.leads("blue")
                na.start()
                await until(lambda: na.leads("blue"), what="a preempts back")
    asyncio.run(main())
