"""RFC 2136 I/O towards one DNS server: read a name's record sets, send an update.

Reads and updates go over TCP straight to the primary (no resolver, no cache) and
are signed with the server's TSIG key when it has one. Failures are raised as
`DnsError` with a stable reason ('tsig_bad_signature', 'refused', 'timeout', ...)
that status and metrics show; a failed prerequisite is `DnsConflictError` (someone
changed the name since it was read: read again and recompute).
"""

from __future__ import annotations

import asyncio

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from speaker.config.dns import DnsServer
from speaker.dns.registry import NameState, Update, registry_name

_TSIG_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (dns.tsig.PeerBadSignature, "tsig_bad_signature"),
    (dns.tsig.PeerBadKey, "tsig_unknown_key"),
    (dns.tsig.PeerBadTime, "tsig_bad_time"),
    (dns.tsig.PeerBadTruncation, "tsig_bad_truncation"),
    (dns.tsig.PeerError, "tsig_error"),
)
_CONFLICT = frozenset({dns.rcode.YXDOMAIN, dns.rcode.YXRRSET, dns.rcode.NXRRSET,
                       dns.rcode.NXDOMAIN})


class DnsError(Exception):
    """An update or read failed; `reason` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DnsConflictError(DnsError):
    """A prerequisite failed: the name changed since it was read."""


def _abs(name: str) -> dns.name.Name:
    """An absolute name (a bare string would be taken relative to the zone)."""
    return dns.name.from_text(name, dns.name.root)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DnsClient:
    """Talks to one server about names in its zone."""

    def __init__(self, server: DnsServer, timeout: float) -> None:
        self.server = server
        self.timeout = timeout
        self.zone = dns.name.from_text(server.zone)
        self._keyring = None
        self._keyname: str | None = None
        self._algorithm = "hmac-sha256"
        if server.tsig is not None:
            self._keyname = server.tsig.name
            self._algorithm = server.tsig.algorithm
            self._keyring = dns.tsigkeyring.from_text(
                {server.tsig.name: server.tsig.secret_value()})

    async def _send(self, message: dns.message.Message) -> dns.message.Message:
        where = str(self.server.address)
        try:
            async with asyncio.timeout(self.timeout):
                return await dns.asyncquery.tcp(message, where, port=self.server.port,
                                                timeout=self.timeout)
        except TimeoutError:
            raise DnsError("timeout", f"no answer from {where} within "
                                      f"{self.timeout:g} s") from None
        except dns.tsig.PeerError as exc:
            reason = next(r for t, r in _TSIG_REASONS if isinstance(exc, t))
            raise DnsError(reason, f"{where} rejected the TSIG key "
                                   f"{self._keyname!r}: {exc}") from None
        except (OSError, EOFError) as exc:
            raise DnsError("unreachable", f"{where}:{self.server.port}: {exc}") from None
        except dns.exception.DNSException as exc:
            raise DnsError("bad_response", f"{where}: {exc}") from None

    def _sign(self, message: dns.message.Message) -> None:
        if self._keyring is not None:
            message.use_tsig(self._keyring, keyname=self._keyname, algorithm=self._algorithm)

    async def _rrset(self, owner: str, rdtype: str) -> frozenset[str]:
        query = dns.message.make_query(_abs(owner), rdtype)
        self._sign(query)
        response = await self._send(query)
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return frozenset()
        if rcode != dns.rcode.NOERROR:
            raise DnsError(dns.rcode.to_text(rcode).lower(), f"query {owner} {rdtype}")
        wanted = dns.rdatatype.from_text(rdtype)
        out: set[str] = set()
        for rrset in response.answer:
            if rrset.rdtype != wanted:
                continue
            for rdata in rrset:
                if wanted == dns.rdatatype.TXT:
                    out.add(b"".join(rdata.strings).decode("utf-8", "replace"))
                else:
                    out.add(rdata.to_text())
        return frozenset(out)

    async def read(self, name: str) -> NameState:
        """A, AAAA at `name` and the TXT registry, read concurrently."""
        a, aaaa, txt = await asyncio.gather(
            self._rrset(name, "A"), self._rrset(name, "AAAA"),
            self._rrset(registry_name(name), "TXT"))
        return NameState(addresses=a | aaaa, txt=txt)

    def message(self, update: Update) -> dns.update.UpdateMessage:
        """The RFC 2136 message for `update` (prerequisites first)."""
        msg = dns.update.UpdateMessage(self.zone)
        for owner, rdtype, values in update.prerequisites:
            if not values:
                msg.absent(_abs(owner), rdtype)
                continue
            texts = [_quote(v) if rdtype == "TXT" else v for v in sorted(values)]
            # value-dependent prerequisites carry TTL 0 (RFC 2136 2.4.2)
            msg.present(_abs(owner), dns.rdataset.from_text("IN", rdtype, 0, *texts))
        for op in update.ops:
            if op.action == "add" and op.rdata is not None:
                text = _quote(op.rdata) if op.rdtype == "TXT" else op.rdata
                msg.add(_abs(op.name), op.ttl, op.rdtype, text)
            elif op.rdata is None:
                msg.delete(_abs(op.name), op.rdtype)
            else:
                text = _quote(op.rdata) if op.rdtype == "TXT" else op.rdata
                msg.delete(_abs(op.name), op.rdtype, text)
        self._sign(msg)
        return msg

    async def apply(self, update: Update) -> None:
        """Send `update`; raise DnsConflictError if a prerequisite failed."""
        response = await self._send(self.message(update))
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        text = dns.rcode.to_text(rcode)
        if rcode in _CONFLICT:
            raise DnsConflictError("conflict", f"prerequisite failed ({text})")
        reasons = {dns.rcode.REFUSED: "refused", dns.rcode.NOTAUTH: "not_authoritative",
                   dns.rcode.SERVFAIL: "servfail", dns.rcode.NOTZONE: "not_in_zone"}
        raise DnsError(reasons.get(rcode, text.lower()),
                       f"{self.server.address} answered {text} to the update of "
                       f"zone {self.server.zone}")
