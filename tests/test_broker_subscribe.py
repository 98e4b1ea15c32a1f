"""Issue 25: one kiosk cannot harm another by subscribing. Real Mosquitto with the repository's
config and access rules (dynamic-security plugin), real certificates from ``dashboard.pki``, paho
MQTT 5: a kiosk's SUBSCRIBE to anything but its own acks and updates and the centre's presence is
refused in the SUBACK (reason code >= 0x80), so it can no longer join the ingest's shared
subscription and take a share of every kiosk's cases; the ingest still gets them all."""

from __future__ import annotations

import time

from tests.tls_kit import Client, clients, ingest_client, kiosk, t  # noqa: F401  (clients: fixture)
from wire import topics

SHARED_CASES = topics.subscription(topics.CASE, topics.INGEST_SHARE_GROUP)   # $share/ingest/dermkiosk/v1/+/+/case


def reason_codes(c: Client, *filters: str) -> list[int]:
    """SUBSCRIBE ``filters`` with MQTT 5 and return the SUBACK's numeric reason codes."""
    got: list = []
    c.c.on_subscribe = lambda cl, u, mid, rcs, p: got.append([r.value for r in rcs])
    c.c.subscribe([(f, 1) for f in filters])
    deadline = time.monotonic() + 5
    while not got:
        assert time.monotonic() < deadline, "no SUBACK"
        time.sleep(0.01)
    return got[0]


def test_a_kiosk_cannot_join_the_ingests_shared_subscription_or_subscribe_to_everything(
        tls_broker, test_pki, clients):
    rogue = kiosk(tls_broker, test_pki, clients, "kiosk-b")       # a second, valid kiosk certificate
    assert rogue.wait_connected()
    refused = [SHARED_CASES, "#", "dermkiosk/#", "$share/x/#", topics.subscription(topics.CASE),
               topics.subscription(topics.STATUS), topics.subscription(topics.HEALTH),
               t("kiosk-a", "ack"), t("kiosk-a", "update"), "$SYS/#", "$CONTROL/dynamic-security/#"]
    codes = reason_codes(rogue, *refused)
    assert codes == [0x87] * len(refused), dict(zip(refused, codes))           # 0x87 Not authorized
    assert all(c >= 0x80 for c in codes)
    # Its own topics and the centre's presence are still granted.
    assert reason_codes(rogue, t("kiosk-b", "ack"), t("kiosk-b", "update"), topics.CENTRE_SUBSCRIPTION) == [1, 1, 1]


def test_the_ingest_gets_every_case_while_a_kiosk_tries_to_take_a_share(tls_broker, test_pki, clients):
    centre = ingest_client(tls_broker, test_pki, clients)
    assert centre.subscribe(SHARED_CASES) == ["Granted QoS 1"]
    rogue = kiosk(tls_broker, test_pki, clients, "kiosk-b")
    assert rogue.wait_connected()
    assert reason_codes(rogue, SHARED_CASES)[0] >= 0x80
    a = kiosk(tls_broker, test_pki, clients, "kiosk-a")
    assert a.wait_connected()
    sent = [f"case {n}".encode() for n in range(6)]
    for payload in sent:
        assert a.publish(t("kiosk-a", "case"), payload) == "Success"
    deadline = time.monotonic() + 5          # at once: with a rogue share, half waited for resends
    while len(centre.messages) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p for _, p in centre.messages] == sent
    assert rogue.messages == []


def test_a_valid_certificate_of_an_unregistered_kiosk_may_do_nothing(tls_broker, test_pki, clients):
    """Rights come from the broker's registration, not from holding a certificate of our CA."""
    cert, key = test_pki.pki.issue_kiosk("kiosk-unlisted")       # issued, never registered at this broker
    try:
        c = Client(tls_broker, "kiosk-unlisted", cert, key, test_pki.ca)
        clients.append(c)
        assert c.wait_connected()
        assert reason_codes(c, t("kiosk-unlisted", "ack"), topics.CENTRE_SUBSCRIPTION) == [0x87, 0x87]
        assert c.publish(t("kiosk-unlisted", "case"), b"x") == "Not authorized"
        # Registered (what `pki issue-kiosk --broker` does), the same certificate works at once.
        tls_broker.control().add_kiosk("kiosk-unlisted")
        c2 = Client(tls_broker, "kiosk-unlisted", cert, key, test_pki.ca)
        clients.append(c2)
        assert c2.wait_connected()
        assert reason_codes(c2, t("kiosk-unlisted", "ack")) == [1]
    finally:
        test_pki.pki.revoke("kiosk-unlisted")


def test_a_kiosk_bound_to_its_site_cannot_publish_under_another_hub(tls_broker, test_pki, clients):
    cert, key = test_pki.pki.issue_kiosk("kiosk-sited", site="hub-t")
    try:
        tls_broker.control().add_kiosk("kiosk-sited", "hub-t")
        c = Client(tls_broker, "kiosk-sited", cert, key, test_pki.ca)
        clients.append(c)
        assert c.wait_connected()
        assert c.publish(topics.topic("other-hub", "kiosk-sited", "case"), b"x") == "Not authorized"
        assert c.publish(topics.topic("hub-t", "kiosk-sited", "case"), b"x") in ("Success", "No matching subscribers")
        assert reason_codes(c, topics.topic("other-hub", "kiosk-sited", "ack"),
                            topics.topic("hub-t", "kiosk-sited", "ack")) == [0x87, 1]
    finally:
        test_pki.pki.revoke("kiosk-sited")

