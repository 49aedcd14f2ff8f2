"""The L2 announcer: ARP/NDP responder, GARP / unsolicited NA, duplicate-owner detection.

    from speaker.l2 import L2Responder
    responder = L2Responder(config, wake)          # implements speaker.seams.L2Announcer
    await responder.set([L2Vip(vip, ("eth0",), "web")])
"""

from speaker.l2.responder import ConflictHook, HandoverHook, L2Options, L2Responder

__all__ = ["ConflictHook", "HandoverHook", "L2Options", "L2Responder"]
