"""The broker's TLS configuration and access rules, against a real Mosquitto running the repository's config.

Every client here presents a certificate made by ``dashboard.pki`` (session fixture
``test_pki``). A kiosk may publish only on its own case/status/health topics and read (and
subscribe to) only its own acks and updates and the centre's presence; unknown, revoked and missing certificates and plain TCP are refused; a whole
case goes from the kiosk's link through TLS to the real ingest and comes back acknowledged.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.link import BrokerSettings, Link
from edge.outbox import Outbox
from wire import topics
from wire.codec import sha256_hex
from wire.messages import CaseHeader, CentreStatus, ImageMeta

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
    return topics.topic(SITE, device, kind)


def test_kiosk_publishes_only_on_its_own_topics(tls_broker, test_pki, clients):
    centre = ingest_client(tls_broker, test_pki, clients)
    assert centre.subscribe(topics.subscription(topics.CASE, "ingest"), topics.subscription(topics.STATUS),
                            topics.subscription(topics.HEALTH)) == ["Granted QoS 1"] * 3
    a = kiosk(tls_broker, test_pki, clients, "kiosk-a")
    b = kiosk(tls_broker, test_pki, clients, "kiosk-b")
    assert a.wait_connected() and b.wait_connected()
    assert b.subscribe(t("kiosk-b", "ack")) == ["Granted QoS 1"]

    # A forges B's case, status and health, and an ack to B: the broker refuses each one.
    for kind in ("case", "status", "health", "ack"):
        assert a.publish(t("kiosk-b", kind), b"forged " + kind.encode()) == "Not authorized", kind
    assert a.publish(t("kiosk-a", "ack"), b"self-ack") == "Not authorized"   # only the ingest acks
    # A's own topics go through (published last, so the forgeries would have arrived first).
    assert a.publish(t("kiosk-a", "health"), b"own health") == "Success"
    assert a.publish(t("kiosk-a", "case"), b"own case") == "Success"
    assert centre.wait_message(t("kiosk-a", "case")) == b"own case"
    time.sleep(0.3)
    got = {topic for topic, _ in centre.messages}
    assert got == {t("kiosk-a", "health"), t("kiosk-a", "case")}
    assert b.messages == []
    assert not any(b"forged" in p for _, p in centre.messages + b.messages)


def test_kiosk_reads_only_its_own_acks(tls_broker, test_pki, clients):
    centre = ingest_client(tls_broker, test_pki, clients)
    a = kiosk(tls_broker, test_pki, clients, "kiosk-a")
    b = kiosk(tls_broker, test_pki, clients, "kiosk-b")
    assert a.wait_connected() and b.wait_connected()
    b.subscribe(t("kiosk-b", "ack"))
    # A tries everything that would cover B's acks: the broker refuses each filter in the SUBACK
    # (0x87, not granted and then starved) and grants only A's own.
    assert a.subscribe(t("kiosk-b", "ack"), topics.subscription(topics.ACK), "dermkiosk/#", "#",
                       t("kiosk-a", "ack")) == ["Not authorized"] * 4 + ["Granted QoS 1"]
    assert centre.publish(t("kiosk-b", "ack"), b"ack for b") == "Success"
    assert centre.publish(t("kiosk-a", "ack"), b"ack for a") == "Success"
    assert b.wait_message(t("kiosk-b", "ack")) == b"ack for b"
    assert a.wait_message(t("kiosk-a", "ack")) == b"ack for a"
    time.sleep(0.3)
    assert {topic for topic, _ in a.messages} == {t("kiosk-a", "ack")}
    assert [p for _, p in b.messages] == [b"ack for b"]
    # Nor can a kiosk read other kiosks' cases or status.
    c = kiosk(tls_broker, test_pki, clients, "kiosk-c")
    assert c.wait_connected()
    assert c.subscribe(topics.subscription(topics.CASE), topics.subscription(topics.STATUS)) == \
        ["Not authorized"] * 2
    assert a.publish(t("kiosk-a", "status"), b"online", retain=True) in ("Success", "No matching subscribers")
    assert a.publish(t("kiosk-a", "case"), b"case") in ("Success", "No matching subscribers")
    time.sleep(0.5)
    assert c.messages == []


def test_fleet_topics_health_updates_and_results(tls_broker, test_pki, clients):
    centre = ingest_client(tls_broker, test_pki, clients)
    assert centre.subscribe(topics.subscription(topics.HEALTH, "ingest"),
                            topics.subscription(topics.UPDATE_RESULT, "ingest")) == ["Granted QoS 1"] * 2
    updates = ingest_client(tls_broker, test_pki, clients, "updates")
    a = kiosk(tls_broker, test_pki, clients, "kiosk-a")
    b = kiosk(tls_broker, test_pki, clients, "kiosk-b")
    assert a.wait_connected() and b.wait_connected()
    a.subscribe(t("kiosk-a", "update"), t("kiosk-b", "update"))
    b.subscribe(t("kiosk-b", "update"))
    # Only the update publisher sends bundles; a kiosk or the ingest cannot.
    assert a.publish(t("kiosk-b", "update"), b"evil bundle") == "Not authorized"
    assert centre.publish(t("kiosk-b", "update"), b"ingest bundle") == "Not authorized"
    assert updates.publish(t("kiosk-b", "update"), b"bundle for b") == "Success"
    assert updates.publish(t("kiosk-a", "update"), b"bundle for a") == "Success"
    assert updates.publish(t("kiosk-a", "ack"), b"x") == "Not authorized"
    assert b.wait_message(t("kiosk-b", "update")) == b"bundle for b"
    assert a.wait_message(t("kiosk-a", "update")) == b"bundle for a"
    # Kiosks report health and update results on their own topics only.
    assert a.publish(t("kiosk-b", "update-result"), b"forged") == "Not authorized"
    assert a.publish(t("kiosk-b", "health"), b"forged") == "Not authorized"
    assert a.publish(t("kiosk-a", "update-result"), b"installed") == "Success"
    assert a.publish(t("kiosk-a", "health"), b"ok") == "Success"
    assert centre.wait_message(t("kiosk-a", "health")) == b"ok"
    assert centre.wait_message(t("kiosk-a", "update-result")) == b"installed"
    time.sleep(0.3)
    assert [p for _, p in b.messages] == [b"bundle for b"]
    assert {topic for topic, _ in a.messages} == {t("kiosk-a", "update")}
    assert not any(b"forged" in p for _, p in centre.messages)


def test_only_the_ingest_announces_the_centre_and_every_kiosk_reads_it(tls_broker, test_pki, clients):
    """A kiosk that could write the centre's presence could make every kiosk hold its cases."""
    centre = ingest_client(tls_broker, test_pki, clients)
    updates = ingest_client(tls_broker, test_pki, clients, "updates")
    a = kiosk(tls_broker, test_pki, clients, "kiosk-a")
    assert a.wait_connected()
    assert a.subscribe(topics.CENTRE_SUBSCRIPTION) == ["Granted QoS 1"]
    forged = CentreStatus(client_id="ingest", state="offline").model_dump_json().encode()
    assert a.publish(topics.centre("ingest"), forged, retain=True) == "Not authorized"
    assert a.publish(topics.centre("kiosk-a"), forged, retain=True) == "Not authorized"
    assert updates.publish(topics.centre("ingest"), forged, retain=True) == "Not authorized"
    online = CentreStatus(client_id="ingest", state="online").model_dump_json().encode()
    assert centre.publish(topics.centre("ingest"), online, retain=True) == "Success"
    assert a.wait_message(topics.centre("ingest")) == online
    late = kiosk(tls_broker, test_pki, clients, "kiosk-b")    # connects later: gets the retained one
    assert late.wait_connected()
    late.subscribe(topics.CENTRE_SUBSCRIPTION)
    assert late.wait_message(topics.centre("ingest")) == online
    time.sleep(0.3)
    assert [p for _, p in a.messages + late.messages] == [online, online]


