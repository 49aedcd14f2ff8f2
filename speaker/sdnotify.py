"""systemd notification protocol (sd_notify) in a few lines of socket code."""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    """Sends READY=1, RELOADING=1, WATCHDOG=1 and STATUS= to $NOTIFY_SOCKET, if systemd gave one."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.watchdog_interval = int(usec) / 1e6 / 2 if usec.isdigit() and int(usec) else None
        """Half of the watchdog timeout systemd set (None: no watchdog)."""

    @property
    def enabled(self) -> bool:
        """True when running under systemd with Type=notify."""
        return bool(self.address)

    def send(self, *fields: str) -> bool:
        """Send newline-separated fields; False if not under systemd or on error."""
        if not self.address:
            return False
        target = self.address
        if target.startswith("@"):  # abstract namespace socket
            target = "\0" + target[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), target)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        """Tell systemd the service is up."""
        return self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        """Tell systemd a reload began (``READY=1`` ends it); MONOTONIC_USEC as systemd 253+
        wants for Type=notify-reload."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading config")

    def reloaded(self, status: str) -> bool:
        """The reload is over (adopted or rejected): back to READY."""
        return self.send("READY=1", f"STATUS={status}")

    def watchdog(self) -> bool:
        """Keep-alive for WatchdogSec=."""
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """One-line status shown by `systemctl status`."""
        return self.send(f"STATUS={text}")

    def stopping(self) -> bool:
        """Tell systemd a planned stop is in progress."""
        return self.send("STOPPING=1", "STATUS=withdrawing announcements")
