"""`speaker config import-keepalived` on ten realistic keepalived configs (each first
accepted by `keepalived -t`, in a namespace that has the interfaces they name)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from speaker.config import parse_text
from speaker.lab.netns import Lab, leftover_namespaces
from speaker.migrate.kaconf import KaSyntaxError
from speaker.migrate.kaconf import parse_text as parse_ka
from speaker.migrate.keepalived import import_keepalived

HERE = Path(__file__).resolve().parent / "keepalived"
CONFS = sorted(HERE.glob("*.conf"))
SPEAKER = [sys.executable, "-m", "speaker"]


def imported(name: str) -> tuple[dict[str, Any], list[str]]:
    path = HERE / name
    out = subprocess.run([*SPEAKER, "config", "import-keepalived", str(path),
                          "--router-id", "192.0.2.10"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    parse_text(out.stdout)  # the written text is a valid config, comments and all
    return yaml.safe_load(out.stdout), out.stderr.splitlines()


def test_there_are_ten_configs() -> None:
    assert len(CONFS) >= 10


@pytest.mark.lab
def test_keepalived_accepts_every_config() -> None:
    with Lab("ekm") as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.wire(a, b, "eth0", "eth0", ["192.0.2.10/24"], ["192.0.2.20/24"])
        lab.wire(a, b, "eth1", "eth1", ["192.0.2.129/25"], ["192.0.2.131/25"])
        for conf in CONFS:
            out = a.run("keepalived", "-t", "-f", str(conf), check=False)
            text = out.stdout + out.stderr
            assert out.returncode == 0, f"{conf.name}: {text}"
            assert "Invalid" not in text, text
            assert "Unknown keyword" not in text, text
    assert leftover_namespaces("ekm") == []


def test_nat_pair_with_tcp_check() -> None:
    cfg, _ = imported("01-basic-nat.conf")
    assert cfg["election"]["groups"][0] == {"name": "VI_1", "vrid": 51, "priority": 150,
                                            "advert_interval": "1000ms", "interface": "eth0"}
    svc = cfg["services"][0]
    assert (svc["vip"], svc["ports"], svc["scheduler"], svc["forwarding"]) == (
        "192.0.2.100", [80], "wrr", "nat")
    assert svc["persistence"] == {"timeout": "300s"}
    assert svc["backends"] == [{"address": "198.51.100.11", "port": 8080, "weight": 2}]
    assert svc["health"] == {"type": "tcp", "interval": "2s", "timeout": "1s"}


def test_dr_with_http_check() -> None:
    cfg, _ = imported("02-dr-http.conf")
    svc = cfg["services"][0]
    assert svc["forwarding"] == "dr"
    assert svc["health"]["type"] == "http"
    assert svc["health"]["http"] == {"path": "/healthz", "expect_status": ["200"]}
    assert svc["health"]["fall"] == 3
    assert cfg["election"]["groups"][0]["advert_interval"] == "500ms"
    assert cfg["node"]["name"] == "edge-a"


def test_unicast_and_nopreempt() -> None:
    cfg, _ = imported("03-unicast-nopreempt.conf")
    assert cfg["election"]["vrrp"]["unicast_peers"] == ["192.0.2.32"]
    assert cfg["election"]["vrrp"]["source_address"] == "192.0.2.31"
    assert cfg["election"]["groups"][0]["preempt"] is False
    assert cfg["services"][0]["health"]["port"] == 8443


def test_two_instances_become_two_groups() -> None:
    cfg, _ = imported("04-active-active.conf")
    assert [(g["name"], g["priority"]) for g in cfg["election"]["groups"]] == [
        ("VI_A", 150), ("VI_B", 100)]
    assert [s["group"] for s in cfg["services"]] == ["VI_A", "VI_B"]


def test_ssl_get_and_kubernetes_affinity() -> None:
    cfg, _ = imported("05-ssl-affinity.conf")
    svc = cfg["services"][0]
    assert svc["health"]["type"] == "https"
    assert svc["health"]["http"]["host"] == "app.example.test"
    assert svc["persistence"] == {"timeout": "10800s"}
    assert svc["scheduler"] == "sh"


def test_misc_check_and_notify_scripts_become_exec_checks_and_hooks() -> None:
    cfg, findings = imported("06-misc-notify.conf")
    assert cfg["services"][0]["health"]["exec"] == {"command": ["/bin/true", "198.51.100.61"]}
    assert cfg["hooks"] == [
        {"on": "leader_gained", "group": "APP", "command": ["/bin/true", "master", "APP"]},
        {"on": "leader_lost", "group": "APP", "command": ["/bin/true", "backup", "APP"]},
        {"on": "leader_lost", "group": "APP", "command": ["/bin/true", "fault", "APP"]}]
    assert any("06-misc-notify.conf:15" in f and "notify_fault" in f for f in findings)
    assert any("06-misc-notify.conf:4" in f and "enable_script_security" in f
               for f in findings)


def test_ipv6() -> None:
    cfg, _ = imported("07-ipv6.conf")
    assert cfg["services"][0]["vip"] == "2001:db8:0:66::10"
    assert cfg["services"][0]["scheduler"] == "mh"


def test_udp_dns_check() -> None:
    cfg, _ = imported("08-udp-dns.conf")
    svc = cfg["services"][0]
    assert (svc["protocol"], svc["health"]["type"]) == ("udp", "dns")


def test_vrrpv2_setup_lists_what_cannot_come_along() -> None:
    cfg, findings = imported("09-v2-scripts.conf")
    text = "\n".join(findings)
    assert "VRRPv2 unless vrrp_version 3" in text
    assert "09-v2-scripts.conf:7: vrrp_script has no edge-speaker counterpart" in text
    assert "09-v2-scripts.conf:18: authentication is VRRPv2 only" in text
    assert "09-v2-scripts.conf:25: vrrp_instance track_script: not carried over" in text
    assert "09-v2-scripts.conf:29" in text  # the address label
    assert cfg["node"]["self_checks"] == {"uplinks": ["eth1"]}


def test_sorry_server_quorum_and_fwmark_are_listed() -> None:
    cfg, findings = imported("10-sorry-quorum.conf")
    text = "\n".join(findings)
    assert "10-sorry-quorum.conf:22: virtual_server sorry_server: not carried over" in text
    assert "10-sorry-quorum.conf:21: quorum counts weights" in text
    assert "10-sorry-quorum.conf:53: virtual_server by fwmark" in text
    assert [s["ports"] for s in cfg["services"]] == [[80], [443]]
    assert cfg["services"][0]["persistence"] == {"timeout": "600s", "netmask": 24}
    assert cfg["services"][0]["quorum"] == {"min_healthy": 2}


def test_syntax_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(KaSyntaxError, match="opened at line 1"):
        parse_ka("vrrp_instance A {\n  priority 1\n", "x.conf")
    with pytest.raises(KaSyntaxError, match=r"x\.conf:1"):
        parse_ka("}\n", "x.conf")
    bad = tmp_path / "bad.conf"
    bad.write_text("vrrp_instance {{\n")
    out = subprocess.run([*SPEAKER, "config", "import-keepalived", str(bad)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_includes_are_followed(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "vs.conf").write_text(
        "virtual_server 192.0.2.100 80 {\n lb_algo rr\n real_server 198.51.100.1 80 {\n"
        "  TCP_CHECK {\n  }\n }\n}\n")
    main = tmp_path / "keepalived.conf"
    main.write_text((HERE / "01-basic-nat.conf").read_text().split("virtual_server")[0]
                    + "include conf.d/*.conf\n")
    from speaker.migrate.kaconf import parse_file
    result = import_keepalived(parse_file(main), router_id="192.0.2.10")
    assert result.config["services"][0]["scheduler"] == "rr"
