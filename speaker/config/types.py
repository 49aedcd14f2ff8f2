"""Reusable constrained field types for the appliance config.

Every string that can reach ExaBGP's text API, a generated router config or a
log line is one of these types, so no config value can smuggle a newline or a
control character into another program's input.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def reject_control_chars(value: str) -> str:
    """Refuse newlines and other control characters (command injection guard)."""
    if _CONTROL.search(value):
        raise ValueError("must not contain newlines or control characters")
    return value


def parse_duration(value: Any) -> Any:
    """Accept seconds as a number, or a string such as '100ms', '2s', '3h', '1d'."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '250ms'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration (use e.g. 250ms, 2s, 5m, 3h, 1d)")
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    return value


def _check_community(value: str) -> str:
    parts = value.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{value!r} is not a community (ASN:VALUE, each 0-65535)")
    if any(int(p) > 0xFFFF for p in parts):
        raise ValueError(f"{value!r}: both halves of a community must be 0-65535")
    return value


def _check_large_community(value: str) -> str:
    parts = value.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{value!r} is not a large community (GLOBAL:LOCAL1:LOCAL2)")
    if any(int(p) > 0xFFFFFFFF for p in parts):
        raise ValueError(f"{value!r}: each part of a large community must be 0-4294967295")
    return value


def _check_ifname(value: str) -> str:
    if not value or len(value) > 15 or "/" in value or value.strip() != value or " " in value:
        raise ValueError(f"{value!r} is not a Linux interface name (1-15 chars, no '/' or space)")
    return value


SafeText = Annotated[str, AfterValidator(reject_control_chars), Field(max_length=255)]
"""Free text that may reach another program (descriptions, passwords)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a name: use 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


Name = Annotated[str, AfterValidator(reject_control_chars), AfterValidator(_check_name)]
"""Identifier: letters, digits, '_', '.', '-'; starts with a letter or digit."""

# allow_inf_nan=False: `.inf` / `.nan` are valid YAML floats, but no timer can use them
# (a reload with hold_time: .inf once crashed the daemon with an OverflowError).
Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, BeforeValidator(parse_duration),
                            Field(gt=0, allow_inf_nan=False)]
Community = Annotated[str, AfterValidator(reject_control_chars), AfterValidator(_check_community)]
LargeCommunity = Annotated[
    str, AfterValidator(reject_control_chars), AfterValidator(_check_large_community)
]
IfName = Annotated[str, AfterValidator(reject_control_chars), AfterValidator(_check_ifname)]
Port = Annotated[int, Field(ge=1, le=65535)]
Asn = Annotated[int, Field(ge=1, le=4294967294)]
