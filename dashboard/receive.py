"""A paho-mqtt client that receives megabyte messages without copying each one six times.

paho-mqtt 2.2 assembles an incoming packet from ``recv(remaining)`` calls (each
allocating a buffer of the whole remaining size) appended to a bytearray, then
``decode_publish`` slices it with ``struct.unpack`` three times and once more
for the properties: about six copies of every ~1 MB case before ``on_message``
sees it. On the centre's 2-core machine that was a third of the ingest's
network thread (``bench/ingest_throughput.py``).

:class:`LeanClient` reads each packet's body with ``recv_into`` straight into
one buffer of its exact size (plain and TLS sockets alike; allocated without
``bytearray(n)``'s zero fill, see :func:`receive_buffer`), and decodes MQTT 5
QoS 0/1 PUBLISH packets without copying the payload: ``message.payload`` is a
``bytearray`` (paho gives ``bytes``), the packet's buffer less its header.
:meth:`LeanClient.ack_many` sends the PUBACKs of a whole batch in one write (one
wake-up of the network thread, one TCP segment for the broker) instead of one each. Everything else (other
packet types, QoS 2, MQTT 3.1.1, websockets) goes through paho's own code. It
overrides and calls private methods of paho-mqtt (:data:`LEAN` lists them), whose
version is pinned (``pyproject.toml``); ``tests/test_receive.py`` checks it against a real broker
and :data:`LEAN` is False, with paho's own client used, should the internals it
relies on be missing.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import struct

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTT_LOG_ERR, MQTTErrorCode, MQTTMessage, MQTTv5
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers

log = logging.getLogger("dashboard.receive")

#: paho internals this relies on; without them :class:`LeanClient` behaves exactly as paho's Client.
LEAN = all(hasattr(mqtt.Client, name) for name in
           ("_packet_read", "_handle_publish", "_packet_handle", "_handle_on_message", "_send_puback",
            "_easy_log", "_packet_queue")) and hasattr(mqtt, "time_func")

_PUBLISH = 0x30


def _resize_api():
    """CPython's ``PyByteArray_Resize`` (None elsewhere): it grows a bytearray without zero-filling it."""
    try:
        resize = ctypes.pythonapi.PyByteArray_Resize
    except (AttributeError, ValueError):
        return None
    resize.argtypes = (ctypes.py_object, ctypes.c_ssize_t)
    resize.restype = ctypes.c_int
    return resize


_RESIZE = _resize_api()


def receive_buffer(size: int) -> bytearray:
    """A bytearray of ``size`` bytes whose contents are undefined, for ``recv_into`` to fill whole.

    ``bytearray(size)`` zero-fills: for a 1 MB case that memset, done while holding the GIL, was a
    third of the GIL time of the ingest's network thread. ``PyByteArray_Resize`` (CPython's C
    API, called with the GIL held) allocates without it. The bytes are stale heap memory until
    received over; :meth:`LeanClient._packet_read` hands a packet on only once every byte of it
    has been received. Elsewhere than CPython: ``bytearray(size)``.
    """
    if _RESIZE is None or size <= 0:
        return bytearray(size)
    buf = bytearray()
    _RESIZE(buf, size)  # on failure CPython sets MemoryError, which ctypes.pythonapi raises
    return buf


