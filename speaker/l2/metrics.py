"""Prometheus metrics of the L2 announcer (registered on speaker.metrics.REGISTRY)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from speaker.metrics import REGISTRY

# Per interface and VIP, as MetalLB's layer-2 counters are per IP; a VIP's series go
# when it leaves the config (speaker.l2.answer.PortMetrics.keep).
ARP_REQUESTS = Counter(
    "speaker_arp_requests_received_total",
    "ARP requests received for an owned VIP", ["interface", "vip"], registry=REGISTRY)
ARP_REPLIES = Counter(
    "speaker_arp_replies_sent_total",
    "ARP replies sent for an owned VIP", ["interface", "vip"], registry=REGISTRY)
GARP_SENT = Counter(
    "speaker_garp_sent_total",
    "Gratuitous ARP frames sent (request and reply form each count)", ["interface", "vip"],
    registry=REGISTRY)
NDP_SOLICITATIONS = Counter(
    "speaker_ndp_solicitations_received_total",
    "Neighbour solicitations received for an owned VIP", ["interface", "vip"],
    registry=REGISTRY)
NDP_ADVERTISEMENTS = Counter(
    "speaker_ndp_advertisements_sent_total",
    "Solicited neighbour advertisements sent for an owned VIP", ["interface", "vip"],
    registry=REGISTRY)
NDP_UNSOLICITED = Counter(
    "speaker_ndp_unsolicited_advertisements_sent_total",
    "Unsolicited neighbour advertisements (override) sent on takeover or refresh",
    ["interface", "vip"], registry=REGISTRY)
PER_VIP = (ARP_REQUESTS, ARP_REPLIES, GARP_SENT, NDP_SOLICITATIONS, NDP_ADVERTISEMENTS,
           NDP_UNSOLICITED)
FRAMES_REJECTED = Counter(
    "speaker_l2_frames_rejected_total",
    "ARP requests / neighbour solicitations for an owned VIP left unanswered because they "
    "are malformed or hostile (speaker.l2.wellformed), by reason", ["interface", "reason"],
    registry=REGISTRY)
VIP_CONFLICTS = Counter(
    "speaker_vip_conflicts_total",
    "Confirmed duplicate owners: another MAC answers for a VIP this appliance owns",
    ["vip"], registry=REGISTRY)
SEND_ERRORS = Counter(
    "speaker_l2_send_errors_total",
    "Frames the L2 announcer failed to send", ["interface"], registry=REGISTRY)
VIPS_OWNED = Gauge(
    "speaker_l2_vips_owned",
    "VIPs the responder answers for now", registry=REGISTRY)
