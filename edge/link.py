"""The link: publishes cases from the outbox to the broker and records the centre's acks.

paho-mqtt 2.x, MQTT 5, QoS 1, client id = device id, ``clean_start=False`` with a
session expiry, so the broker keeps our ack subscription (and the acks sent while
we were away) across reconnects. paho keeps QoS 1 messages in memory only, so the
outbox is the source of truth: each connection gets a fresh paho client and
republishes, in ``seq`` order, every case that is queued or sent-but-not-delivered.

At most ``max_inflight`` cases, and about ``max_inflight_bytes`` (one case always
goes, whatever its size), are published and not yet acknowledged by the centre at
any time (never paho's unbounded queue): that is also all the broker holds for the
ingest from this kiosk, and what it writes at every save. A case is ``sent`` on PUBACK,
``delivered`` on the centre's Ack; a case not acknowledged within
``ack_timeout_s`` (doubling per resend) is published again (the centre is
idempotent). Reconnects back off exponentially with jitter.

The centre's ingest announces itself on a retained presence topic (its last will
says ``offline``). While it is offline the link publishes nothing new and resends
nothing: the cases wait in the outbox, and the broker holds at most one window of
them for the ingest instead of a new copy of the window at every ack timeout. When
the centre is back, the ack clocks restart and the backlog goes out at once. A
centre that never announced itself (``unknown``) is treated as online.

One thread does everything (network loop, callbacks, publishing), so the link's
own state needs no locks; the outbox is thread-safe for the kiosk page.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wire import sending, topics
from wire.messages import CentreStatus, Status, parse_acks

from .outbox import CaseDataError, Outbox

log = logging.getLogger("edge.link")

#: Bytes a PUBLISH packet adds around the payload beyond the topic (fixed header, length, id, properties).
_PACKET_OVERHEAD = 16
#: First retry after the broker dropped a case for want of a subscriber (doubling per resend).
_DROPPED_RETRY_S = 1.0
#: How often the outbox is polled for new cases when nothing woke the link.
_POLL_S = 0.5


@dataclass
class _Flight:
    """One published case waiting for PUBACK and the centre's ack."""

    mid: int
    published: float
    #: payload bytes (the window is bounded in bytes too)
    size: int = 0
    resends: int = 0
    pubacked: bool = False
    #: The broker said "no matching subscribers": the ingest is away without a session, retry soon.
    dropped: bool = False


@dataclass
class LinkStats:
    """What the kiosk page and the logs show about the link."""

    connected: bool = False
    inflight: int = 0
    published: int = 0
    delivered: int = 0
    rejected: int = 0
    connects: int = 0
    last_error: str = ""
    since: float = field(default_factory=time.monotonic)
    #: What the centre's ingest last said of itself: online, offline, or unknown (never heard).
    centre: str = "unknown"


_rng = random.Random()


