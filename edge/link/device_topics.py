"""This device's other topics: messages the kiosk publishes besides cases (health reports, update
results, its status) and subscriptions to topics the centre sends it (update bundles, the outcome
of its referrals), each with a handler that runs on the link thread.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from wire import topics

log = logging.getLogger("edge.link")


class DeviceTopicsMixin:
    """The :class:`~edge.link.Link`'s extra messages and subscriptions (``publish``, ``on_message``)."""

    site: str
    device_id: str
    _wake: threading.Event

    def _init_device_topics(self) -> None:
        #: Other messages to publish (health, update results): (topic, payload, retain), newest kept.
        self._extra: deque[tuple[str, bytes | str, bool]] = deque(maxlen=200)
        #: Topic -> handler(payload) for topics other than the ack topic (e.g. ``update``).
        self._handlers: dict[str, Callable[[bytes], None]] = {}

    def publish(self, kind: str, payload: bytes | str, retain: bool = False) -> None:
        """Queue a QoS 1 message on this device's ``kind`` topic (sent while connected; oldest dropped
        beyond 200 waiting). Thread-safe; for health reports and update results, not cases."""
        self._extra.append((topics.topic(self.site, self.device_id, kind), payload, retain))
        self._wake.set()

    def on_message(self, kind: str, handler: Callable[[bytes], None]) -> None:
        """Subscribe (QoS 1, on every connect) to this device's ``kind`` topic; ``handler(payload)``
        runs on the link thread, so it must only hand the work on. Call before :meth:`start`."""
        self._handlers[topics.topic(self.site, self.device_id, kind)] = handler

    def _send_extra(self, client: mqtt.Client) -> None:
        """Publish the queued health reports and update results (QoS 1)."""
        while self._extra:
            extra_topic, payload, retain = self._extra[0]
            if client.publish(extra_topic, payload, qos=1, retain=retain).rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            self._extra.popleft()

    def _handle_device_message(self, topic: str, payload: bytes) -> bool:
        """Run the handler subscribed to ``topic``, if any (its failure is logged); False when none is."""
        handler = self._handlers.get(topic)
        if handler is None:
            return False
        try:
            handler(bytes(payload))
        except Exception:
            log.exception("handling a message on %s failed", topic.rsplit("/", 1)[-1])
        return True
