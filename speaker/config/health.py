"""The health-check part of a service: check type, its parameters and its timers.

Timers come from a named preset (`fast`, `default`, `conservative`); any single
value can be overridden. The parameters of a check type live in a sub-section
named after the type (`http:`, `dns:`, ...), so errors point at one place.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from speaker.config.base import Section
from speaker.config.errors import FieldValueError
from speaker.config.types import Port, PositiveSeconds, SafePath, SafeText

CheckType = Literal["tcp", "http", "https", "dns", "exec", "none"]
HealthPreset = Literal["fast", "default", "conservative"]

HEALTH_PRESETS: dict[str, dict[str, float]] = {
    "fast": {"interval": 0.25, "timeout": 0.2, "rise": 2, "fall": 3, "fast_interval": 0.1},
    "default": {"interval": 2.0, "timeout": 1.0, "rise": 2, "fall": 3, "fast_interval": 0.5},
    "conservative": {"interval": 5.0, "timeout": 3.0, "rise": 3, "fall": 5, "fast_interval": 1.0},
}


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class TcpParams(Section):
    """`tcp`: connect; optionally send a payload and expect a reply pattern."""

    send: SafeText | None = None
    """Payload sent after connecting. Control characters are written as escapes
    (`\\r`, `\\n`, `\\t`, `\\0`, `\\\\`, `\\xHH`) and decoded by the probe."""
    expect: SafeText | None = None
    """Regular expression the first bytes of the reply must match."""

    _regex = field_validator("expect")(_check_regex)


class HttpParams(Section):
    """`http` / `https`: one request, judged by status, body and TLS."""

    method: Literal["GET", "HEAD", "POST", "OPTIONS"] = "GET"
    path: SafeText = "/"
    host: SafeText | None = None
    expect_status: list[SafeText] = ["200-399"]
    """Accepted statuses: single codes ("204") or ranges ("200-299")."""
    body: SafeText | None = None
    """Substring the body must contain."""
    body_regex: SafeText | None = None
    max_body_bytes: int = Field(default=65536, ge=0, le=16 * 1024 * 1024)
    """Read at most this much of the body; a longer body is not read to the end."""
    tls_verify: bool = True
    ca_bundle: SafePath | None = None
    """CA certificates (PEM) to verify the backend with; an absolute path."""
    sni: SafeText | None = None
    """TLS server name; defaults to `host`."""

    _regex = field_validator("body_regex")(_check_regex)

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or " " in value:
            raise ValueError("path must start with '/' and contain no spaces")
        return value

    @field_validator("expect_status")
    @classmethod
    def _status_set(cls, values: list[str]) -> list[str]:
        for item in values:
            low, _, high = item.partition("-")
            if not low.isdigit() or (high and not high.isdigit()):
                raise ValueError(f"{item!r} is not a status code or range like 200-299")
            lo, hi = int(low), int(high or low)
            if not 100 <= lo <= hi <= 599:
                raise ValueError(f"{item!r}: statuses are 100-599, low <= high")
        if not values:
            raise ValueError("expect_status needs at least one status or range")
        return values

    def accepts(self, status: int) -> bool:
        """True when `status` is in the expected set."""
        for item in self.expect_status:
            low, _, high = item.partition("-")
            if int(low) <= status <= int(high or low):
                return True
        return False


class DnsParams(Section):
    """`dns`: query the backend as a DNS server."""

    name: SafeText = "."
    type: Literal["A", "AAAA", "SOA", "NS", "TXT", "SRV", "CNAME", "MX", "PTR"] = "SOA"
    protocol: Literal["udp", "tcp"] = "udp"
    rcode: Literal["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"] = "NOERROR"
    answer: SafeText | None = None
    """Regular expression one answer record (text form) must match."""

    _regex = field_validator("answer")(_check_regex)


class ExecParams(Section):
    """`exec`: run a command; exit 0 means up. Env: BACKEND_ADDRESS, BACKEND_PORT."""

    command: list[SafeText] = Field(min_length=1)
    shell: bool = False
    """Run `command[0]` through /bin/sh -c (only when this is set)."""
    max_output_bytes: int = Field(default=4096, ge=0, le=1024 * 1024)


class HealthCheck(Section):
    """How a service's backends are checked."""

    type: CheckType = "tcp"
    preset: HealthPreset = "default"
    interval: PositiveSeconds | None = None
    timeout: PositiveSeconds | None = None
    rise: int | None = Field(default=None, ge=1, le=100)
    fall: int | None = Field(default=None, ge=1, le=100)
    fast_interval: PositiveSeconds | None = None
    """Interval while a backend is between states (rise/fall in progress)."""
    port: Port | None = None
    """Check this port instead of the backend's service port."""
    tcp: TcpParams | None = None
    http: HttpParams | None = None
    dns: DnsParams | None = None
    exec: ExecParams | None = None

    @model_validator(mode="after")
    def _check(self) -> HealthCheck:
        wanted = {"https": "http"}.get(self.type, self.type)
        for section in ("tcp", "http", "dns", "exec"):
            if getattr(self, section) is not None and section != wanted:
                raise FieldValueError((section,), f"section '{section}' does not apply to "
                                      f"check type '{self.type}'")
        if self.type == "exec" and self.exec is None:
            raise FieldValueError(("exec",), "check type 'exec' needs an 'exec' section with "
                                  "a command")
        interval = self.effective("interval")
        if self.effective("timeout") >= interval:
            blame = "timeout" if self.timeout is not None or self.interval is None else "interval"
            raise FieldValueError((blame,), f"timeout ({self.effective('timeout'):g} s) must be "
                                  f"shorter than interval ({interval:g} s)")
        if self.fast_interval is not None and self.fast_interval > interval:
            raise FieldValueError(("fast_interval",), "fast_interval must not be longer than "
                                  f"interval ({self.fast_interval:g} s > {interval:g} s; it is "
                                  "the interval used while a rise or fall is in progress)")
        return self

    def effective(self, field: Literal["interval", "timeout", "rise", "fall", "fast_interval"]
                  ) -> float:
        """The value in force: the override if set, else the preset's. An unset
        fast_interval never exceeds the interval in force: overriding only `interval`
        below the preset's fast_interval must not slow down rise and fall."""
        value = getattr(self, field)
        if value is not None:
            return float(value)
        preset = HEALTH_PRESETS[self.preset][field]
        if field == "fast_interval":
            return min(preset, self.effective("interval"))
        return preset

    def http_params(self) -> HttpParams:
        """HTTP parameters with defaults when the section is omitted."""
        return self.http or HttpParams()