class BrokerSettings(BaseModel):
    """How the kiosk reaches the MQTT broker.

    ``url`` is ``mqtt://host[:1883]`` or ``mqtts://host[:8883]``; with ``mqtts`` the
    broker is verified against ``ca_file`` (system CAs when absent) and the kiosk
    presents ``cert_file``/``key_file`` when given (mutual TLS). ``message_size_limit``
    must agree with the broker's own (Mosquitto drops larger messages silently): the
    kiosk refuses to send a larger case and says why.
    """

    model_config = ConfigDict(extra="forbid")

    url: str = "mqtt://127.0.0.1:1883"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = Field(30, ge=5, le=3600)
    #: Seconds the broker keeps the kiosk's session (subscription, queued acks) while it is away.
    session_expiry: int = Field(7 * 24 * 3600, ge=60, le=0xFFFFFFFE)
    #: Cases published and not yet acknowledged by the centre, at most.
    max_inflight: int = Field(16, ge=1, le=100)
    #: ... and their bytes, at most (about: a window always holds one case, whatever its size). After an
    #: outage every kiosk's window arrives at the broker at once, and Mosquitto 2.0 writes all it holds
    #: at every save (each second): large cases need fewer in flight, not more queued.
    max_inflight_bytes: int = Field(32 * 1024 * 1024, ge=64 * 1024, le=1024 * 1024 * 1024)
    message_size_limit: int = Field(16 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    reconnect_min_s: float = Field(0.5, gt=0, le=60)
    reconnect_max_s: float = Field(30.0, gt=0, le=3600)
    #: Resend a published case when the centre has not acknowledged it after this long (doubling).
    ack_timeout_s: float = Field(60.0, ge=1, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError("has no host name")
        try:
            parts.port
        except ValueError:
            raise ValueError("has an invalid port") from None
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError("must be just scheme://host[:port] (no path, query or user)")
        return v

    @model_validator(mode="after")
    def _tls(self) -> "BrokerSettings":
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both cert_file and key_file (client certificate) or neither")
        if not self.tls and any((self.ca_file, self.cert_file, self.key_file)):
            raise ValueError("TLS files are given but the url is mqtt://; use mqtts://")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must not be below reconnect_min_s")
        return self

    @property
    def tls(self) -> bool:
        """True for ``mqtts://``."""
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        """Broker host name."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """Broker port (1883 for mqtt, 8883 for mqtts unless the url says otherwise)."""
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


def backoff_delay(attempt: int, lo: float, hi: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: a random delay in [d/2, d], d = min(hi, lo * 2**attempt)."""
    d = min(hi, lo * (2 ** min(attempt, 30)))
    return (rng or _rng).uniform(d / 2, d)


class Link:
    """Publishes the outbox over MQTT in its own thread; ``start()``, ``wake()``, ``stop()``."""

    def __init__(self, broker: BrokerSettings, site: str, device_id: str, outbox: Outbox,
                 software_version: str = "", model_version: str = ""):
        """Prepare the link for one device; nothing connects until :meth:`start`."""
        self.broker = broker
        self.site = topics.check_id(site, "site")
        self.device_id = topics.check_id(device_id, "device")
        self.outbox = outbox
        self.software_version = software_version
        self.model_version = model_version
        self.case_topic = topics.topic(site, device_id, topics.CASE)
        self.ack_topic = topics.topic(site, device_id, topics.ACK)
        self.status_topic = topics.topic(site, device_id, topics.STATUS)
        self.stats = LinkStats()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._inflight: dict[str, _Flight] = {}
        self._mids: dict[int, str] = {}
        self._limit = broker.message_size_limit
        self._state = "idle"        # idle | connecting | connected | lost
        self._next_poll = 0.0
        self._pubacks: list[str] = []                  # PUBACKed case ids, recorded in batches
        self._acks: list[tuple[str, str, str]] = []     # centre acks, recorded in batches
        self._purge = threading.Event()
        self._purger: threading.Thread | None = None
        #: Other messages to publish (health, update results): (topic, payload, retain), newest kept.
        self._extra: deque[tuple[str, bytes | str, bool]] = deque(maxlen=200)
        #: Topic -> handler(payload) for topics other than the ack topic (e.g. ``update``).
        self._handlers: dict[str, Callable[[bytes], None]] = {}
        #: (monotonic time, stats.delivered) after each batch of centre acks: the drain rate.
        self._delivered_log: deque[tuple[float, int]] = deque(maxlen=1000)
        #: Ingest client id -> its last announced state (wire.messages.CentreStatus).
        self._centre: dict[str, str] = {}
        #: After a connect, nothing is published before this (monotonic) time: the broker sends the
        #: centre's retained presence right after the SUBACK, and a kiosk must not flood a centre
        #: that is away before it has heard so. Cleared by the presence, or 0.25 s after the SUBACK.
        self._centre_settle = 0.0
        self._centre_sub_mid: int | None = None

    # ------------------------------------------------------------------ public
    def start(self) -> "Link":
        """Start the link thread (connects, reconnects, publishes until :meth:`stop`)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="edge-link", daemon=True)
        self._thread.start()
        self._purger = threading.Thread(target=self._run_purger, name="edge-purger", daemon=True)
        self._purger.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Publish ``offline``, disconnect cleanly and end the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        self._purge.set()                 # a last purge pass after the final acks
        if self._purger:
            self._purger.join(timeout)
        self._thread = self._purger = None

    def _run_purger(self) -> None:
        """Delete the files of delivered cases off the link thread (unlink is slow on some disks)."""
        while True:
            self._purge.wait(1.0)
            self._purge.clear()
            stopping = self._stop.is_set()
            try:
                self.outbox.purge_due()
            except Exception:
                log.exception("purging delivered cases failed; will retry")
            if stopping:
                return

    def wake(self) -> None:
        """Tell the link that the outbox has new cases (it also polls on its own)."""
        self._wake.set()

    def publish(self, kind: str, payload: bytes | str, retain: bool = False) -> None:
        """Queue a QoS 1 message on this device's ``kind`` topic (sent while connected; oldest dropped
        beyond 200 waiting). Thread-safe; for health reports and update results, not cases."""
        self._extra.append((topics.topic(self.site, self.device_id, kind), payload, retain))
        self._wake.set()

    def on_message(self, kind: str, handler: Callable[[bytes], None]) -> None:
        """Subscribe (QoS 1, on every connect) to this device's ``kind`` topic; ``handler(payload)``
        runs on the link thread, so it must only hand the work on. Call before :meth:`start`."""
        self._handlers[topics.topic(self.site, self.device_id, kind)] = handler

    def drain_rate(self, window_s: float = 10.0) -> float:
        """Cases the centre acknowledged per second over about the last ``window_s`` seconds (0.0 when
        none): the backlog's drain speed shown on the kiosk page. Safe from any thread."""
        now = time.monotonic()
        recent = [(t, n) for t, n in list(self._delivered_log) if now - t <= window_s]
        if len(recent) < 2 or now - recent[0][0] < 0.5:
            return 0.0
        return (recent[-1][1] - recent[0][1]) / (now - recent[0][0])

    @property
    def connected(self) -> bool:
        """True while a broker session is up."""
        return self.stats.connected

    # ------------------------------------------------------------------ connection
    def _status(self, state: str) -> str:
        return Status(device_id=self.device_id, state=state, at=datetime.now(timezone.utc),
                      software_version=self.software_version, model_version=self.model_version
                      ).model_dump_json()

    def _new_client(self) -> mqtt.Client:
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
        info = client.publish(self.status_topic, self._status("offline"), qos=1, retain=True)
        deadline = time.monotonic() + 2.0
        while not info.is_published() and time.monotonic() < deadline:
            if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        client.disconnect()
        client.loop(timeout=0.1)

    def _set_disconnected(self) -> None:
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
        if self._state == "connected" and not self._stop.is_set():
            self.stats.last_error = f"disconnected: {reason_code}"
        self._state = "lost"

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        case_id = self._mids.pop(mid, None)
        if case_id is None:
            return      # status message, or a case from an earlier attempt
        flight = self._inflight.get(case_id)
        if reason_code.is_failure:
            # The broker would not take it (quota, authorisation...): keep it, retry on the ack timeout.
            self.stats.last_error = f"broker refused case {case_id}: {reason_code}"
            log.warning("%s", self.stats.last_error)
            return
        if flight is not None:
            flight.pubacked = True
            if reason_code.value == 0x10:
                flight.dropped = True
                flight.published = time.monotonic()
        log.debug("case %s PUBACK %s", case_id, reason_code)
        self._pubacks.append(case_id)

    def _send_extra(self, client: mqtt.Client) -> None:
        """Publish the queued health reports and update results (QoS 1)."""
        while self._extra:
            extra_topic, payload, retain = self._extra[0]
            if client.publish(extra_topic, payload, qos=1, retain=retain).rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            self._extra.popleft()

    def _on_message(self, client, userdata, msg) -> None:
        ingest = topics.parse_centre(msg.topic)
        if ingest is not None:
            self._on_centre(ingest, msg.payload)
            return
        handler = self._handlers.get(msg.topic)
        if handler is not None:
            try:
                handler(bytes(msg.payload))
            except Exception:
                log.exception("handling a message on %s failed", msg.topic.rsplit("/", 1)[-1])
            return
        try:
            acks = parse_acks(msg.payload)  # a batch (Acks) or, from an older centre, a single Ack
        except ValidationError as exc:
            log.warning("ignoring an invalid ack message: %s", exc.errors()[0].get("msg"))
            return
        for ack in acks:
            case_id = str(ack.case_id)
            self._inflight.pop(case_id, None)
            self._acks.append((case_id, ack.status,
                               f"centre rejected: {ack.reason}" if ack.status == "rejected" else ""))
        self._next_poll = 0.0

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid == self._centre_sub_mid:  # a retained presence, if any, follows the SUBACK at once
            self._centre_settle = min(self._centre_settle, time.monotonic() + 0.25)

    def _on_centre(self, ingest: str, payload: bytes) -> None:
        """Record the presence of the ingest client ``ingest``; when the centre comes back, restart the ack clocks."""
        self._centre_settle = 0.0
        if not payload:  # the retained message was cleared: that ingest no longer exists
            self._centre.pop(ingest, None)
        else:
            try:
                status = CentreStatus.model_validate_json(payload)
            except ValidationError as exc:
                log.warning("ignoring an invalid centre status: %s", exc.errors()[0].get("msg"))
                return
            self._centre[ingest] = status.state
        before = self.stats.centre
        states = self._centre.values()
        self.stats.centre = "online" if "online" in states else ("offline" if states else "unknown")
        if before == self.stats.centre:
            return
        if self.stats.centre == "offline":
            log.warning("the centre is offline: cases wait in the outbox until it is back")
        elif before == "offline":
            log.info("the centre is back: sending the backlog")
            now = time.monotonic()
            for flight in self._inflight.values():  # what the broker kept for the ingest is handled first
                flight.published, flight.resends, flight.dropped = now, 0, False
        self._next_poll = 0.0

    @property
    def holding(self) -> bool:
        """True while the centre says it is offline: nothing is published or resent."""
        return self.stats.centre == "offline"

    def _flush(self) -> None:
        """Record the PUBACKs and acks received since the last call, each kind in one transaction.

        paho has already PUBACKed an ack message when this runs; if the kiosk dies before the
        commit, the case is simply published again and the centre answers ``duplicate``.
        """
        if self._pubacks:
            self.outbox.mark_sent_many(self._pubacks)
            self._pubacks.clear()
        if self._acks:
            acks, self._acks = self._acks, []
            rejected = [a for a in acks if a[1] == "rejected"]
            delivered = [a for a in acks if a[1] != "rejected"]
            if rejected:
                self.stats.rejected += self.outbox.record_acks(rejected)
                for case_id, _, reason in rejected:
                    log.error("case %s: %s", case_id, reason)
            if delivered:
                self.stats.delivered += self.outbox.record_acks(delivered)
                self._delivered_log.append((time.monotonic(), self.stats.delivered))
                for case_id, status, _ in delivered:
                    log.info("case %s delivered (%s)", case_id, status)
                self._purge.set()

    # ------------------------------------------------------------------ publishing
    def _publish(self, client: mqtt.Client, case_id: str) -> bool:
        """Publish one case; False when the connection cannot take it now."""
        try:
            payload = self.outbox.payload(case_id)
        except KeyError:
            self._inflight.pop(case_id, None)
            return True     # purged or removed meanwhile
        except CaseDataError as exc:
            self._inflight.pop(case_id, None)
            self.outbox.mark_rejected(case_id, f"not sent: {exc}")
            log.error("case %s not sent: %s", case_id, exc)
            return True
        if len(payload) > self._limit:
            self._inflight.pop(case_id, None)
            reason = (f"not sent: {len(payload)} bytes is over the broker's message size limit of "
                      f"{self._limit} bytes (fewer or smaller images, or raise message_size_limit on both)")
            self.outbox.mark_rejected(case_id, reason)
            self.stats.rejected += 1
            log.error("case %s %s", case_id, reason)
            return True
        info = client.publish(self.case_topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        old = self._inflight.get(case_id)
        self._inflight[case_id] = _Flight(mid=info.mid, published=time.monotonic(), size=len(payload),
                                          resends=(old.resends + 1) if old else 0)
        self._mids[info.mid] = case_id
        self.stats.published += 1
        log.debug("case %s published (mid %s)", case_id, info.mid)
        return True

    def _pump(self, client: mqtt.Client) -> None:
        """Fill the in-flight window from the outbox, oldest seq first."""
        self.stats.inflight = len(self._inflight)
        free = self.broker.max_inflight - len(self._inflight)
        now = time.monotonic()
        woken = self._wake.is_set()
        if free <= 0 or self.holding or now < self._centre_settle or (not woken and now < self._next_poll):
            return
        self._wake.clear()
        self._next_poll = now + _POLL_S
        held = sum(f.size for f in self._inflight.values())  # bytes in flight, kept up to date below
        for case in self.outbox.pending(free, exclude=set(self._inflight)):
            if self._inflight and held >= self.broker.max_inflight_bytes:
                break
            if not self._publish(client, case.case_id):
                break
            flight = self._inflight.get(case.case_id)
            held += flight.size if flight else 0
        self.stats.inflight = len(self._inflight)

    def _resend_overdue(self, client: mqtt.Client) -> None:
        """Publish again the cases whose centre ack is overdue (the centre stores a case once)."""
        if self.holding:
            return
        now = time.monotonic()
        for case_id, flight in list(self._inflight.items()):
            wait = self.broker.ack_timeout_s * (2 ** min(flight.resends, 5))
            if flight.dropped:
                wait = min(wait, _DROPPED_RETRY_S * (2 ** min(flight.resends, 5)))
            if now - flight.published > wait:
                log.info("case %s: no ack after %.0f s, publishing again", case_id, wait)
                self._mids.pop(flight.mid, None)
                self._publish(client, case_id)
