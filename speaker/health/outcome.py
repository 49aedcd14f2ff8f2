"""What one check found: an Outcome, and how errors become stable reason codes.

A probe either returns an Outcome or raises; `classify()` turns whatever it
raised into a failed Outcome with a reason an operator can grep and alert on
(`timeout`, `refused`, `reset`, `unreachable`, `tls_error`, ...). A check that
raises is a failed check with a reason, never a crash of the engine.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from dataclasses import dataclass

OK = "ok"

_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.EADDRNOTAVAIL,
                errno.ENETDOWN}
_RESET = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of a single check, before hysteresis."""

    ok: bool
    reason: str
    """'ok' on success, else a stable failure code such as 'status_503'."""
    detail: str = ""
    """Human-readable extra (exception text, exec output); status only, never a label."""


PASSED = Outcome(True, OK)


class CheckFailedError(Exception):
    """Raised by a probe for a protocol-level failure with a ready reason code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


def failed(reason: str, detail: str = "") -> Outcome:
    """A failed Outcome."""
    return Outcome(False, reason, detail[:200])


_BY_TYPE: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (TimeoutError, "timeout"),
    ((ssl.SSLError, ssl.CertificateError), "tls_error"),
    (ConnectionRefusedError, "refused"),
    ((asyncio.IncompleteReadError, EOFError), "closed"),
)


def _errno_reason(code: int) -> str:
    if code in _UNREACHABLE:
        return "unreachable"
    if code in _RESET:
        return "reset"
    return f"error_{errno.errorcode.get(code, str(code)).lower()}"


def classify(exc: BaseException) -> Outcome:
    """Map an exception raised by a probe to a failed Outcome with a stable reason."""
    if isinstance(exc, CheckFailedError):
        return failed(exc.reason, exc.detail)
    for types, reason in _BY_TYPE:
        if isinstance(exc, types):
            return failed(reason, "" if reason == "timeout" else str(exc))
    if isinstance(exc, OSError) and exc.errno is not None:
        return failed(_errno_reason(exc.errno), exc.strerror or "")
    if isinstance(exc, ConnectionError):
        return failed("reset", str(exc))
    return failed("error", f"{type(exc).__name__}: {exc}")
