"""paho-mqtt's client, sending a large message without copying what is left of it at every partial write.

paho-mqtt 2.2 writes an outgoing packet with ``sock.send(packet[pos:])``: when
the socket takes only part of it (its send buffer is full: a busy broker, a
slow uplink), the next try slices the packet again, a copy of all that is left.
A ~1 MB case written in 64 KB pieces is copied about eight times over.
:class:`Client` queues each packet as a ``memoryview``, whose slices are free;
nothing else in paho reads an outgoing packet. Kiosks (``edge/link/``) and the
benches that stand in for them use it. With the private method it overrides
missing (:data:`LEAN` False) it is paho's own client, unchanged.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt

#: The paho internal this relies on (its version is pinned in ``pyproject.toml``).
LEAN = hasattr(mqtt.Client, "_packet_queue")


class Client(mqtt.Client):
    """``paho.mqtt.client.Client`` whose outgoing packets are sent from a ``memoryview`` (no copy per partial write)."""

    def _packet_queue(self, command, packet, mid, qos, info=None):
        """Queue a packet as paho does, as a memoryview (over plain and TLS sockets; websockets get it as is)."""
        if LEAN and self._transport != "websockets" and not isinstance(packet, memoryview):
            packet = memoryview(packet)
        return super()._packet_queue(command, packet, mid, qos, info)
