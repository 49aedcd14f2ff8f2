"""Unit tests: ExaBGP lines, /proc sockets, session table, config rendering."""

from __future__ import annotations

import base64
from ipaddress import ip_address
from pathlib import Path

import pytest

from speaker.bgp.diagnose import Socket, explain, parse_proc_tcp
from speaker.bgp.events import (
    Ack,
    Ignored,
    StateEvent,
    Text,
    down_reason_code,
    established_from_summary,
    parse_line,
)
from speaker.bgp.exaconf import ExaBgpVersion, argv, environment, render_config
from speaker.bgp.install import parse_version
from speaker.bgp.plan import peers_from_config
from speaker.bgp.process import restart_delay
from speaker.bgp.sessions import SessionTable
from speaker.config import AppConfig

UP = ('{ "exabgp": "4.0.1", "time": 1.0, "host" : "vm", "pid" : 1, "ppid" : 1, "counter": 2, '
      '"type": "state", "neighbor": { "address": { "local": "192.0.2.10", "peer": "192.0.2.1" }'
      ', "asn": { "local": 65010, "peer": 65001 } , "state": "up" } }')
DOWN = UP.replace('"state": "up"', '"state": "down", "reason": "peer reset, message () error()"')


def config(**peer: object) -> AppConfig:
    """Config with one peer r1 (plus overrides)."""
    return AppConfig.model_validate({
        "node": {"name": "a1", "router_id": "192.0.2.10", "interfaces": [{"name": "eth0"}]},
        "bgp": {"local_asn": 65010, "peers": [
            {"name": "r1", "address": "192.0.2.1", "asn": 65001, **peer}]}})


def test_parse_acks_events_and_text() -> None:
    assert parse_line("done\n") == Ack(True)
    assert parse_line("error") == Ack(False)
    assert parse_line(UP) == StateEvent(ip_address("192.0.2.1"), "up", "")
    assert parse_line(DOWN) == StateEvent(ip_address("192.0.2.1"), "down",
                                          "peer reset, message () error()")
    assert parse_line('{"type": "update", "neighbor": {}}') == Ignored("update")
    assert parse_line("Peer  AS  up/down") == Text("Peer  AS  up/down")
    assert parse_line("{not json") == Text("{not json")


def test_summary_lists_established_peers() -> None:
    lines = ["Peer            AS        up/down state       |     #sent     #recvd",
             "192.0.2.1       65001     0:00:03 established           1          2",
             "2001:db8::1     65001        down connect               0          0"]
    assert established_from_summary(lines) == {ip_address("192.0.2.1")}


def test_down_reasons_get_stable_codes() -> None:
    assert down_reason_code("hold timer expired") == "hold_timer_expired"
    assert down_reason_code("notification received (6,2)") == "peer_admin_shutdown"
    assert down_reason_code("peer reset, message (notification received (2,2)) error()") == \
        "bad_peer_as"
    assert down_reason_code("notification sent (2,2)") == "sent_bad_peer_as"
    assert down_reason_code("notification received (3,1)") == "notification_received"
    assert down_reason_code("something new") == "session_down"


def test_proc_tcp_parsing_and_md5_verdict() -> None:
    text = ("  sl  local_address rem_address   st tx_queue rx_queue\n"
            "   0: 0A0200C0:9C40 010200C0:00B3 02 00000000:00000000 00:00000000 00000000\n")
    sockets = parse_proc_tcp(text)
    assert sockets == [Socket(ip_address("192.0.2.1"), 179, "syn_sent")]
    verdict = explain(ip_address("192.0.2.1"), True, sockets)
    assert verdict is not None
    assert verdict.reason == "tcp_md5_mismatch_suspected"
    plain = explain(ip_address("192.0.2.1"), False, sockets)
    assert plain is not None
    assert plain.reason == "tcp_connect_unanswered"
    assert explain(ip_address("192.0.2.2"), True, sockets) is None


def test_proc_tcp6_address() -> None:
    text = ("header\n   0: 00000000000000000000000000000000:00B3 "
            "B80D0120000000000000000001000000:00B3 01 0 0 0\n")
    assert parse_proc_tcp(text)[0].remote == ip_address("2001:db8::1")


