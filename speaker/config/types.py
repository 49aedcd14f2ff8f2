"""Reusable constrained field types for the appliance config.

Every string that can reach ExaBGP's text API, a generated router config or a
log line is one of these types, so no config value can smuggle a newline or a
control character into another program's input.
"""

from __future__ import annotations

import math
import re
import socket
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidatorFunctionWrapHandler
from pydantic.functional_validators import WrapValidator

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""C0, DEL, C1 and the Unicode line/paragraph separators (a line break to some readers)."""
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Bidirectional marks, embeddings, overrides and isolates (text that reads other than it is)."""
MAX_SECONDS = 366 * 86400.0
"""Longest duration any timer accepts (a year); longer is a typo or `.inf`."""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def reject_control_chars(value: str) -> str:
    """Refuse newlines, C0/C1 control characters, DEL and bidi overrides (injection guard)."""
    if _CONTROL.search(value):
        raise ValueError("must not contain newlines or control characters")
    if _BIDI.search(value):
        raise ValueError("must not contain bidirectional-text control characters")
    return value


def _finite_seconds(value: float) -> float:
    if value > MAX_SECONDS:
        raise ValueError(f"{value:g} s is longer than a year; give a real duration")
    return value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number is needed, not true/false")
    return value


def _safe_path(value: Path) -> Path:
    reject_control_chars(str(value))
    if not value.is_absolute():
        raise ValueError(f"{str(value)!r} must be an absolute path")
    if len(str(value)) > 4095:
        raise ValueError("path is longer than PATH_MAX")
    return value


def parse_duration(value: Any) -> Any:
    """Accept seconds as a number, or a string such as '100ms', '2s', '3h', '1d'."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '250ms'")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite duration")
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

Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0),
                    AfterValidator(_finite_seconds)]
"""A duration, zero allowed; finite and at most MAX_SECONDS."""
PositiveSeconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0),
                            AfterValidator(_finite_seconds)]
"""A duration above zero; finite and at most MAX_SECONDS."""
SafePath = Annotated[Path, AfterValidator(_safe_path)]
"""An absolute file path without control or bidi characters."""
Community = Annotated[str, AfterValidator(reject_control_chars), AfterValidator(_check_community)]
LargeCommunity = Annotated[
    str, AfterValidator(reject_control_chars), AfterValidator(_check_large_community)
]
IfName = Annotated[str, AfterValidator(reject_control_chars), AfterValidator(_check_ifname)]
Port = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=65535)]
Asn = Annotated[int, Field(ge=1, le=4294967294)]


def _fast_ip(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A dotted-quad string straight to IPv4Address; anything else through pydantic.

    inet_pton(AF_INET) accepts exactly what ipaddress.IPv4Address accepts (four
    decimal octets of at most 255, no leading zeros, nothing around them) and costs
    a fraction of a microsecond; ipaddress parses in Python (about 5 us), and the
    union tries IPv6 as well. Every other input, and every refusal, takes pydantic's
    own union, so its error messages are unchanged.
    """
    if type(value) is str and value.isascii():
        try:
            return IPv4Address(socket.inet_pton(socket.AF_INET, value))
        except OSError:
            pass
    return handler(value)


IPAddress = Annotated[IPv4Address | IPv6Address, WrapValidator(_fast_ip)]
"""An IPv4 or IPv6 address (the union pydantic validates), with a fast IPv4 path."""
