"""dashboard.receive.LeanClient against a real Mosquitto: it receives exactly what paho's own client receives.

The lean client overrides two private methods of paho-mqtt (its version is pinned): these tests
compare it, message by message, with a stock paho client subscribed beside it (sizes from empty to
several megabytes, QoS 0 and 1, retained, MQTT 5 properties), over plain TCP and over TLS with the
centre's own certificates, and check that a batch of PUBACKs sent in one write acknowledges exactly
those messages (the broker redelivers the others to the next session).
"""

from __future__ import annotations

import os
import ssl
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dashboard import receive
from dashboard.receive import LeanClient

SIZES = [0, 1, 2047, 65_536, 300_001, 3_000_000]


class Recorder:
    """A connected client (lean or stock) that records (topic, payload, qos, retain, properties) of each message."""

    def __init__(self, cls, broker, client_id: str, tls: dict | None = None, manual_ack: bool = False,
                 clean_start: bool = True):
        self.c = cls(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack)
        if tls:
            self.c.tls_set(ca_certs=str(tls["ca_file"]), certfile=str(tls["cert_file"]),
                           keyfile=str(tls["key_file"]), cert_reqs=ssl.CERT_REQUIRED)
        self.got: list[tuple] = []
        self.mids: list[int] = []
        self.subscribed = threading.Event()
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.c.connect(broker.host, broker.port, clean_start=clean_start, properties=props)
        self.c.loop_start()

    def _on_message(self, client, userdata, m) -> None:
        props = m.properties
        self.got.append((m.topic, bytes(m.payload), m.qos, m.retain, getattr(props, "ContentType", None),
                         getattr(props, "UserProperty", None)))
        self.mids.append(m.mid)

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK."""
        self.subscribed.clear()
        self.c.subscribe(topic, qos=1)
        assert self.subscribed.wait(5), "no SUBACK"

    def wait_for(self, n: int, timeout: float = 20.0) -> None:
        """Wait until ``n`` messages have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.got) < n:
            assert time.monotonic() < deadline, f"{len(self.got)} of {n} messages"
            time.sleep(0.01)

    def close(self) -> None:
        """Disconnect (the session stays, for its expiry)."""
        self.c.disconnect()
        self.c.loop_stop()


def publish_set(publisher: mqtt.Client, topic: str) -> list[bytes]:
    """Publish each size at QoS 0 and 1 with properties, waiting for each PUBACK; return the payloads in order."""
    sent = []
    for i, size in enumerate(SIZES):
        for qos in (0, 1):
            payload = os.urandom(size)
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = f"application/x-test-{i}"
            props.UserProperty = [("n", str(i)), ("qos", str(qos))]
            publisher.publish(topic, payload, qos=qos, properties=props).wait_for_publish(10)
            sent.append(payload)
    return sent


