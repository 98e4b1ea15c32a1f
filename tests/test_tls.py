"""The broker's TLS configuration and access rules, against a real Mosquitto running the repository's config.

Every client here presents a certificate made by ``dashboard.pki`` (session fixture
``test_pki``). A kiosk may publish only on its own case/status/health topics and read (and
subscribe to) only its own acks and updates and the centre's presence; unknown, revoked and
missing certificates and plain TCP are refused. A whole case through TLS: test_tls_delivery.py.
"""

from __future__ import annotations

import socket
import time

import pytest

from wire import topics
from wire.messages import CentreStatus
from tests.tls_kit import SITE, Client, clients, ingest_client, kiosk, t  # noqa: F401  (clients: fixture)


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
