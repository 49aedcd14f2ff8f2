"""`speaker_vip_announced{vip,mode}` from what the parts report, at the cost of what changed.

The reconciler exports after every pass (every event, and at least every 2 s).
Setting 10,000 gauges by label each time (a label lookup and `str()` of the VIP
per series) cost 0.27 s of the loop per pass at 10,000 services; here the series
are listed once per config (a reload replaces the config object) and only values
that changed are set. Series of VIPs (or modes) that left the config are removed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection

from prometheus_client import Gauge

from speaker.config import AppConfig
from speaker.metrics import VIP_ANNOUNCED
from speaker.model import IPAddress

Series = tuple[str, str]
"""(VIP text, mode) of one speaker_vip_announced series."""


class VipAnnouncedExporter:
    """Keeps speaker_vip_announced equal to what the parts announce."""

    def __init__(self, gauge: Gauge = VIP_ANNOUNCED) -> None:
        self.gauge = gauge
        self._config: AppConfig | None = None
        self._series: tuple[tuple[Series, IPAddress], ...] = ()
        self._values: dict[Series, int] = {}
        self.sets = 0
        """Gauge writes since start (a pass where nothing changed adds none)."""

    def _list(self, config: AppConfig) -> None:
        series: list[tuple[Series, IPAddress]] = []
        for svc in config.services:
            vip = str(svc.vip)
            if svc.announce in ("bgp", "both"):
                series.append(((vip, "bgp"), svc.vip))
            if svc.announce in ("l2", "both"):
                series.append(((vip, "l2"), svc.vip))
        self._config, self._series = config, tuple(series)
        wanted = {key for key, _ in series}
        for key in [k for k in self._values if k not in wanted]:
            with contextlib.suppress(KeyError):
                self.gauge.remove(*key)
            del self._values[key]

    def export(self, config: AppConfig, bgp: Collection[IPAddress],
               l2: Collection[IPAddress]) -> None:
        """Set each configured VIP's series from the announced addresses."""
        if config is not self._config:
            self._list(config)
        values = self._values
        for key, address in self._series:
            value = int(address in (bgp if key[1] == "bgp" else l2))
            if values.get(key) != value:
                self.gauge.labels(*key).set(value)
                values[key] = value
                self.sets += 1
