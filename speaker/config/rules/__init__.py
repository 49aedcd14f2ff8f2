"""Rules that span config sections, one module per concern.

A rule is a pure function `check(config) -> Iterable[CrossFieldError]`; each error
carries the absolute path of the field to blame. New sections add their own module
and one entry to RULES (keeps parallel additions from touching the same lines).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from speaker.config.errors import CrossFieldError
from speaker.config.rules import (
    bgp_attributes,
    dns,
    hooks,
    interfaces,
    services,
    sync,
    vips,
)

if TYPE_CHECKING:
    from speaker.config.model import AppConfig

Rule = Callable[["AppConfig"], Iterable[CrossFieldError]]

RULES: tuple[Rule, ...] = (
    interfaces.check,
    services.check,
    vips.check,
    bgp_attributes.check,
    dns.check,
    hooks.check,
    sync.check,
)
"""Every cross-section rule, in the order their errors are listed."""
