"""The MQTT connection: a fresh paho client per connection (MQTT 5, client id = device id,
``clean_start=False`` with a session expiry), the reconnect loop with exponential backoff, one
session's network loop, and paho's connect/disconnect/message callbacks.

Each session runs, between network reads: record acks (:mod:`.acks`), send the other device
messages (:mod:`.device_topics`), resend overdue cases and fill the window (:mod:`.window`).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import TYPE_CHECKING, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from wire import sending, topics

from .settings import backoff_delay

if TYPE_CHECKING:
    from .settings import BrokerSettings
    from .stats import LinkStats
    from .window import _Flight

log = logging.getLogger("edge.link")

#: Bytes a PUBLISH packet adds around the payload beyond the topic (fixed header, length, id, properties).
_PACKET_OVERHEAD = 16


class SessionMixin:
    """The :class:`~edge.link.Link`'s connection handling (link thread only)."""

    broker: BrokerSettings
    device_id: str
    stats: LinkStats
    case_topic: str
    ack_topic: str
    status_topic: str
    _stop: threading.Event
    _state: str
    _inflight: dict[str, _Flight]
    _mids: dict[int, str]
    _limit: int
    _next_poll: float
    _pubacks: list[str]
    _acks: list[tuple[str, str, str]]
    _handlers: dict[str, Callable[[bytes], None]]
    _centre_settle: float
    _centre_sub_mid: int | None

    def _new_client(self) -> mqtt.Client:
        """A paho client for one connection: last will ``offline``, TLS when ``mqtts``, our callbacks."""
        c = sending.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=self.device_id,
                           protocol=mqtt.MQTTv5)  # no copy of a case's remaining bytes per partial write
        c.max_inflight_messages_set(self.broker.max_inflight)
        c.will_set(self.status_topic, self._status("offline"), qos=1, retain=True)
        if self.broker.tls:
            c.tls_set(
                ca_certs=str(self.broker.ca_file) if self.broker.ca_file else None,
                certfile=str(self.broker.cert_file) if self.broker.cert_file else None,
                keyfile=str(self.broker.key_file) if self.broker.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        return c

    def _run(self) -> None:
        """The link thread: connect, run a session, back off and reconnect until stopped."""
        attempt = 0
        while not self._stop.is_set():
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.broker.session_expiry
            self._state = "connecting"
            try:
                client = self._new_client()       # TLS files are read here
                client.connect(self.broker.host, self.broker.port, self.broker.keepalive,
                               clean_start=False, properties=props)
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.stats.last_error = f"cannot connect to {self.broker.host}:{self.broker.port}: {exc}"
                log.warning("%s", self.stats.last_error)
            else:
                try:
                    if self._session(client):
                        attempt = 0
                except Exception as exc:     # outbox I/O, disk full...: drop the connection, retry later
                    # Anything not yet PUBACKed to the broker (an ack we failed to record) comes again.
                    self.stats.last_error = f"link error: {type(exc).__name__}: {exc}"
                    log.exception("link error; reconnecting")
                    try:
                        client.disconnect()
                    except Exception:
                        pass
            self._set_disconnected()
            if self._stop.is_set():
                break
            delay = backoff_delay(attempt, self.broker.reconnect_min_s, self.broker.reconnect_max_s)
            attempt += 1
            log.info("reconnecting in %.1f s", delay)
            self._stop.wait(delay)

    def _session(self, client: mqtt.Client) -> bool:
        """Run one connection until it drops or the link stops; True if it was established."""
        started = time.monotonic()
        established = False
        while True:
            rc = client.loop(timeout=0.02)
            if self._state == "connected" and not established:
                established = True
                self._on_established(client)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._state == "lost":
                if self._state != "lost":
                    self.stats.last_error = f"connection lost ({mqtt.error_string(rc)})"
                log.warning("link down: %s", self.stats.last_error)
                return established
            if not established and time.monotonic() - started > 10:
                self.stats.last_error = "no CONNACK from the broker within 10 s"
                client.disconnect()
                return False
            if self._stop.is_set():
                if established:
                    self._go_offline(client)
                else:
                    client.disconnect()
                return established
            if established:
                self._flush()
                self._send_extra(client)
                self._resend_overdue(client)
                self._pump(client)

    def _on_established(self, client: mqtt.Client) -> None:
        """A new session: reset the window, subscribe (acks, centre presence, device topics), say online."""
        self.stats.connected = True
        self.stats.connects += 1
        self.stats.last_error = ""
        self._inflight.clear()
        self._mids.clear()
        self._next_poll = 0.0
        client.subscribe(self.ack_topic, qos=1)
        _, self._centre_sub_mid = client.subscribe(topics.CENTRE_SUBSCRIPTION, qos=1)
        self._centre_settle = time.monotonic() + 2.0      # at most, should the SUBACK not come
        for extra_topic in self._handlers:
            client.subscribe(extra_topic, qos=1)
        client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
        log.info("link up: %s:%s as %s", self.broker.host, self.broker.port, self.device_id)

    def _go_offline(self, client: mqtt.Client) -> None:
        """Publish ``offline`` (waiting up to 2 s for its PUBACK) and disconnect cleanly."""
        info = client.publish(self.status_topic, self._status("offline"), qos=1, retain=True)
        deadline = time.monotonic() + 2.0
        while not info.is_published() and time.monotonic() < deadline:
            if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        client.disconnect()
        client.loop(timeout=0.1)

    def _set_disconnected(self) -> None:
        """After a session: record what was received, forget the window (the outbox still has it)."""
        try:
            self._flush()                 # what was received before the connection dropped
        except Exception:
            log.exception("recording PUBACKs/acks failed; the cases will be published again")
        self._pubacks.clear()
        self._acks.clear()
        self.stats.connected = False
        self.stats.inflight = 0
        self._state = "idle"
        self._inflight.clear()
        self._mids.clear()

    # ------------------------------------------------------------------ paho callbacks (link thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        """paho's CONNACK callback: the case size limit is the broker's, if it says one, less the overhead."""
        if reason_code.is_failure:
            self.stats.last_error = f"broker refused the connection: {reason_code}"
            self._state = "lost"
            return
        limit = getattr(properties, "MaximumPacketSize", None) if properties else None
        self._limit = self.broker.message_size_limit
        if limit:
            self._limit = min(self._limit, int(limit) - len(self.case_topic) - _PACKET_OVERHEAD)
        self._state = "connected"

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        """paho's disconnect callback: the session ends."""
        if self._state == "connected" and not self._stop.is_set():
            self.stats.last_error = f"disconnected: {reason_code}"
        self._state = "lost"

    def _on_message(self, client, userdata, msg) -> None:
        """paho's message callback: the centre's presence, a device topic's handler, or acks."""
        ingest = topics.parse_centre(msg.topic)
        if ingest is not None:
            self._on_centre(ingest, msg.payload)
            return
        if self._handle_device_message(msg.topic, msg.payload):
            return
        self._on_acks(msg.payload)
