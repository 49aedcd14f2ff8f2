"""The whole appliance config and the checks that span sections."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, model_validator

from speaker.config.base import Section
from speaker.config.bgp import BgpConfig
from speaker.config.dataplane import DataplaneConfig
from speaker.config.dns import DnsConfig
from speaker.config.election import ElectionConfig
from speaker.config.errors import CrossFieldError
from speaker.config.hooks import Hook
from speaker.config.node import ApiConfig, LogConfig, MetricsConfig, NodeConfig
from speaker.config.rules import RULES
from speaker.config.service import ServiceConfig

__all__ = ["AppConfig", "CrossFieldError"]


class AppConfig(Section):
    """One appliance: who it is, how it elects, announces and forwards."""

    node: NodeConfig
    election: ElectionConfig = ElectionConfig()
    bgp: BgpConfig | None = None
    services: list[ServiceConfig] = []
    dataplane: DataplaneConfig = DataplaneConfig()
    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()
    hooks: list[Hook] = Field(default=[], max_length=256)
    """Commands run on leader gained/lost and VIP announced/withdrawn (docs/hooks.md)."""
    dns: DnsConfig | None = None

    def cross_field_errors(self) -> list[CrossFieldError]:
        """Every rule that spans sections, broken, with the path of the offending field.

        The rules live in speaker.config.rules, one module per concern; add new ones
        there (RULES) rather than here.
        """
        return [error for rule in RULES for error in rule(self)]

    @model_validator(mode="after")
    def _no_cross_field_errors(self, info: ValidationInfo) -> AppConfig:
        # speaker.config.load defers these to report every one with its own path.
        if not (info.context or {}).get("defer_cross_field"):
            errors = self.cross_field_errors()
            if errors:
                raise errors[0]
        return self

    def service(self, name: str) -> ServiceConfig | None:
        """The service called `name`, if any."""
        return next((s for s in self.services if s.name == name), None)
