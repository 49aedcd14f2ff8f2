"""Rule: service DNS names have a dns section, a zone to live in, and one owner."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from speaker.config.errors import CrossFieldError

if TYPE_CHECKING:
    from speaker.config.model import AppConfig


def check(config: AppConfig) -> Iterator[CrossFieldError]:
    """Names published once, each inside a zone of dns.servers."""
    seen: dict[str, str] = {}
    for si, svc in enumerate(config.services):
        if svc.dns is None:
            continue
        if config.dns is None:
            yield CrossFieldError(("services", si, "dns"),
                                  "service DNS names need a top-level dns section")
            continue
        for ni, name in enumerate(svc.dns.names):
            at = ("services", si, "dns", "names", ni)
            if name in seen:
                yield CrossFieldError(at, f"{name!r} is already published for "
                                      f"service {seen[name]!r}")
            seen.setdefault(name, svc.name)
            if config.dns.server_for(name) is None:
                yield CrossFieldError(at, f"{name!r} is in no zone of dns.servers")
