"""Rule: dataplane.sync names an interface and a group this appliance has, and IPVS is on.

The sync daemon needs the kernel's IPVS (a director without it has no table to
sync) and runs on one of the appliance's interfaces; in `follow-leader` mode the
followed group must exist or no appliance would ever run the master.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from speaker.config.errors import CrossFieldError

if TYPE_CHECKING:
    from speaker.config.model import AppConfig


def check(config: AppConfig) -> Iterator[CrossFieldError]:
    """Sync needs IPVS, an interface of node.interfaces and a defined group."""
    sync = config.dataplane.sync
    at = ("dataplane", "sync")
    if not sync.enabled:
        return
    if not config.dataplane.ipvs:
        yield CrossFieldError((*at, "enabled"), "connection sync needs dataplane.ipvs: true")
    ifnames = {i.name for i in config.node.interfaces}
    if sync.interface is not None and sync.interface not in ifnames:
        yield CrossFieldError((*at, "interface"),
                              f"{sync.interface!r} is not in node.interfaces")
    if sync.group is not None and config.election.group(sync.group) is None:
        yield CrossFieldError((*at, "group"),
                              f"group {sync.group!r} is not defined in election.groups")
