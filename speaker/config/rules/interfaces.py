"""Rule: every interface a section names is one of node.interfaces."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from speaker.config.errors import CrossFieldError

if TYPE_CHECKING:
    from speaker.config.model import AppConfig


def check(config: AppConfig) -> Iterator[CrossFieldError]:
    """Uplinks, the VRRP interface and group interfaces must be node interfaces."""
    ifnames = {i.name for i in config.node.interfaces}
    for i, up in enumerate(config.node.self_checks.uplinks):
        if up not in ifnames:
            yield CrossFieldError(("node", "self_checks", "uplinks", i),
                                  f"{up!r} is not in node.interfaces")
    vrrp_if = config.election.vrrp.interface
    if vrrp_if is not None and vrrp_if not in ifnames:
        yield CrossFieldError(("election", "vrrp", "interface"),
                              f"{vrrp_if!r} is not in node.interfaces")
    for gi, group in enumerate(config.election.groups):
        if group.interface is not None and group.interface not in ifnames:
            yield CrossFieldError(("election", "groups", gi, "interface"),
                                  f"{group.interface!r} is not in node.interfaces")
