"""Router side of the appliances' BGP peerings: neutral model, vendor renderers, CLI.

    model = build_model([(path, load_config(path))], BuildOptions(), speaker_version())
    text = render(model, "frr")

The click command is `speaker.routercfg.cli.router_config`.
"""

from speaker.routercfg.build import BuildOptions, RouterConfigError, build_model
from speaker.routercfg.model import ImportPolicy, Neighbor, Router, RouterConfigModel, Source
from speaker.routercfg.render import RENDERERS, VENDORS, render

__all__ = [
    "RENDERERS",
    "VENDORS",
    "BuildOptions",
    "ImportPolicy",
    "Neighbor",
    "Router",
    "RouterConfigError",
    "RouterConfigModel",
    "Source",
    "build_model",
    "render",
]
