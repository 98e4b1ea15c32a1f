"""wire.sending.Client against a real Mosquitto: every byte arrives when the socket takes a packet piece by piece,
and no piece is a copy of what is left (paho's own client slices the packet anew at every partial write)."""

from __future__ import annotations

import os

import paho.mqtt.client as mqtt

from edge.link import Link
from tests.link_kit import DEVICE, SITE, settings
from tests.test_receive import Recorder, publish_set, publisher_for
from wire import sending


def piecewise(client: sending.Client, most: int) -> list:
    """Make the client's socket take at most ``most`` bytes per send (as a full send buffer does); return the
    list that records what each send was given."""
    given = []
    real = client._sock_send

    def send(buf):
        given.append(buf)
        return real(buf[:most])

    client._sock_send = send
    return given


def test_paho_internal_that_it_needs_is_there():
    # Should a paho upgrade remove it, the client silently becomes paho's own: catch that here.
    assert sending.LEAN


def test_every_byte_arrives_written_in_pieces_none_of_them_a_copy(broker):
    stock = Recorder(mqtt.Client, broker, "stock-sub")
    pub = publisher_for(broker, cls=sending.Client)
    given = piecewise(pub, 65_536)
    try:
        stock.subscribe("s/#")
        sent = publish_set(pub, "s/x")  # 0 B to 3 MB, QoS 0 and 1, with properties
        stock.wait_for(len(sent))
        assert [p for _, p, *_ in stock.got] == sent
        big = [g for g in given if len(g) > 65_536]
        assert len(big) > 3_000_000 // 65_536, "the large packets were not written in pieces"
        assert all(isinstance(g, memoryview) for g in given), {type(g) for g in given}
    finally:
        pub.loop_stop()
        pub.disconnect()
        stock.close()


def test_over_tls_with_a_kiosks_certificate(tls_broker, test_pki):
    kiosk = test_pki.kiosk_broker(tls_broker, "kiosk-a")
    ingest = test_pki.ingest_broker(tls_broker)
    sub = Recorder(mqtt.Client, tls_broker, "ingest", tls=ingest)
    pub = publisher_for(tls_broker, kiosk, cls=sending.Client)
    given = piecewise(pub, 16_384)
    try:
        sub.subscribe("dermkiosk/v1/+/+/case")
        from tests.tls_kit import SITE as TLS_SITE

        sent = [os.urandom(n) for n in (5, 1_500_000, 4_000_000)]
        # generous waits: what is tested is how the bytes go (in pieces, whole), not how fast; a loaded CI machine
        # once took over 20 s to hand 5.5 MB of TLS through the broker to the subscriber
        for payload in sent:
            info = pub.publish(f"dermkiosk/v1/{TLS_SITE}/kiosk-a/case", payload, qos=1)
            info.wait_for_publish(60)
            assert info.is_published(), f"{len(payload)} bytes not acknowledged in 60 s"
        sub.wait_for(len(sent), timeout=90.0)
        assert [p for _, p, *_ in sub.got] == sent
        assert all(isinstance(g, memoryview) for g in given) and len(given) > 5_500_000 // 16_384
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.close()


def test_the_kiosk_link_sends_with_it(broker, tmp_path):
    from edge.outbox import Outbox

    outbox = Outbox(tmp_path / "kiosk")
    try:
        assert isinstance(Link(settings(broker), SITE, DEVICE, outbox)._new_client(), sending.Client)
    finally:
        outbox.close()
