"""Detect IPVS in the running kernel and fail with a clear message when it is absent.

The IPVS generic-netlink family exists only once the ``ip_vs`` module is loaded
(or built in). Binding pyroute2's generic-netlink socket to it raises
``NetlinkError(ENOENT)`` when the family is missing; we turn that into
:class:`IpvsUnavailableError`, whose message names the module and says what to
do, so that the supervisor can log it and exit instead of printing a traceback.
"""

from __future__ import annotations

import errno
from pathlib import Path

MODULE_HINT = (
    "IPVS is not available in this kernel: the generic netlink family 'IPVS' is "
    "missing. Load the ip_vs kernel module (`modprobe ip_vs`, and add ip_vs to "
    "/etc/modules-load.d/ so it loads at boot) or run a kernel built with "
    "CONFIG_IP_VS. Set dataplane.ipvs: false to run announce-only."
)


class IpvsUnavailableError(RuntimeError):
    """The kernel has no IPVS (module ``ip_vs`` not loaded or not built)."""


def ipvs_family_id() -> int:
    """The IPVS generic-netlink family id; raises :class:`IpvsUnavailableError` if absent."""
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.generic import GenericNetlinkSocket
    from pyroute2.netlink.generic.ipvs import GENL_NAME, ipvsmsg

    # What pyroute2's IPVS() does, on a socket we can close when the bind fails
    # (a failing IPVS() constructor leaks its socket and event loop).
    try:
        sock = GenericNetlinkSocket()
    except PermissionError as exc:
        raise IpvsUnavailableError(f"cannot open a netlink socket: {exc}") from None
    try:
        sock.bind(GENL_NAME, ipvsmsg)
        return int(sock.prid)
    except NetlinkError as exc:
        if exc.code == errno.ENOENT:
            raise IpvsUnavailableError(MODULE_HINT) from None
        raise
    finally:
        sock.close()


def require_ipvs() -> int:
    """Check at start-up; returns the family id (see :func:`ipvs_family_id`)."""
    return ipvs_family_id()


def available_schedulers(proc: Path = Path("/proc/net/ip_vs")) -> bool:
    """True when ``/proc/net/ip_vs`` exists (a cheap hint that ip_vs is loaded)."""
    return proc.exists()
