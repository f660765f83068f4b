"""systemd's sd_notify protocol: a datagram of ``KEY=value`` lines to the socket named in ``NOTIFY_SOCKET``.

The few lines the protocol needs (see sd_notify(3)); without ``NOTIFY_SOCKET`` (not under systemd, or
``Type=simple``) every call is a no-op. A leading ``@`` names a socket in the abstract namespace.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._socket: socket.socket | None = None
        self._last_status: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines; False (and a debug line) when there is no socket or it is gone."""
        if not self.address:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items()).encode()
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message, target)
            return True
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False

    def ready(self, status: str) -> None:
        self._last_status = status
        self.send(ready=1, status=status, mainpid=os.getpid())

    def status(self, status: str) -> None:
        if status != self._last_status:
            self._last_status = status
            self.send(status=status)

    def watchdog(self) -> None:
        self.send(watchdog=1)

    def stopping(self, status: str = "stopping") -> None:
        self.send(stopping=1, status=status)


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings: half of systemd's ``WatchdogSec`` (``WATCHDOG_USEC``), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.1, int(usec) / 2_000_000)
    except ValueError:
        return None
