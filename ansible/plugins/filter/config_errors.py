"""Filter `edge_speaker_var_errors`: speaker config check errors -> role variable names.

`speaker config check` names config paths (`bgp.local_asn`, `services[0].vip`); an
operator wrote role variables (`appliance_bgp.local_asn`, `appliance_services[0].vip`),
so the role reports the variable."""

from __future__ import annotations

import re

DOCUMENTATION = r"""
name: edge_speaker_var_errors
short_description: Name the role variable behind each speaker config check error.
description: Rewrites the config path at the start of each error line to the role variable.
options:
  _input:
    description: Lines of C(speaker config check) output.
    type: list
    elements: str
    required: true
"""

_NODE = {"name": "appliance_node_name", "router_id": "appliance_router_id",
         "interfaces": "appliance_interfaces", "self_checks": "appliance_self_checks"}
_SECTIONS = {"election", "bgp", "services", "dataplane", "metrics", "log"}
_PATH = re.compile(r"^\s*([A-Za-z_]+)((?:\.[A-Za-z_]+|\[\d+\])*)(.*)$")


def _rename(line: str) -> str:
    match = _PATH.match(line)
    if match is None:
        return line.strip()
    head, rest, tail = match.groups()
    if head == "node" and rest.startswith("."):
        key = rest[1:].split(".")[0].split("[")[0]
        if key in _NODE:
            return f"{_NODE[key]}{rest[1 + len(key):]}{tail}"
    if head in _SECTIONS:
        return f"appliance_{head}{rest}{tail}"
    if rest or tail.startswith(" (line"):
        return f"appliance_extra_config.{head}{rest}{tail}"
    return line.strip()


def edge_speaker_var_errors(lines: list[str]) -> list[str]:
    """Each error line with the role variable instead of the config path."""
    return [_rename(line) for line in lines if line.startswith("  ")]


class FilterModule:
    """The collection's filters."""

    def filters(self) -> dict[str, object]:
        return {"edge_speaker_var_errors": edge_speaker_var_errors}
