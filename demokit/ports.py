"""Ports for the demo's listeners: the configured ones when free, else free ones (and say so)."""

from __future__ import annotations

import socket

from . import DemoError, say


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP listener could bind ``host:port`` now (as Mosquitto and Werkzeug do, with
    SO_REUSEADDR: connections of a just-stopped run in TIME_WAIT do not make a port busy)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", avoid: set[int] = frozenset()) -> int:
    """A TCP port on ``host`` that was free a moment ago and is not in ``avoid``."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port


def choose_port(preferred: int, explicit: bool, what: str, taken: set[int]) -> int:
    """The port to use: ``preferred`` if free, else (unless it was asked for explicitly) a free one."""
    if preferred not in taken and port_is_free(preferred):
        return preferred
    if explicit:
        raise DemoError(f"{what}: port {preferred} is already in use")
    port = free_port(avoid=taken)
    say(f"{what}: port {preferred} is busy, using {port}")
    return port