def test_kiosk_cannot_take_over_another_kiosks_session(tls_broker, test_pki, clients):
    b = kiosk(tls_broker, test_pki, clients, "kiosk-b")
    assert b.wait_connected()
    # A connects with B's client id: the broker uses A's certificate name instead, B stays on.
    a = kiosk(tls_broker, test_pki, clients, "kiosk-a", client_id="kiosk-b")
    assert a.wait_connected()
    time.sleep(0.5)
    assert not b.gone.is_set()
    centre = ingest_client(tls_broker, test_pki, clients)
    b.subscribe(t("kiosk-b", "ack"))
    assert centre.publish(t("kiosk-b", "ack"), b"ack for b") == "Success"
    assert b.wait_message(t("kiosk-b", "ack")) == b"ack for b"


@pytest.mark.parametrize("who", ["foreign CA", "revoked", "no certificate"])
def test_unknown_revoked_or_missing_certificate_is_refused(tls_broker, test_pki, clients, who):
    if who == "foreign CA":
        cert, key = test_pki.kiosk("kiosk-a", foreign=True)
    elif who == "revoked":
        cert, key = test_pki.kiosk(test_pki.REVOKED)
    else:
        cert = key = None
    c = Client(tls_broker, "intruder", cert, key, test_pki.ca)
    clients.append(c)
    assert not c.wait_connected(5), f"{who}: connected"
    # ... while a good certificate still gets in (the broker is up and the test is not vacuous).
    good = kiosk(tls_broker, test_pki, clients, "kiosk-a")
    assert good.wait_connected()
    log = tls_broker.log.read_text()
    assert "OpenSSL Error" in log or "certificate" in log.lower()


