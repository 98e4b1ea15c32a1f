"""What the TLS and broker-rule tests share: an MQTT client with a certificate that records what it receives,
and kiosk and ingest clients made from the test PKI."""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from wire import topics


SITE = "hub-t"


class Client:
    """A paho MQTT 5 client with a certificate; records CONNACK, messages, PUBACKs, disconnects."""

    def __init__(self, broker, client_id: str, cert: Path | None = None, key: Path | None = None,
                 ca: Path | None = None, tls: bool = True):
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if tls:
            self.c.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None,
                           keyfile=str(key) if key else None, cert_reqs=ssl.CERT_REQUIRED)
        self.connected = threading.Event()
        self.gone = threading.Event()
        self.connack = None
        self.messages: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, str] = {}
        self.subacks: list[list[str]] = []
        self.error: BaseException | None = None
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = lambda c, u, f, rc, p: self.gone.set()
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.c.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, str(rc))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.append([str(r) for r in rcs])
        try:
            self.c.connect(broker.host, broker.port, keepalive=10)
        except (OSError, ssl.SSLError) as exc:   # refused during the handshake
            self.error = exc
            self.gone.set()
            return
        self.c.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack = reason_code
        if not reason_code.is_failure:
            self.connected.set()

    def wait_connected(self, timeout: float = 5.0) -> bool:
        """True once the broker accepted the connection; False if it was refused or timed out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected.is_set():
                return True
            if self.gone.is_set():
                return False
            time.sleep(0.02)
        return False

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> str:
        """Publish at QoS 1 and return the PUBACK's reason ("Success", "Not authorized", ...)."""
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        deadline = time.monotonic() + 5
        while info.mid not in self.pubacks:
            assert time.monotonic() < deadline, f"no PUBACK for {topic}"
            time.sleep(0.01)
        return self.pubacks[info.mid]

    def subscribe(self, *filters: str) -> list[str]:
        """Subscribe at QoS 1; return the SUBACK reasons."""
        n = len(self.subacks)
        self.c.subscribe([(f, 1) for f in filters])
        deadline = time.monotonic() + 5
        while len(self.subacks) == n:
            assert time.monotonic() < deadline, "no SUBACK"
            time.sleep(0.01)
        return self.subacks[-1]

    def wait_message(self, topic: str, timeout: float = 5.0) -> bytes:
        """The payload of the first message received on ``topic``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, p in self.messages:
                if t == topic:
                    return p
            time.sleep(0.02)
        raise AssertionError(f"nothing on {topic}; got {[t for t, _ in self.messages]}")

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients():
    """Clients made by a test, closed after it."""
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def kiosk(tls_broker, test_pki, clients, device: str, client_id: str | None = None, **kw) -> Client:
    """A connected kiosk client with its own certificate."""
    s = test_pki.kiosk_broker(tls_broker, device, **kw)
    c = Client(tls_broker, client_id or device, s["cert_file"], s["key_file"], test_pki.ca)
    clients.append(c)
    return c


def ingest_client(tls_broker, test_pki, clients, identity: str = "ingest") -> Client:
    """A connected client with the ingest's (or the update publisher's) certificate."""
    s = test_pki.ingest_broker(tls_broker, identity)
    c = Client(tls_broker, f"test-{identity}", s["cert_file"], s["key_file"], test_pki.ca)
    clients.append(c)
    assert c.wait_connected()
    return c


def t(device: str, kind: str) -> str:
    """The topic of ``kind`` for ``device`` at the test hub."""
    return topics.topic(SITE, device, kind)
