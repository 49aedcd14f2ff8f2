"""Rule: the worse route of active-backup mode still fits the BGP attributes.

A backup announces MED + bgp.active_backup.med_penalty and the prepend count plus
bgp.active_backup.as_path_prepend (speaker.reconcile.desired); both sums must stay
within what the ExaBGP commands accept (speaker.bgp.commands), or a failover would
fail at run time instead of at `config check`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from speaker.config.errors import CrossFieldError

if TYPE_CHECKING:
    from speaker.config.bgp import BgpConfig
    from speaker.config.model import AppConfig

MAX_MED = 0xFFFFFFFF
"""MULTI_EXIT_DISC is a 32-bit attribute."""
MAX_PREPEND = 16
"""Most AS-path prepends an announcement may carry (speaker.bgp.commands.MAX_PREPEND)."""


def _overflows(bgp: BgpConfig, med: int | None, prepend: int | None,
               at: tuple[str | int, ...]) -> Iterator[CrossFieldError]:
    penalty, extra = bgp.active_backup.med_penalty, bgp.active_backup.as_path_prepend
    if (med or 0) + penalty > MAX_MED:
        yield CrossFieldError((*at, "med"), f"med {med or 0} + bgp.active_backup.med_penalty "
                              f"{penalty} exceeds {MAX_MED} (32-bit MED) on the backup route")
    if (prepend or 0) + extra > MAX_PREPEND:
        yield CrossFieldError((*at, "as_path_prepend"), f"as_path_prepend {prepend or 0} + "
                              f"bgp.active_backup.as_path_prepend {extra} exceeds "
                              f"{MAX_PREPEND} on the backup route")


def check(config: AppConfig) -> Iterator[CrossFieldError]:
    """Backup MED and prepend sums within range, per service in active-backup mode."""
    bgp = config.bgp
    if bgp is None:
        return
    if bgp.active_backup.med_penalty > MAX_MED:
        yield CrossFieldError(("bgp", "active_backup", "med_penalty"),
                              f"med_penalty must be at most {MAX_MED} (32-bit MED)")
        return
    d = bgp.defaults
    if bgp.mode == "active-backup":
        yield from _overflows(bgp, d.med, d.as_path_prepend, ("bgp", "defaults"))
    for si, svc in enumerate(config.services):
        o = svc.bgp
        if svc.announce == "l2" or (o.mode or bgp.mode) != "active-backup":
            continue
        med = o.med if o.med is not None else d.med
        prepend = o.as_path_prepend if o.as_path_prepend is not None else d.as_path_prepend
        if o.med is None and o.as_path_prepend is None and bgp.mode == "active-backup":
            continue  # the defaults, already reported once
        yield from _overflows(bgp, med, prepend, ("services", si, "bgp"))