def test_session_table_states_and_diagnosis() -> None:
    now = [100.0]
    table = SessionTable(peers_from_config(config(password="pw").bgp),  # type: ignore[arg-type]
                         lambda: now[0])
    assert table.states(lambda _: 0)["r1"].state == "idle"
    table.exabgp_started()
    now[0] = 110.0
    sockets = [Socket(ip_address("192.0.2.1"), 179, "syn_sent")]
    table.diagnosed("r1", explain(ip_address("192.0.2.1"), True, sockets))
    state = table.states(lambda _: 0)["r1"]
    assert (state.state, state.reason, state.since) == ("connecting",
                                                        "tcp_md5_mismatch_suspected", 100.0)
    assert table.on_event(StateEvent(ip_address("192.0.2.1"), "up")) == "r1"
    assert table.states(lambda _: 3)["r1"] == table.states(lambda _: 3)["r1"]
    up = table.states(lambda _: 3)["r1"]
    assert (up.state, up.reason, up.since, up.announced) == ("up", "established", 110.0, 3)
    table.exabgp_stopped("exabgp_exited")
    assert table.states(lambda _: 0)["r1"].reason == "exabgp_exited"


def test_config_render(tmp_path: Path) -> None:
    cfg = config(password="s3cret=+/%$@-P4ss", multihop=3, passive=False,
                 graceful_restart={"enabled": True, "restart_time": 60},
                 families=["ipv4-unicast"])
    assert cfg.bgp is not None
    text = render_config(cfg.bgp, node_router_id="192.0.2.10",
                         local_addresses={"r1": ip_address("192.0.2.10")},
                         python=Path("/opt/venv/bin/python"), bridge_socket=tmp_path / "b.sock")
    assert f"run /opt/venv/bin/python -m speaker.bgp.bridge {tmp_path}/b.sock;" in text
    encoded = base64.b64encode(b"s3cret=+/%$@-P4ss").decode()
    assert f"md5-password {encoded};" in text
    assert "md5-base64 true;" in text
    for needle in ("local-address 192.0.2.10;", "outgoing-ttl 3;", "graceful-restart 60;",
                   "manual-eor true;", "family { ipv4 unicast; }", "neighbor-changes;",
                   "hold-time 9;", "encoder json;"):
        assert needle in text
    with pytest.raises(ValueError, match="absolute"):
        render_config(cfg.bgp, node_router_id="192.0.2.10", local_addresses={},
                      python=Path("python"), bridge_socket=tmp_path / "b.sock")
    with pytest.raises(ValueError, match="local_address"):
        render_config(cfg.bgp, node_router_id="192.0.2.10", local_addresses={},
                      python=Path("/p"), bridge_socket=tmp_path / "b.sock")


def test_command_line_and_environment() -> None:
    v4, v5 = ExaBgpVersion(4, 2, "4.2.25"), ExaBgpVersion(5, 0, "5.0.15")
    assert argv(Path("/x/exabgp"), Path("/r/c.conf"), v4) == ["/x/exabgp", "/r/c.conf"]
    assert argv(Path("/x/exabgp"), Path("/r/c.conf"), v5, "ns1") == [
        "ip", "netns", "exec", "ns1", "/x/exabgp", "server", "/r/c.conf"]
    # a pip-installed 4.2 runs under its own interpreter with its refresh repaired
    assert argv(Path("/x/exabgp"), Path("/r/c.conf"), v4, python=Path("/v/bin/python3")) == [
        "/v/bin/python3", "-m", "speaker.bgp.refreshfix", "/r/c.conf"]
    assert argv(Path("/x/exabgp"), Path("/r/c.conf"), v5, python=Path("/v/bin/python3")) == [
        "/x/exabgp", "server", "/r/c.conf"]
    env = environment({"PATH": "/bin", "exabgp_log_level": "DEBUG"}, python_path=Path("/src"))
    assert env["exabgp_api_ack"] == "true"
    assert env["exabgp_daemon_drop"] == "false"
    assert env["exabgp_log_level"] == "WARNING"
    assert env["PATH"] == "/bin"
    assert env["exabgp_tcp_bind"] == ""


def test_version_and_backoff() -> None:
    assert parse_version("ExaBGP : 4.2.25\nPython : 3.11") == ExaBgpVersion(4, 2, "4.2.25")
    assert parse_version("ExaBGP : 5.0.15") == ExaBgpVersion(5, 0, "5.0.15")
    assert parse_version("nothing") is None
    assert [restart_delay(n) for n in range(9)] == [0, 0.5, 1, 2, 4, 8, 16, 30, 30]
