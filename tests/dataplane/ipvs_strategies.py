"""Hypothesis strategies for IPVS tables (TEST-NET addresses only)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import strategies as st

from dataplane.ipvs.model import METHODS, Dest, DestKey, IpvsTable, Service, ServiceKey

VIPS = [IPv4Address("203.0.113.10") + i for i in range(4)] + [IPv6Address("2001:db8:ff::10")]
RIPS = [IPv4Address("198.51.100.11") + i for i in range(4)] + [IPv6Address("2001:db8:2::11")]

service_keys = st.one_of(
    st.builds(ServiceKey, st.sampled_from(["tcp", "udp", "sctp"]), st.sampled_from(VIPS),
              st.sampled_from([53, 80, 443])),
    st.builds(ServiceKey.of_fwmark, st.integers(1, 3), st.sampled_from([4, 6])),
)


@st.composite
def services(draw: st.DrawFn, key: ServiceKey) -> Service:
    sched = draw(st.sampled_from(["rr", "wrr", "wlc", "sh", "mh"]))
    flags = draw(st.sets(st.sampled_from(["flag-1", "flag-2"])))
    persistence = draw(st.none() | st.integers(1, 3600))
    return Service(key, sched, frozenset(flags), persistence)


@st.composite
def tables(draw: st.DrawFn) -> IpvsTable:
    keys = draw(st.sets(service_keys, max_size=6))
    svcs = [draw(services(key)) for key in keys]
    dests: list[Dest] = []
    for key in keys:
        dests.extend(
            Dest(DestKey(key, rip, draw(st.sampled_from([0, 80, 8080]))),
                 draw(st.integers(0, 5)), draw(st.sampled_from(METHODS)))
            for rip in draw(st.sets(st.sampled_from(RIPS), max_size=4))
        )
    return IpvsTable.of(svcs, dests)
