"""The BGP speaker: ExaBGP under supervision, announcing the VIPs it is given.

`ExaBgpSpeaker` (speaker.bgp.speaker) is imported lazily so that the bridge
(`python -m speaker.bgp.bridge`, started by ExaBGP) stays a fast, stdlib-only
start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from speaker.bgp.speaker import ExaBgpSpeaker

__all__ = ["ExaBgpSpeaker"]


def __getattr__(name: str) -> Any:
    if name == "ExaBgpSpeaker":
        from speaker.bgp.speaker import ExaBgpSpeaker

        return ExaBgpSpeaker
    raise AttributeError(name)