def test_plain_tcp_is_refused(tls_broker, test_pki, clients):
    c = Client(tls_broker, "plain", tls=False)
    clients.append(c)
    assert not c.wait_connected(3)
    # Raw bytes of an MQTT CONNECT: the TLS listener answers with no CONNACK (0x20).
    connect = bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([5, 2, 0, 10, 0, 0, 0])
    with socket.create_connection((tls_broker.host, tls_broker.port), timeout=3) as s:
        s.sendall(connect)
        try:
            reply = s.recv(16)
        except (TimeoutError, ConnectionResetError):
            reply = b""
    assert not reply.startswith(b"\x20")


def submit_case(outbox: Outbox, n: int, device: str = "kiosk-a") -> tuple[str, bytes]:
    """Put a small case (referral ``TLS-REF-<n>``, one 64 x 64 JPEG) in a kiosk's outbox; return its id and image."""
    ok, buf = cv2.imencode(".jpg", np.random.default_rng(n).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    jpeg = buf.tobytes()
    now = datetime.now(timezone.utc)
    header = CaseHeader(case_id=uuid.uuid4(), referral_ref=f"TLS-REF-{n}", lesion_id="L1",
                        body_site="anterior torso", site=SITE, device_id=device, created_at=now,
                        seq=n, software_version="t", model_version="m",
                        images=[ImageMeta(view="dermoscopic", captured_at=now, sha256=sha256_hex(jpeg),
                                          length=len(jpeg), width=64, height=64)])
    outbox.submit(header, [jpeg])
    return str(header.case_id), jpeg


def wait_delivered(outbox: Outbox, ids: list[str], link: Link, timeout: float = 20.0) -> None:
    """Wait until the centre has acknowledged every case in ``ids``."""
    deadline = time.monotonic() + timeout
    while any(outbox.get(cid).state not in ("delivered", "purged") for cid in ids):
        assert time.monotonic() < deadline, f"not all acked: {link.stats}"
        time.sleep(0.05)


def wait_holding(link: Link, timeout: float = 10.0) -> None:
    """Wait until the kiosk's link holds its cases because no ingest says it is online."""
    deadline = time.monotonic() + timeout
    while not link.holding:
        assert time.monotonic() < deadline, f"the kiosk did not see the centre go: {link.stats}"
        time.sleep(0.05)


def stop_all(link: Link | None, outbox: Outbox | None, *ingests) -> None:
    """A test's teardown: the kiosk's link and outbox (where they were made), then each ingest."""
    if link:
        link.stop()
    if outbox:
        outbox.close()
    for ingest in ingests:
        ingest.stop()


def test_a_case_goes_through_tls_from_the_kiosk_link_to_the_ingest_and_is_acked(tls_broker, test_pki,
                                                                              tmp_path):
    from tests.centre import centre_config
    from dashboard.ingest import Ingest
    from dashboard.store import Store

    cfg = centre_config(tmp_path / "centre", test_pki.ingest_broker(tls_broker))
    ingest = Ingest(cfg).start()
    outbox = link = None
    try:
        assert ingest.wait_ready(15), "the ingest did not connect and subscribe over TLS"
        outbox = Outbox(tmp_path / "kiosk" / "data")
        settings = BrokerSettings.model_validate(
            test_pki.kiosk_broker(tls_broker, "kiosk-a", reconnect_min_s=0.2, reconnect_max_s=1.0))
        assert settings.tls
        link = Link(settings, SITE, "kiosk-a", outbox).start()
        cid, jpeg = submit_case(outbox, 1)
        link.wake()
        wait_delivered(outbox, [cid], link)
        assert link.connected and link.stats.delivered == 1
        # Delivered: the kiosk deletes the (sealed) image files and forgets the header.
        deadline = time.monotonic() + 10
        while outbox.get(cid).state != "purged" or any(outbox.images_dir.iterdir()):
            assert time.monotonic() < deadline, "delivered case not purged"
            time.sleep(0.05)
        stored = Store(cfg.storage.database, cfg.storage.images_dir, cfg.storage.quarantine_dir).load_case(cid)
        assert stored is not None
        got_header, images = stored
        assert images == [jpeg] and got_header.referral_ref == "TLS-REF-1"
        # The ingest announced itself through the ACL; stopping it tells the kiosk to hold its cases.
        assert link.stats.centre == "online"
        ingest.stop()
        wait_holding(link)
    finally:
        stop_all(link, outbox, ingest)


def test_kiosk_config_refuses_a_certificate_for_another_device(tmp_path, test_pki):
    from edge.config import ConfigError, load

    cert, key = test_pki.kiosk("kiosk-b")
    path = tmp_path / "kiosk.toml"
    path.write_text(f'device_id = "kiosk-a"\nsite = "{SITE}"\nmodel_dir = "{Path(__file__).parents[1] / "models/lesion"}"\n'
                    f'[broker]\nurl = "mqtts://127.0.0.1:8883"\nca_file = "{test_pki.ca}"\n'
                    f'cert_file = "{cert}"\nkey_file = "{key}"\n')
    with pytest.raises(ConfigError, match="certificate is for 'kiosk-b', not for device_id 'kiosk-a'"):
        load(path)
    path.write_text(path.read_text().replace('device_id = "kiosk-a"', 'device_id = "kiosk-b"'))
    assert load(path).device_id == "kiosk-b"


def test_two_ingest_processes_share_the_cases_and_either_keeps_the_centre_online(tls_broker, test_pki, tmp_path):
    """Ingest 1 (certificate ``ingest``) and 2 (``ingest-2``): one store, the cases split, none twice."""
    from tests.centre import centre_config
    from dashboard.config import ingest_instance
    from dashboard.ingest import Ingest
    from dashboard.store import Store

    first = centre_config(tmp_path / "centre", test_pki.ingest_broker(tls_broker))
    second = ingest_instance(first, 2)
    assert second.broker.cert_file == test_pki.pki.paths("ingest-2")[0]
    ingests = [Ingest(first).start(), Ingest(second).start()]
    outbox = link = None
    try:
        assert all(i.wait_ready(15) for i in ingests), "an ingest did not connect and subscribe over TLS"
        outbox = Outbox(tmp_path / "kiosk" / "data")
        settings = BrokerSettings.model_validate(
            test_pki.kiosk_broker(tls_broker, "kiosk-a", reconnect_min_s=0.2, reconnect_max_s=1.0))
        link = Link(settings, SITE, "kiosk-a", outbox).start()
        ids = [submit_case(outbox, n)[0] for n in range(12)]
        link.wake()
        wait_delivered(outbox, ids, link)
        stored = [i.stats["stored"] for i in ingests]
        assert sum(stored) == 12 and min(stored) > 0, f"the broker did not share the cases: {stored}"
        # Ingest 1 restarts: ingest 2 still says online, the kiosk goes on sending. Ingest 2 stores its
        # share at once; the broker keeps ingest 1's share for its session, which gets it on return.
        ingests[0].stop()
        time.sleep(1.0)
        assert link.stats.centre == "online" and not link.holding
        more = [submit_case(outbox, n)[0] for n in range(100, 104)]
        link.wake()
        deadline = time.monotonic() + 10
        while ingests[1].stats["stored"] == stored[1]:
            assert time.monotonic() < deadline, f"ingest 2 did not take its share: {ingests[1].stats}"
            time.sleep(0.05)
        time.sleep(1.0)
        waiting = [cid for cid in more if outbox.get(cid).state not in ("delivered", "purged")]
        assert waiting and ingests[1].stats["stored"] - stored[1] == 4 - len(waiting)
        ingests[0] = Ingest(first).start()
        wait_delivered(outbox, more, link)
        assert ingests[0].stats["stored"] == len(waiting)
        # Ingest 1 retires: once its session is ended the broker gives every case to ingest 2.
        ingests[0].stop()
        assert Ingest(first).end_session()
        last = [submit_case(outbox, n)[0] for n in range(200, 204)]
        before = ingests[1].stats["stored"]
        link.wake()
        wait_delivered(outbox, last, link, timeout=10)
        assert ingests[1].stats["stored"] == before + 4
        store = Store(first.storage.database, first.storage.images_dir, first.storage.quarantine_dir)
        try:
            assert store.count_cases() == 20
        finally:
            store.close()
        ingests[1].stop()  # the last one: now the kiosk holds its cases
        wait_holding(link)
    finally:
        stop_all(link, outbox, *ingests)
