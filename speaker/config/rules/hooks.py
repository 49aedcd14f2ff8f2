"""Rule: a hook names groups and services that exist."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from speaker.config.errors import CrossFieldError

if TYPE_CHECKING:
    from speaker.config.model import AppConfig


def check(config: AppConfig) -> Iterator[CrossFieldError]:
    """hooks[].group in election.groups, hooks[].service among the services."""
    groups = {g.name for g in config.election.groups}
    services = {s.name for s in config.services}
    for i, hook in enumerate(config.hooks):
        if hook.group is not None and hook.group not in groups:
            yield CrossFieldError(("hooks", i, "group"), f"group {hook.group!r} "
                                  "is not defined in election.groups")
        if hook.service is not None and hook.service not in services:
            yield CrossFieldError(("hooks", i, "service"), f"no service named "
                                  f"{hook.service!r}")
