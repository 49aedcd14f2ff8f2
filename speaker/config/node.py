"""The node section (who this appliance is) and the api/metrics/log sections."""

from __future__ import annotations

import os
import stat
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from speaker.config.base import Section
from speaker.config.errors import FieldValueError
from speaker.config.types import IfName, Name, Port, SafePath, SafeText


class InterfaceConfig(Section):
    """One network interface of the appliance and what it faces."""

    name: IfName
    role: Literal["client", "backend", "both"] = "client"
    """`client`: faces clients/routers (VIPs are announced here, ARP answered here);
    `backend`: faces the real servers; `both`: a single-armed appliance."""
    vlan: int | None = None
    """Not supported by the appliance yet: any value is rejected. The L2 responder and
    VRRP send untagged frames on `name`; for a VLAN, name its sub-interface (`eth0.100`)."""

    @field_validator("vlan")
    @classmethod
    def _no_vlan(cls, value: int | None) -> None:
        if value is not None:
            raise ValueError("not supported by the appliance yet: the appliance sends untagged "
                             "frames on the named interface; name the VLAN sub-interface "
                             "instead (e.g. eth0.100) and drop vlan")


class SelfChecks(Section):
    """Appliance self-health: a sick appliance hands its VIPs over."""

    uplinks: list[IfName] = []
    """Interfaces that must be up (oper state) for this appliance to announce."""
    min_healthy_services: int = Field(default=0, ge=0)
    """Below this many services at quorum, the appliance counts as unhealthy."""
    priority_penalty: int = Field(default=50, ge=0, le=254)
    """Subtracted from election priority while the appliance is unhealthy."""


class NodeConfig(Section):
    """Identity of this appliance."""

    name: Name
    router_id: IPv4Address
    interfaces: list[InterfaceConfig] = Field(min_length=1)
    self_checks: SelfChecks = SelfChecks()

    @model_validator(mode="after")
    def _unique_interfaces(self) -> NodeConfig:
        first: dict[str, int] = {}
        for i, interface in enumerate(self.interfaces):
            if interface.name in first:
                raise FieldValueError(("interfaces", i, "name"), f"interface {interface.name} "
                                      f"is already node.interfaces[{first[interface.name]}]")
            first[interface.name] = i
        return self

    def client_interfaces(self) -> list[str]:
        """Names of interfaces on which VIPs are announced at L2."""
        return [i.name for i in self.interfaces if i.role in ("client", "both")]


class ApiConfig(Section):
    """The status/admin API: a unix socket for `speaker status|reload|drain`."""

    socket: SafePath = Path("/run/edge-speaker/api.sock")
    """Absolute path of the unix socket. At start an old socket there is replaced; any
    other existing file there is an error (it is never deleted)."""
    mode: int = Field(default=0o660, ge=0, le=0o777)
    """Permissions of the socket (octal in YAML: `0660`). Anyone who can connect can
    drain and reload; wider than 0660 needs `allow_wide_mode: true`."""
    allow_wide_mode: bool = False
    """Explicit opt-in for a `mode` with bits outside 0660 (e.g. world access)."""

    @field_validator("socket")
    @classmethod
    def _not_another_file(cls, path: Path) -> Path:
        try:
            info = os.lstat(path)
        except OSError:
            return path  # absent (or in an unreadable directory): created at start
        if not stat.S_ISSOCK(info.st_mode):
            raise ValueError(f"{path} exists and is not a socket; start-up would replace it. "
                             "Choose another path or remove that file")
        return path

    @model_validator(mode="after")
    def _mode_opt_in(self) -> ApiConfig:
        wide = self.mode & ~0o660
        if wide and not self.allow_wide_mode:
            raise FieldValueError(("mode",), f"mode {self.mode:04o} grants {wide:04o} beyond "
                                  "0660; anyone who can connect may drain and reload. Set "
                                  "allow_wide_mode: true to mean it")
        return self


class MetricsConfig(Section):
    """Prometheus endpoint."""

    enabled: bool = True
    address: SafeText = "127.0.0.1"
    """IP address to listen on (IPv4 or IPv6; `0.0.0.0` / `::` for all)."""
    port: Port = 9469
    web_config_file: SafePath | None = None
    """TLS and basic auth, in the Prometheus exporter-toolkit's web config format
    (`--web.config.file`; speaker.api.webconfig). Checked here; its contents are
    re-read when the file changes (certificate rotation needs no reload)."""

    @field_validator("web_config_file")
    @classmethod
    def _a_valid_web_config(cls, value: Path | None) -> Path | None:
        if value is not None:
            from speaker.api.webconfig import WebConfigError, load_web_config

            try:
                load_web_config(value)
            except WebConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        try:
            ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address (host names are not "
                             "resolved here)") from None
        return value


class LogConfig(Section):
    """Structured logs on stderr."""

    format: Literal["json", "logfmt"] = "logfmt"
    level: Literal["debug", "info", "warning", "error"] = "info"
