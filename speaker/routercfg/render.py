"""Pick a vendor renderer and render every router of a model, deterministically."""

from __future__ import annotations

from collections.abc import Callable

from speaker.routercfg import bird, eos, frr, gobgp, iosxr, junos
from speaker.routercfg.model import Router, RouterConfigModel

Renderer = Callable[[RouterConfigModel, Router], str]

RENDERERS: dict[str, Renderer] = {
    "frr": frr.render,
    "bird": bird.render,
    "gobgp": gobgp.render,
    "junos": junos.render,
    "eos": eos.render,
    "iosxr": iosxr.render,
}
"""Vendor name (as on the command line) -> renderer of one router."""

VENDORS = tuple(RENDERERS)

_SEPARATOR = {"frr": "!", "bird": "#", "gobgp": "#", "junos": "#", "eos": "!", "iosxr": "!"}


def render(model: RouterConfigModel, vendor: str) -> str:
    """Config text for every router in `model`; several routers are separated by a banner.

    Give `--peer` to get exactly one router's config, ready to load.
    """
    renderer = RENDERERS[vendor]
    parts = [renderer(model, router) for router in model.routers]
    if len(parts) == 1:
        return parts[0]
    mark = _SEPARATOR[vendor]
    out = []
    for router, text in zip(model.routers, parts, strict=True):
        out.append(f"{mark} ===== router {router.name} (one config per router; "
                   f"select it with --peer {router.addresses[0]}) =====\n")
        out.append(text)
    return "".join(out)
