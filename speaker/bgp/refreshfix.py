"""Runs ExaBGP 4.2 with its enhanced route refresh (RFC 7313) repaired.

ExaBGP 4.2.25 advertises Route Refresh and Enhanced Route Refresh together
(`capability { route-refresh; }` cannot ask for one without the other) and
mishandles a ROUTE-REFRESH request once enhanced refresh is negotiated
(found with FRR 8.4 and BIRD 2, which both negotiate it):

- with routes in the adj-rib-out, `OutgoingRIB.updates()` wraps the
  Begin/End-of-Route-Refresh markers in an `Update` whose NLRI list is the
  marker itself; building the UPDATE raises `TypeError: 'RouteRefresh' object
  is not iterable`, and the peer is reset without a NOTIFICATION;
- with an empty adj-rib-out, `pending()` stays false, the markers are never
  sent, and the refresh never ends: every later route is parked in
  `_enhanced_refresh_delay` (the API still acks it `done`), so nothing more
  reaches the router.

ExaBGP 5.0 fixed both (markers are yielded as messages of their own, and
`pending()` counts a refresh in progress). This module applies the same two
fixes to 4.2's classes, then runs ExaBGP's own entry point with the arguments
given. It is started with the interpreter of the ExaBGP installation
(`python -m speaker.bgp.refreshfix CONF`); the speaker uses it for 4.2 only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any


def _apply() -> None:
    from exabgp.bgp.message.refresh import RouteRefresh
    from exabgp.rib.outgoing import OutgoingRIB

    original_updates = OutgoingRIB.updates

    def updates(self: Any, grouped: bool) -> Iterator[Any]:
        for update in original_updates(self, grouped):
            nlris = getattr(update, "nlris", None)
            yield nlris if isinstance(nlris, RouteRefresh) else update  # the marker itself

    def messages(self: Any, negotiated: Any, include_withdraw: bool = True) -> Iterator[bytes]:
        yield self.message(negotiated)

    def pending(self: Any) -> bool:
        return len(self._new_nlri) != 0 or bool(self._enhanced_refresh_start)

    OutgoingRIB.updates = updates
    OutgoingRIB.pending = pending
    RouteRefresh.messages = messages


def main() -> None:
    """Patch, then hand over to ExaBGP 4.2's command line (`exabgp CONF`)."""
    from exabgp.version import release

    if not release.startswith("4."):
        raise SystemExit(f"speaker.bgp.refreshfix is for ExaBGP 4.2, found {release}")
    _apply()
    from exabgp.application import run_exabgp

    sys.argv[0] = "exabgp"
    run_exabgp()


if __name__ == "__main__":
    main()