def _fresh_in_packet() -> dict:
    """paho's empty incoming-packet state (as its ``_packet_read`` resets it)."""
    return {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
            "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0}


class LeanClient(mqtt.Client):
    """``paho.mqtt.client.Client`` with a copy-free receive path for large MQTT 5 QoS 0/1 messages."""

    def _sock_recv_into(self, view: memoryview) -> int:
        """``recv_into`` on the client's socket, with paho's error mapping (TLS wants -> BlockingIOError)."""
        if self._sock is None:
            raise ConnectionError("self._sock is None")
        try:
            return self._sock.recv_into(view)
        except ssl.SSLWantReadError as err:
            raise BlockingIOError() from err
        except ssl.SSLWantWriteError as err:
            self._call_socket_register_write()
            raise BlockingIOError() from err

    def _packet_read(self) -> MQTTErrorCode:
        """Read (part of) one packet; as paho's, but the body goes straight into one exact-size buffer."""
        if not LEAN or not hasattr(self._sock, "recv_into"):
            return super()._packet_read()
        p = self._in_packet
        try:
            if p["command"] == 0:
                command = self._sock_recv(1)
                if not command:
                    return MQTTErrorCode.MQTT_ERR_CONN_LOST
                p["command"] = command[0]
            if p["have_remaining"] == 0:
                while True:
                    byte = self._sock_recv(1)
                    if not byte:
                        return MQTTErrorCode.MQTT_ERR_CONN_LOST
                    p["remaining_count"].append(byte[0])
                    if len(p["remaining_count"]) > 4:  # at most 4 bytes of remaining length (MQTT)
                        return MQTTErrorCode.MQTT_ERR_PROTOCOL
                    p["remaining_length"] += (byte[0] & 127) * p["remaining_mult"]
                    p["remaining_mult"] *= 128
                    if byte[0] & 128 == 0:
                        break
                p["have_remaining"] = 1
                p["to_process"] = p["remaining_length"]
                p["packet"] = receive_buffer(p["remaining_length"])
            count = 100  # as paho: do not stay here for ever on a huge message
            with memoryview(p["packet"]) as view:
                while p["to_process"] > 0:
                    n = self._sock_recv_into(view[p["remaining_length"] - p["to_process"]:])
                    if n == 0:
                        return MQTTErrorCode.MQTT_ERR_CONN_LOST
                    p["to_process"] -= n
                    with self._msgtime_mutex:
                        self._last_bytes_received = mqtt.time_func()
                    count -= 1
                    if count == 0 and p["to_process"] > 0:
                        return MQTTErrorCode.MQTT_ERR_AGAIN
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except (TimeoutError, OSError, ConnectionError) as err:
            self._easy_log(MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        p["pos"] = 0
        try:
            rc = self._packet_handle()
        except mqtt.MalformedPacket as exc:  # paho's own handling of a malformed packet
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = _fresh_in_packet()
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        return rc

    def _handle_publish(self) -> MQTTErrorCode:
        """An MQTT 5 QoS 0/1 PUBLISH decoded without copying its payload (a ``bytearray``); anything else by paho."""
        header, packet = self._in_packet["command"], self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if not LEAN or self._protocol != MQTTv5 or qos == 2 or (header & 0xF0) != _PUBLISH:
            return super()._handle_publish()
        try:
            with memoryview(packet) as view:
                slen = int.from_bytes(view[0:2], "big")
                pos = 2 + slen
                topic = bytes(view[2:pos])
                mid = 0
                if qos:
                    mid = int.from_bytes(view[pos:pos + 2], "big")
                    pos += 2
                propslen, vbilen = VariableByteIntegers.decode(bytes(view[pos:pos + 4]))
                properties = Properties(PacketTypes.PUBLISH)
                properties.unpack(bytes(view[pos:pos + vbilen + propslen]))
                pos += vbilen + propslen
                if len(topic) != slen or pos > len(view) or (qos and len(view) < 2 + slen + 2):
                    raise ValueError("PUBLISH packet shorter than its fields")
        except Exception as exc:  # as paho's decode_publish: a malformed packet, not a crash
            raise mqtt.MalformedPacket(str(exc)) from exc
        # The payload is the packet's own buffer without its header: CPython drops a bytearray's
        # leading bytes in place (no copy), and a fresh buffer is made for the next packet.
        del packet[:pos]
        payload = packet
        message = MQTTMessage(mid=mid, topic=topic)
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.properties = properties
        message.payload = payload
        message.timestamp = mqtt.time_func()
        self._handle_on_message(message)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK several QoS 1 messages (``manual_ack``), in this order, in one write to the broker.

        MQTT control packets follow each other on the stream, so several PUBACKs in one
        write are what the broker would also read from several. Without paho's internals,
        one :meth:`ack` each.
        """
        if not mids:
            return
        if not LEAN or not self._manual_ack:
            for mid in mids:
                self.ack(mid, 1)
            return
        packet = b"".join(struct.pack("!BBH", mqtt.PUBACK, 2, mid) for mid in mids)
        self._packet_queue(mqtt.PUBACK, packet, 0, 0)
