"""systemd notification (sd_notify) without dependencies: READY=1, WATCHDOG=1, STATUS=, STOPPING=1.

Outside systemd ($NOTIFY_SOCKET unset: tests, the demo) every call is a no-op that returns False.
A unit with ``Type=notify`` and ``WatchdogSec=`` needs ``ready()`` once the service works and
``watchdog()`` from its main loop at least every ``watchdog_interval()`` seconds.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=listening"``) to systemd; False when not under systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):  # abstract namespace socket
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), addr)
    except OSError:
        return False
    return True


def ready(status: str | None = None) -> bool:
    """Tell systemd that start-up is complete (``Type=notify`` units wait for this)."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def watchdog() -> bool:
    """Ping the watchdog; call at least every :func:`watchdog_interval` seconds."""
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    """Set the one-line status shown by ``systemctl status``."""
    return notify(f"STATUS={text}")


def stopping() -> bool:
    """Tell systemd that the service is shutting down."""
    return notify("STOPPING=1")


def watchdog_interval() -> float | None:
    """Seconds between pings: half of ``WatchdogSec=`` ($WATCHDOG_USEC), or None when no watchdog is set
    for this process ($WATCHDOG_PID names another one)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None
