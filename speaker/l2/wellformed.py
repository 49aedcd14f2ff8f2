"""Which ARP requests and neighbour solicitations deserve an answer (hostile-input rules).

Pure checks on raw Ethernet frames, cheap enough for the hot path. Each returns
`None` for a frame that may be answered, or a stable reason code that the
responder counts (`speaker_l2_frames_rejected_total{reason}`):

- ARP (RFC 826): htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4, opcode request;
- NS (RFC 4861 7.1.1): hop limit 255, ICMP code 0, ICMP length >= 24, valid ICMPv6
  checksum, target not multicast, every option of non-zero length and inside the
  packet; from the unspecified source only to a solicited-node group and without a
  source link-layer address option;
- both: never a frame addressed to another unicast MAC (only broadcast / the NS's
  multicast group / our own MAC), never from a broadcast or multicast sender MAC
  (Ethernet source or the sender hardware address / link-layer option), nor from
  the all-zero MAC: the reply would go there.
"""

from __future__ import annotations

from speaker.l2.frames import BROADCAST, ZERO_MAC, checksum

_ARP_FIXED = b"\x00\x01\x08\x00\x06\x04"
_SOLICITED_PREFIX = b"\xff\x02" + b"\x00" * 9 + b"\x01\xff"
_UNSPECIFIED = bytes(16)


def _bad_sender(mac: bytes) -> bool:
    return bool(mac[0] & 1) or mac == ZERO_MAC


def arp_header_error(frame: bytes) -> str | None:
    """RFC 826 fields of an ARP frame (also decides whether it may count as a claim)."""
    if frame[14:20] != _ARP_FIXED:
        return "arp_bad_header"
    return None


def arp_request_error(frame: bytes, our_mac: bytes) -> str | None:
    """Why an ARP request (header already checked) must not be answered, or None."""
    dst = frame[0:6]
    if dst not in (BROADCAST, our_mac):
        return "not_for_us"
    if _bad_sender(frame[6:12]) or _bad_sender(frame[22:28]):
        return "bad_sender_mac"
    return None


def ns_error(frame: bytes, our_mac: bytes) -> str | None:
    """Why a neighbour solicitation (ICMPv6 type 135) must not be answered, or None."""
    dst = frame[0:6]
    if not (dst == our_mac or dst[0:2] == b"\x33\x33"):
        return "not_for_us"
    if _bad_sender(frame[6:12]):
        return "bad_sender_mac"
    return _ns_ip_error(frame) or _ns_options_error(frame)


def _ns_ip_error(frame: bytes) -> str | None:
    """Hop limit, code, length, target and checksum (RFC 4861 7.1.1)."""
    length = int.from_bytes(frame[18:20], "big")
    checks = (
        (frame[21] != 255, "ns_bad_hop_limit"),
        (frame[55] != 0, "ns_bad_code"),
        (length < 24 or 54 + length > len(frame), "ns_bad_length"),
        (frame[62] == 0xFF, "ns_multicast_target"),
    )
    for failed, reason in checks:
        if failed:
            return reason
    pseudo = frame[22:54] + length.to_bytes(4, "big") + b"\x00\x00\x00\x3a"
    if checksum(pseudo + frame[54:54 + length]) != 0:
        return "ns_bad_checksum"
    return None


def _ns_options_error(frame: bytes) -> str | None:
    """Option lengths, the source link-layer option, and the DAD rules."""
    end = 54 + int.from_bytes(frame[18:20], "big")
    has_slla = False
    offset = 78
    while offset < end:
        units = frame[offset + 1] if offset + 2 <= end else 0
        if units == 0 or offset + units * 8 > end:
            return "ns_bad_option"
        if frame[offset] == 1:  # source link-layer address
            has_slla = True
            if units != 1 or _bad_sender(frame[offset + 2:offset + 8]):
                return "bad_sender_mac"
        offset += units * 8
    if frame[22:38] == _UNSPECIFIED and (has_slla or frame[38:51] != _SOLICITED_PREFIX):
        return "ns_bad_dad"
    return None
