"""The golden cases: appliance configs (examples/ and tests/routercfg/configs/) and
the `speaker router-config` arguments that render them. Paths are relative to the
repository root, as a user would type them there."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from speaker.routercfg import cli

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
CONF = "tests/routercfg/configs"
GOLDEN_VERSION = "0.0.0-golden"
"""Goldens are rendered with this version so a release bump does not churn them."""

CASES: dict[str, list[str]] = {
    "single-bgp": ["-c", "examples/single-bgp.yaml"],
    "bgp-active-active": ["-c", "examples/bgp-active-active/lb1.yaml",
                          "-c", "examples/bgp-active-active/lb2.yaml"],
    "lab-pair": ["-c", f"{CONF}/lab-lb1.yaml", "-c", f"{CONF}/lab-lb2.yaml",
                 "--peer", "192.0.2.1", "--peer", "2001:db8::1"],
    "knobs": ["-c", f"{CONF}/knobs-a.yaml", "-c", f"{CONF}/knobs-b.yaml", "--default-route"],
    "knobs-redacted": ["-c", f"{CONF}/knobs-a.yaml", "-c", f"{CONF}/knobs-b.yaml",
                       "--appliance", "edge-b", "--no-secrets"],
}

ROUTERS: dict[str, list[str]] = {
    "single-bgp": ["192.0.2.1", "192.0.2.2"],
    "bgp-active-active": ["198.51.100.254"],
    "lab-pair": ["192.0.2.1"],
    "knobs": ["203.0.113.254", "2001:db8:ffff::1"],
    "knobs-redacted": ["203.0.113.254"],
}
"""Router addresses per case, for per-router (loadable) renders."""

EXTENSION = {"frr": "frr.conf", "bird": "bird.conf", "gobgp": "gobgpd.toml",
             "junos": "junos.conf", "eos": "eos.conf", "iosxr": "iosxr.conf"}


def invoke(args: list[str], monkeypatch: object) -> Result:
    """Run the command from the repository root with the golden version."""
    monkeypatch.chdir(REPO)  # type: ignore[attr-defined]
    monkeypatch.setattr(cli, "speaker_version", lambda: GOLDEN_VERSION)  # type: ignore[attr-defined]
    return CliRunner().invoke(cli.router_config, args)


def render_ok(args: list[str], monkeypatch: object) -> str:
    """Output of a run that must succeed."""
    result = invoke(args, monkeypatch)
    assert result.exit_code == 0, result.output
    return result.output


def without_peers(args: list[str]) -> list[str]:
    """`args` minus any --peer options (to render one chosen router instead)."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--peer":
            skip = True
        else:
            out.append(arg)
    return out
