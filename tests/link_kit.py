"""What the link tests share: a real MQTT peer standing in for the centre's ingest, the kiosk's
settings for a test broker, cases submitted to an outbox, the centre's retained presence."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.link import BrokerSettings
from edge.outbox import Outbox
from tests.broker import retained
from tests.test_outbox import jpeg, make_case
from wire import topics
from wire.codec import decode_case
from wire.messages import Ack, CentreStatus, Status

SITE, DEVICE = "site-a", "kiosk-1"


class FakeCentre:
    """A real MQTT peer standing in for the ingest: records cases and (optionally) acks them.

    Persistent session (clean_start=False, session expiry) like the real ingest, so that cases
    published while it is connected-but-slow or the broker restarts are not lost.
    """

    def __init__(self, broker, ack: bool = True, reject: set[str] | None = None, client_id="fake-centre"):
        self.ack = ack
        self.reject = reject or set()
        self.received: list[tuple[int, str]] = []   # (seq, case_id) in arrival order
        self.images: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()
        self.c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.subscription("case"), qos=1)
        self.c.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect(broker.host, broker.port, 30, clean_start=False, properties=props)
        self.c.loop_start()

    def _on_message(self, c, u, msg):
        header, images = decode_case(msg.payload)
        site, device, _ = topics.parse(msg.topic)
        with self.lock:
            self.received.append((header.seq, str(header.case_id)))
            first = str(header.case_id) not in self.images
            self.images[str(header.case_id)] = images
        if not self.ack:
            return
        status = "rejected" if str(header.case_id) in self.reject else ("stored" if first else "duplicate")
        ack = Ack(case_id=header.case_id, status=status, received_at=datetime.now(timezone.utc),
                  reason="test says no" if status == "rejected" else "")
        c.publish(topics.topic(site, device, "ack"), ack.model_dump_json(), qos=1)

    def ids(self) -> list[str]:
        """Case ids received, in arrival order."""
        with self.lock:
            return [cid for _, cid in self.received]

    def close(self):
        """Disconnect."""
        self.c.disconnect()
        self.c.loop_stop()


def settings(broker, **kw) -> BrokerSettings:
    """The kiosk's broker settings for the test broker, reconnecting fast."""
    return BrokerSettings(url=broker.url, reconnect_min_s=0.1, reconnect_max_s=0.5, **kw)


def submit(ob: Outbox, n: int, start: int = 0) -> list[str]:
    """Submit ``n`` one-image cases (distinct images from ``start``); their case ids in order."""
    return [str(ob.submit(make_case([jpeg(start + i)]), [jpeg(start + i)]).case_id) for i in range(n)]


@pytest.fixture
def outbox(tmp_path):
    """A fresh kiosk outbox in the test's temporary folder."""
    ob = Outbox(tmp_path / "kiosk")
    yield ob
    ob.close()


def announce(broker, state: str | None, client_id: str = "fake-centre") -> None:
    """Publish (retained) what the centre's ingest says of itself; None clears it (that ingest is gone)."""
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(broker.host, broker.port)
    c.loop_start()
    payload = "" if state is None else CentreStatus(client_id=client_id, state=state).model_dump_json()
    c.publish(topics.centre(client_id), payload, qos=1, retain=True).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


def retained_status(broker) -> Status:
    """The kiosk's retained status message at the broker."""
    return Status.model_validate_json(retained(broker, topics.topic(SITE, DEVICE, "status")))
