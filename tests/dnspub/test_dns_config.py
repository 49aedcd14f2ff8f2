"""The dns section: every mistake is reported at its field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_publisher import BASE, SECRET

from speaker.config import ConfigError, parse_text


def errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_text(yaml.safe_dump(data))
    return [i.path for i in info.value.issues]


def with_dns(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["dns"].update(changes)
    return data


def test_base_is_valid() -> None:
    assert parse_text(yaml.safe_dump(BASE)).dns is not None


@pytest.mark.parametrize(("change", "path"), [
    ({"servers": []}, "dns.servers"),
    ({"refresh": "100s", "claim_lifetime": "150s"}, "dns"),
    ({"timeout": "90s"}, "dns"),
    ({"owner": "fleet one"}, "dns.owner"),
    ({"servers": [{"address": "192.0.2.53", "zone": "exa_mple.test"}]}, "dns.servers[0].zone"),
    ({"servers": [{"address": "not-ip", "zone": "example.test"}]}, "dns.servers[0].address"),
    ({"servers": [{"address": "192.0.2.53", "zone": "example.test",
                   "tsig": {"name": "k", "secret": "not base64!"}}]},
     "dns.servers[0].tsig.secret"),
    ({"servers": [{"address": "192.0.2.53", "zone": "example.test",
                   "tsig": {"name": "k"}}]}, "dns.servers[0].tsig"),
    ({"servers": [{"address": "192.0.2.53", "zone": "example.test",
                   "tsig": {"name": "k", "secret": SECRET, "algorithm": "hmac-md4"}}]},
     "dns.servers[0].tsig.algorithm"),
])
def test_bad_dns_section(change: dict[str, Any], path: str) -> None:
    assert path in errors(with_dns(**change))


def test_name_outside_every_zone() -> None:
    data = copy.deepcopy(BASE)
    data["services"][0]["dns"]["names"] = ["web.example.org"]
    assert "services[0].dns.names[0]" in errors(data)


def test_names_need_the_dns_section() -> None:
    data = copy.deepcopy(BASE)
    del data["dns"]
    assert "services[0].dns" in errors(data)


def test_name_in_two_services() -> None:
    data = copy.deepcopy(BASE)
    other = copy.deepcopy(data["services"][0])
    other.update(name="api", vip="203.0.113.11", dns={"names": ["web.example.test"]})
    data["services"].append(other)
    assert "services[1].dns.names[0]" in errors(data)


def test_bad_name_and_ttl() -> None:
    data = copy.deepcopy(BASE)
    data["services"][0]["dns"] = {"names": ["-web.example.test"], "ttl": 0}
    paths = errors(data)
    assert "services[0].dns.names" in paths
    assert "services[0].dns.ttl" in paths


def test_secret_file(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text(SECRET + "\n")
    data = with_dns(servers=[{"address": "192.0.2.53", "zone": "example.test",
                              "tsig": {"name": "es-key", "secret_file": str(key)}}])
    cfg = parse_text(yaml.safe_dump(data))
    assert cfg.dns is not None
    assert cfg.dns.servers[0].tsig is not None
    assert cfg.dns.servers[0].tsig.secret_value() == SECRET
    key.write_text("garbage")
    assert "dns.servers[0].tsig" in errors(data)
    data["dns"]["servers"][0]["tsig"]["secret_file"] = "relative/key"
    assert "dns.servers[0].tsig.secret_file" in errors(data)  # paths are absolute