def publisher_for(broker, tls: dict | None = None, cls=mqtt.Client) -> mqtt.Client:
    """A connected client to publish with (a stock paho client unless ``cls`` says otherwise), its loop started."""
    pub = cls(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    if tls:
        pub.tls_set(ca_certs=str(tls["ca_file"]), certfile=str(tls["cert_file"]), keyfile=str(tls["key_file"]),
                    cert_reqs=ssl.CERT_REQUIRED)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    return pub


def test_paho_internals_that_the_lean_client_needs_are_there():
    # Should a paho upgrade remove them, the lean client silently becomes paho's own: catch that here.
    assert receive.LEAN


def test_lean_client_receives_exactly_what_paho_receives(broker):
    lean = Recorder(LeanClient, broker, "lean")
    stock = Recorder(mqtt.Client, broker, "stock")
    pub = publisher_for(broker)
    try:
        for r in (lean, stock):
            r.subscribe("t/#")
        pub.publish("t/retained", b"kept", qos=1, retain=True).wait_for_publish(5)
        sent = publish_set(pub, "t/x")
        lean.wait_for(len(sent) + 1)
        stock.wait_for(len(sent) + 1)
        assert lean.got == stock.got
        assert [p for t, p, *_ in lean.got if t == "t/x"] == sent
        assert [(q, ct) for t, _, q, _, ct, _ in lean.got if t == "t/x"] == \
            [(q, f"application/x-test-{i}") for i in range(len(SIZES)) for q in (0, 1)]
        # A retained message to a new subscriber arrives flagged retained.
        late = Recorder(LeanClient, broker, "lean-late")
        try:
            late.subscribe("t/retained")
            late.wait_for(1)
            assert late.got[0][:4] == ("t/retained", b"kept", 1, True)
        finally:
            late.close()
    finally:
        pub.loop_stop()
        pub.disconnect()
        lean.close()
        stock.close()


def test_lean_client_over_tls_with_the_centres_certificates(tls_broker, test_pki):
    from tests.tls_kit import SITE

    ingest = test_pki.ingest_broker(tls_broker)
    kiosk = test_pki.kiosk_broker(tls_broker, "kiosk-a")
    lean = Recorder(LeanClient, tls_broker, "ingest", tls=ingest)
    pub = publisher_for(tls_broker, kiosk)
    try:
        lean.subscribe("dermkiosk/v1/+/+/case")
        sent = [os.urandom(n) for n in (5, 1_500_000, 4_000_000, 70_000)]
        for payload in sent:  # generous waits, as test_sending's: how the bytes go, not how fast
            info = pub.publish(f"dermkiosk/v1/{SITE}/kiosk-a/case", payload, qos=1)
            info.wait_for_publish(60)
            assert info.is_published(), f"{len(payload)} bytes not acknowledged in 60 s"
        lean.wait_for(len(sent), timeout=90.0)
        assert [p for _, p, *_ in lean.got] == sent
    finally:
        pub.loop_stop()
        pub.disconnect()
        lean.close()


def test_ack_many_acknowledges_those_messages_and_the_broker_redelivers_the_rest(broker):
    lean = Recorder(LeanClient, broker, "acker", manual_ack=True, clean_start=False)
    pub = publisher_for(broker)
    try:
        lean.subscribe("a/#")
        payloads = [f"m{i}".encode() * 1000 for i in range(20)]
        for p in payloads:
            pub.publish("a/x", p, qos=1).wait_for_publish(5)
        lean.wait_for(20)
        lean.c.ack_many(lean.mids[:15])  # one write
        time.sleep(0.5)  # the PUBACKs reach the broker before we leave
    finally:
        lean.close()
    again = Recorder(mqtt.Client, broker, "acker", clean_start=False)  # the same session
    try:
        again.wait_for(5)
        time.sleep(0.5)
        assert [p for _, p, *_ in again.got] == payloads[15:]
    finally:
        pub.loop_stop()
        pub.disconnect()
        again.close()


def test_receive_buffers_are_exact_size_bytearrays_without_a_zero_fill(monkeypatch):
    import platform

    if platform.python_implementation() == "CPython":  # the C API that skips the memset is there
        assert receive._RESIZE is not None
    for size in (0, 1, 5, 1_000_000, 3_000_000):
        buf = receive.receive_buffer(size)
        assert type(buf) is bytearray and len(buf) == size
        buf[:] = b"\xab" * size  # writable, and dropping the header in place still works
        del buf[: min(size, 3)]
        assert bytes(buf) == b"\xab" * max(size - 3, 0)
    # (Their bytes are undefined until received over: the exact comparisons above, 0 B to 3 MB, show that
    # nothing stale reaches a message.)
    monkeypatch.setattr(receive, "_RESIZE", None)
    assert receive.receive_buffer(4) == bytearray(4)


def test_a_truncated_publish_is_a_malformed_packet_not_a_crash():
    c = LeanClient(CallbackAPIVersion.VERSION2, client_id="x", protocol=mqtt.MQTTv5)
    c._in_packet["command"] = 0x32  # PUBLISH, QoS 1
    c._in_packet["packet"] = bytearray(b"\x00\x09dermk")  # topic length 9, 5 bytes of it
    with pytest.raises(mqtt.MalformedPacket):
        c._handle_publish()


def test_without_paho_internals_it_is_paho_s_own_client(broker, monkeypatch):
    monkeypatch.setattr(receive, "LEAN", False)
    lean = Recorder(LeanClient, broker, "plain", manual_ack=True)
    pub = publisher_for(broker)
    try:
        lean.subscribe("p/#")
        pub.publish("p/x", b"x" * 500_000, qos=1).wait_for_publish(5)
        lean.wait_for(1)
        assert lean.got[0][1] == b"x" * 500_000
        lean.c.ack_many(lean.mids)
    finally:
        pub.loop_stop()
        pub.disconnect()
        lean.close()
