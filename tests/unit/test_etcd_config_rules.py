"""etcd engine: config validation (every error at its dotted path) and the pure rules
(ranking, preemption, margins, key ranges, error classes). No etcd needed."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from speaker.config import ConfigError, parse_text
from speaker.election import etcd_rules as rules
from speaker.election.etcd_client import classify, prefix_end

BASE = """
node: {{name: a1, router_id: 192.0.2.11, interfaces: [{{name: eth0}}]}}
election:
  engine: etcd
  groups: [{{name: blue, priority: 200}}]
  etcd: {etcd}
dataplane: {{ipvs: false}}
"""


def paths(etcd: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_text(BASE.format(etcd=etcd))
    return {i.path: i.message for i in info.value.issues}


def test_defaults_follow_the_ttl_and_keep_the_rule() -> None:
    cfg = parse_text(BASE.format(etcd="{endpoints: ['http://192.0.2.1:2379'], lease_ttl: 5}"))
    etcd = cfg.election.etcd
    assert etcd.timers() == (1.25, 1.25, 1.25)
    renew, timeout, margin = etcd.timers()
    assert renew + 2 * timeout + margin <= etcd.lease_ttl


@pytest.mark.parametrize(("etcd", "path", "words"), [
    ("{endpoints: []}", "election", "needs etcd.endpoints"),
    ("{endpoints: ['192.0.2.1:2379']}", "election.etcd.endpoints", "client URL"),
    ("{endpoints: ['http://a:2379', 'https://b:2379']}", "election.etcd.endpoints", "scheme"),
    ("{endpoints: ['http://a:99999']}", "election.etcd.endpoints", "port"),
    ("{endpoints: ['http://a:2379'], lease_ttl: 1}", "election.etcd.lease_ttl", "2"),
    ("{endpoints: ['http://a:2379'], lease_ttl: 2.5}", "election.etcd.lease_ttl", "integer"),
    ("{endpoints: ['http://a:2379'], prefix: 'eet/'}", "election.etcd.prefix", "start with"),
    ("{endpoints: ['http://a:2379'], renew_interval: 1}", "election.etcd.step_down_margin",
     "renew_interval + 2 x request_timeout"),
    ("{endpoints: ['http://a:2379'], lease_ttl: 10, request_timeout: 5}",
     "election.etcd.step_down_margin", "<= lease_ttl"),
    ("{endpoints: ['https://a:2379']}", "election.etcd.tls", "ca_file"),
    ("{endpoints: ['http://a:2379'], password: x}", "election.etcd.password_file", "username"),
    ("{endpoints: ['http://a:2379'], tls: {ca_file: /nonexistent/ca.pem}}",
     "election.etcd.tls.ca_file", "file"),
])
def test_bad_etcd_settings_are_named_by_path(etcd: str, path: str, words: str) -> None:
    found = paths(etcd)
    assert path in found, found
    assert words.lower() in found[path].lower(), found[path]


def test_tls_files_and_password_file_accepted(tmp_path: Path) -> None:
    for name in ("ca.pem", "c.pem", "c.key", "pw"):
        (tmp_path / name).write_text("x\n")
    cfg = parse_text(BASE.format(etcd=(
        f"{{endpoints: ['https://192.0.2.1:2379'], username: eet, password_file: {tmp_path}/pw,"
        f" tls: {{ca_file: {tmp_path}/ca.pem, cert_file: {tmp_path}/c.pem,"
        f" key_file: {tmp_path}/c.key}}}}")))
    assert cfg.election.etcd.tls is not None
    half = paths(f"{{endpoints: ['https://a:2379'], tls: {{ca_file: {tmp_path}/ca.pem, "
                 f"cert_file: {tmp_path}/c.pem}}}}")
    assert "election.etcd.tls" in half


def test_rank_prefers_priority_then_name_and_skips_resigned() -> None:
    me = rules.Candidate("b", 150)
    others = [rules.Candidate("a", 200), rules.Candidate("c", 150), me,
              rules.Candidate("d", 250, resigned=True)]
    assert rules.rank(me, others) == 1
    assert rules.rank(rules.Candidate("c", 150), others) == 2
    assert rules.rank(rules.Candidate("a", 200), others) == 0


def test_holder_yields_only_to_a_higher_priority_that_asks_for_preemption() -> None:
    me = rules.Candidate("a", 100)
    assert rules.should_yield(me, [rules.Candidate("b", 200, preempt=False)]) is None
    assert rules.should_yield(me, [rules.Candidate("b", 100, preempt=True)]) is None
    target = rules.should_yield(me, [rules.Candidate("b", 200, preempt=True),
                                     rules.Candidate("c", 250, preempt=True, resigned=True)])
    assert target == rules.Candidate("b", 200, preempt=True)


def test_candidate_values_round_trip_and_garbage_is_ignored() -> None:
    c = rules.Candidate("a", 7, preempt=True)
    assert rules.Candidate.decode(c.encode()) == c
    assert rules.Candidate.decode(b"not json") is None


def test_step_down_is_margin_before_the_earliest_server_expiry() -> None:
    assert rules.step_down_at(100.0, 2, 0.5) == 101.5
    assert rules.failover_bound(2, 0.5) == 2.5


def test_prefix_end() -> None:
    assert prefix_end(b"/eet/") == b"/eet0"
    assert prefix_end(b"a\xff") == b"b"


class _Err(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(("code", "details", "reason"), [
    (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", "unreachable"),
    (grpc.StatusCode.UNAVAILABLE, "Tls handshake failed (TSI_PROTOCOL_FAILURE)", "tls_error"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", "timeout"),
    (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: authentication failed, invalid user ID",
     "auth_failed"),
    (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found", "lease_not_found"),
    (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader", "no_leader"),
    (grpc.StatusCode.INTERNAL, "boom", "error"),
])
def test_grpc_failures_get_stable_reasons(code: grpc.StatusCode, details: str,
                                          reason: str) -> None:
    assert classify(_Err(code, details)).reason == reason
