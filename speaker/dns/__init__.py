"""DNS records for VIPs: RFC 2136 updates with a shared TXT ownership registry."""

from speaker.dns.publisher import DnsPublisher

__all__ = ["DnsPublisher"]
