"""The time-critical domain: VRRP and the ARP/NDP responder in a child process of their own.

    from speaker.timing.proxy import TimingDomain
    domain = TimingDomain(config, wake)
    domain.election      # implements speaker.seams.Election (supervisor side)
    domain.l2            # implements speaker.seams.L2Announcer (supervisor side)

`speaker run` spawns `python -m speaker.timing.child` (dies with its parent,
restarted with backoff after a crash) and talks to it over a socketpair with
length-prefixed JSON (`speaker.childproc.Channel`; messages in
`speaker.timing.protocol`). Nothing the supervisor's loop does (config
parsing, the API, metrics scrapes, health checks, ExaBGP I/O) can delay an
advert or an ARP answer.

(The package imports nothing itself: the child must not pay for the proxy's imports.)
"""
