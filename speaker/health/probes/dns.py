"""DNS checks: query the backend as a DNS server and judge rcode and answer.

The expected rcode (default NOERROR) must come back; with NOERROR at least one
answer record must be present, and with `dns.answer` one record (in text
form) must match the regular expression. Failures: `dns_rcode_<rcode>`,
`dns_no_answer`, `dns_answer_mismatch`.
"""

from __future__ import annotations

import re

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype

from speaker.health.outcome import PASSED, CheckFailedError, Outcome
from speaker.health.probes import Probe
from speaker.health.targets import Target


def dns_probe(target: Target) -> Probe:
    """Probe for a `dns` check."""
    from speaker.config.health import DnsParams

    params = target.check.dns or DnsParams()
    where = str(target.address)
    port = target.port or 53
    qtype = dns.rdatatype.from_text(params.type)
    expected = dns.rcode.from_text(params.rcode)
    pattern = re.compile(params.answer) if params.answer else None
    query = dns.asyncquery.tcp if params.protocol == "tcp" else dns.asyncquery.udp

    async def probe() -> Outcome:
        request = dns.message.make_query(params.name, qtype)
        response = await query(request, where, port=port)
        rcode = response.rcode()
        if rcode != expected:
            raise CheckFailedError(f"dns_rcode_{dns.rcode.to_text(rcode).lower()}")
        records = [rr.to_text() for rrset in response.answer for rr in rrset]
        if expected == dns.rcode.NOERROR and not records:
            raise CheckFailedError("dns_no_answer", f"no {params.type} record for {params.name}")
        if pattern is not None and not any(pattern.search(r) for r in records):
            raise CheckFailedError("dns_answer_mismatch", "; ".join(records)[:200])
        return PASSED

    return probe
