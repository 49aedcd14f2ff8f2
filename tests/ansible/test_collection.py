"""The Ansible collection: builds, lints clean under `production`, argument specs agree with
the defaults, and a bad variable stops the play before any task touches the host."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.tools import COLLECTION, REPO, TOOLS, tool_env

ROLES = ("appliance", "router")

pytestmark = [pytest.mark.ansible,
              pytest.mark.skipif(not (TOOLS / "ansible-playbook").exists(),
                                 reason="scripts/install sets up .venv-ansible")]


def test_version_follows_the_python_package() -> None:
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'version = "{galaxy["version"]}"' in pyproject


def test_collection_builds_with_the_images_unit_file(tmp_path: Path) -> None:
    out = subprocess.run([TOOLS / "ansible-galaxy", "collection", "build", "--output-path",
                          str(tmp_path), str(COLLECTION)], capture_output=True, text=True,
                         timeout=120, check=False, env=tool_env(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    (archive,) = tmp_path.glob("edgespeaker-appliance-*.tar.gz")
    with tarfile.open(archive) as tar:
        member = tar.extractfile("roles/appliance/files/edge-speaker.service")
        assert member is not None
        shipped = member.read()
    assert shipped == (REPO / "images" / "systemd" / "edge-speaker.service").read_bytes()


def test_lint_production_profile(tmp_path: Path) -> None:
    env = tool_env(tmp_path)
    where = tmp_path / "collections" / "ansible_collections" / "edgespeaker" / "appliance"
    out = subprocess.run([TOOLS / "ansible-lint", "--profile", "production", "--offline"],
                         cwd=where, capture_output=True, text=True, timeout=300, check=False,
                         env=env)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in out.stdout + out.stderr


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_and_defaults_agree(role: str) -> None:
    base = COLLECTION / "roles" / role
    defaults: dict[str, Any] = yaml.safe_load((base / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((base / "meta" / "argument_specs.yml").read_text())
    options: dict[str, Any] = specs["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options), "a variable is in defaults or specs only"
    types = {"str": str, "path": str, "bool": bool, "int": int, "list": list, "dict": dict}
    for name, spec in options.items():
        assert spec.get("description"), f"{name} has no description"
        value = defaults[name]
        assert isinstance(value, types[spec["type"]]), f"{name}: default is not {spec['type']}"
        if not spec.get("required"):
            assert spec.get("default") == value, f"{name}: spec default != defaults/main.yml"


def bad_play(tmp_path: Path, **overrides: Any) -> subprocess.CompletedProcess[str]:
    variables = {
        "appliance_wheels_dir": str(tmp_path / "wheels"),
        "appliance_router_id": "192.0.2.11",
        "appliance_interfaces": [{"name": "eth0", "role": "client"}],
        "appliance_bgp": {"local_asn": 65010,
                          "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000}]},
        "appliance_services": [{"name": "web", "vip": "203.0.113.10", "ports": [80],
                                "backends": [{"address": "198.51.100.11"}]}],
        **overrides,
    }
    play = [{"name": "Provision", "hosts": "appliance1", "gather_facts": False,
             "roles": [{"role": "edgespeaker.appliance.appliance", **variables}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    # the target is a name that resolves nowhere: a play that got past the checks would
    # fail to connect, so reaching it is visible as UNREACHABLE, never as a change here
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"hosts": {"appliance1": {"ansible_host": "192.0.2.250",
                                          "ansible_connection": "ssh",
                                          "ansible_ssh_timeout": 2}}}}))
    return subprocess.run([TOOLS / "ansible-playbook", "-i", str(tmp_path / "hosts.yml"),
                           str(tmp_path / "play.yml")], capture_output=True, text=True,
                          timeout=300, check=False, env=tool_env(tmp_path), cwd=tmp_path)


@pytest.mark.parametrize(("overrides", "named"), [
    ({"appliance_bgp": {"local_asn": 99999999999, "peers": [
        {"name": "r1", "address": "192.0.2.1", "asn": 65000}]}}, "appliance_bgp.local_asn"),
    ({"appliance_services": [{"name": "web", "vip": "2001:db8::10", "ports": [80],
                              "backends": [{"address": "198.51.100.11"}]}]},
     "appliance_services[0]"),
    ({"appliance_router_id": "not-an-address"}, "appliance_router_id"),
])
def test_a_bad_variable_fails_on_the_controller_naming_it(
        tmp_path: Path, overrides: dict[str, Any], named: str) -> None:
    out = bad_play(tmp_path, **overrides)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert named in text, text[-3000:]
    assert "UNREACHABLE" not in text  # stopped before the first task on the host
    assert "Install the Debian packages" not in text


def test_a_wrongly_typed_variable_fails_at_the_argument_spec(tmp_path: Path) -> None:
    out = bad_play(tmp_path, appliance_services="web")
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "appliance_services" in text
    assert "UNREACHABLE" not in text


def test_a_good_config_passes_the_controller_check_then_needs_the_host(
        tmp_path: Path) -> None:
    out = bad_play(tmp_path)
    assert "UNREACHABLE" in out.stdout + out.stderr  # the check passed; next is the host
