"""Effective health timers: overriding `interval` never leaves a slower fast_interval."""

from __future__ import annotations

import pytest

from speaker.config.health import HEALTH_PRESETS, HealthCheck


def test_interval_override_caps_the_presets_fast_interval() -> None:
    # the lab demo's check: default preset (fast_interval 0.5 s) with a 250 ms interval;
    # fall 3 used to take 2 x 0.5 s after the first failure instead of 2 x 0.25 s
    check = HealthCheck.model_validate({"interval": "250ms", "timeout": "200ms"})
    assert HEALTH_PRESETS["default"]["fast_interval"] > 0.25
    assert check.effective("fast_interval") == pytest.approx(0.25)


def test_preset_fast_interval_kept_when_below_interval() -> None:
    check = HealthCheck.model_validate({"preset": "fast"})
    assert check.effective("fast_interval") == HEALTH_PRESETS["fast"]["fast_interval"]


def test_explicit_fast_interval_longer_than_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="fast_interval must not be longer than interval"):
        HealthCheck.model_validate({"interval": "1s", "timeout": "500ms",
                                    "fast_interval": "2s"})
