"""Link against a real Mosquitto: QoS 1 publishing from the outbox, acks, window, resume, status."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.link import BrokerSettings, Link, backoff_delay
from edge.outbox import Outbox
from tests.broker import retained
from tests.polling import wait_for
from tests.test_outbox import jpeg, make_case
from wire import topics
from wire.codec import decode_case
from wire.messages import Ack, Acks, CentreStatus, Status

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
        with self.lock:
            return [cid for _, cid in self.received]

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def settings(broker, **kw) -> BrokerSettings:
    return BrokerSettings(url=broker.url, reconnect_min_s=0.1, reconnect_max_s=0.5, **kw)


def submit(ob: Outbox, n: int, start: int = 0) -> list[str]:
    return [str(ob.submit(make_case([jpeg(start + i)]), [jpeg(start + i)]).case_id) for i in range(n)]


@pytest.fixture
def outbox(tmp_path):
    ob = Outbox(tmp_path / "kiosk")
    yield ob
    ob.close()


def test_publishes_in_order_and_deletes_only_on_ack(broker, outbox):
    centre = FakeCentre(broker)
    ids = submit(outbox, 6)
    link = Link(settings(broker), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: outbox.counts()["purged"] == 6 and not list(outbox.images_dir.iterdir()),
                 what="all cases delivered and purged")
        assert centre.ids()[:6] == ids                       # seq order
        assert [s for s, _ in centre.received][:6] == sorted(s for s, _ in centre.received[:6])
        assert outbox.counts()["purged"] == 6 and list(outbox.images_dir.iterdir()) == []
        assert link.stats.delivered == 6
        more = submit(outbox, 2, start=100)
        link.wake()
        wait_for(lambda: outbox.queue_depth() == 0, what="new cases delivered")
        assert centre.ids()[-2:] == more
    finally:
        link.stop()
        centre.close()


def test_window_bounds_cases_in_flight_and_nothing_is_deleted_without_ack(broker, outbox):
    centre = FakeCentre(broker, ack=False)
    ids = submit(outbox, 10)
    link = Link(settings(broker, max_inflight=3), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: outbox.counts()["sent"] == 3, what="three PUBACKs")
        time.sleep(1.0)
        assert sorted(set(centre.ids())) == sorted(ids[:3])  # never more than the window
        c = outbox.counts()
        assert c["sent"] == 3 and c["queued"] == 7 and c["purged"] == 0
        assert len(list(outbox.images_dir.iterdir())) == 10  # PUBACK deletes nothing
        centre.ack = True
        # the three unacked ones come again on the ack timeout; here we ack them by hand, in one batch
        batch = Acks(acks=[Ack(case_id=uuid.UUID(cid), status="stored", received_at=datetime.now(timezone.utc))
                           for cid in ids[:3]])
        centre.c.publish(topics.topic(SITE, DEVICE, "ack"), batch.model_dump_json(), qos=1)
        wait_for(lambda: outbox.queue_depth() == 0, what="drain after acks")
        assert centre.ids()[3:10] == ids[3:]
    finally:
        link.stop()
        centre.close()


def test_window_is_bounded_in_bytes_too(broker, outbox):
    """Large cases: fewer in flight (what the broker holds for the ingest), and one always goes."""
    centre = FakeCentre(broker, ack=False)
    images = [jpeg(500 + i, size=160) for i in range(6)]          # noise JPEGs of ~24 KB each
    ids = [str(outbox.submit(make_case([im]), [im]).case_id) for im in images]
    sizes = [len(outbox.payload(cid)) for cid in ids]
    expected = 0                                                  # published until the bytes reach the cap
    while sum(sizes[:expected]) < 64 * 1024:
        expected += 1
    assert 1 < expected < len(ids)
    link = Link(settings(broker, max_inflight_bytes=64 * 1024), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: outbox.counts()["sent"] == expected, what=f"{expected} cases in flight")
        time.sleep(1.0)
        assert sorted(set(centre.ids())) == sorted(ids[:expected]) and link.stats.inflight == expected
        batch = Acks(acks=[Ack(case_id=uuid.UUID(cid), status="stored", received_at=datetime.now(timezone.utc))
                           for cid in ids[:expected]])
        centre.c.publish(topics.topic(SITE, DEVICE, "ack"), batch.model_dump_json(), qos=1)
        centre.ack = True
        wait_for(lambda: outbox.queue_depth() == 0, what="the rest, a window at a time")
        assert [cid for cid in centre.ids() if cid in ids[expected:]][:len(ids) - expected] == ids[expected:]
    finally:
        link.stop()
        centre.close()
    # one case larger than the whole cap still goes
    big = jpeg(900, size=400)
    assert len(big) > 64 * 1024
    [cid] = [str(outbox.submit(make_case([big]), [big]).case_id)]
    centre = FakeCentre(broker)
    link = Link(settings(broker, max_inflight_bytes=64 * 1024), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: outbox.get(cid).state == "purged", what="a case over the byte cap delivered")
    finally:
        link.stop()
        centre.close()


def test_unacked_case_is_resent_after_ack_timeout(broker, outbox):
    centre = FakeCentre(broker, ack=False)
    [cid] = submit(outbox, 1)
    link = Link(settings(broker, ack_timeout_s=1), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: centre.ids().count(cid) >= 2, timeout=10, what="resend after ack timeout")
        assert outbox.get(cid).state == "sent"
        centre.ack = True
        wait_for(lambda: outbox.get(cid).state == "purged", timeout=10, what="delivery after resend")
    finally:
        link.stop()
        centre.close()


def test_kiosk_restart_resumes_sent_but_unacked_in_order(broker, tmp_path):
    centre = FakeCentre(broker, ack=False)
    ob = Outbox(tmp_path / "k")
    ids = submit(ob, 5)
    link = Link(settings(broker, max_inflight=2), SITE, DEVICE, ob).start()
    wait_for(lambda: ob.counts()["sent"] == 2, what="two sent")
    # "sent" is the broker's PUBACK; wait until the centre has really received both before stopping,
    # so that a late delivery cannot land after `before` is counted
    wait_for(lambda: len(centre.ids()) >= 2, what="two received by the centre")
    link.stop()
    ob.close()
    # a new process: same data folder, same client id
    ob = Outbox(tmp_path / "k")
    centre.ack = True
    before = len(centre.ids())
    link = Link(settings(broker, max_inflight=2), SITE, DEVICE, ob).start()
    try:
        wait_for(lambda: ob.queue_depth() == 0, what="drain after restart")
        assert centre.ids()[before:before + 5] == ids        # resumed from the oldest unacked, in order
        assert set(centre.images) == set(ids)
    finally:
        link.stop()
        centre.close()
        ob.close()


def test_broker_restart_mid_flow_everything_arrives(broker, outbox):
    centre = FakeCentre(broker)
    ids = submit(outbox, 30)
    link = Link(settings(broker, max_inflight=4), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: outbox.counts()["purged"] >= 5, what="some delivered")
        broker.restart()
        wait_for(lambda: outbox.queue_depth() == 0, timeout=30, what="drain after broker restart")
        assert set(centre.images) == set(ids)
        assert link.stats.connects >= 2
        # first arrival of each case follows seq order
        first = list(dict.fromkeys(centre.ids()))
        assert first == ids
        assert (broker.workdir / "mosquitto.db").exists()   # the broker really persisted
    finally:
        link.stop()
        centre.close()


def test_case_dropped_for_want_of_a_subscriber_is_retried_soon(broker, outbox):
    [cid] = submit(outbox, 1)
    link = Link(settings(broker), SITE, DEVICE, outbox).start()   # ack timeout stays at 60 s
    try:
        wait_for(lambda: outbox.get(cid).state == "sent", what="PUBACK (no matching subscribers)")
        centre = FakeCentre(broker, client_id="late-centre")
        wait_for(lambda: outbox.get(cid).state == "purged", timeout=10, what="retry well before 60 s")
        assert cid in centre.images
        centre.close()
    finally:
        link.stop()


def test_broker_down_at_start_then_up(tmp_path):
    from tests.broker import Broker

    b = Broker(tmp_path / "late")
    ob = Outbox(tmp_path / "k")
    ids = submit(ob, 3)
    link = Link(settings(b), SITE, DEVICE, ob).start()
    try:
        time.sleep(0.8)
        assert not link.connected and "cannot connect" in link.stats.last_error
        b.start()
        centre = FakeCentre(b)
        wait_for(lambda: ob.queue_depth() == 0, timeout=20, what="delivery once the broker is up")
        assert set(centre.images) == set(ids)
        centre.close()
    finally:
        link.stop()
        ob.close()
        b.stop()


def test_oversized_case_is_refused_with_a_reason_and_others_flow(broker, outbox):
    centre = FakeCentre(broker)
    big = jpeg(7, size=400)
    assert len(big) > 70_000
    big_id = str(outbox.submit(make_case([big]), [big]).case_id)
    small_ids = submit(outbox, 2, start=50)
    link = Link(settings(broker, message_size_limit=64 * 1024), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: outbox.queue_depth() == 0, what="small cases delivered")
        case = outbox.get(big_id)
        assert case.state == "rejected" and "message size limit" in case.reason
        assert big_id not in centre.images and set(small_ids) <= set(centre.images)
        assert outbox.image_path(make_case([big]).images[0].sha256).exists()   # kept for IT
    finally:
        link.stop()
        centre.close()


def test_centre_rejection_parks_the_case_with_its_reason(broker, outbox):
    ids = submit(outbox, 2)
    centre = FakeCentre(broker, reject={ids[0]})
    link = Link(settings(broker), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: outbox.queue_depth() == 0 and outbox.counts()["delivered"] == 0, what="both answered")
        assert outbox.get(ids[0]).state == "rejected" and "test says no" in outbox.get(ids[0]).reason
        assert outbox.get(ids[1]).state == "purged"
    finally:
        link.stop()
        centre.close()


def announce(broker, state: str | None, client_id: str = "fake-centre") -> None:
    """Publish (retained) what the centre's ingest says of itself; None clears it (that ingest is gone)."""
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(broker.host, broker.port)
    c.loop_start()
    payload = "" if state is None else CentreStatus(client_id=client_id, state=state).model_dump_json()
    c.publish(topics.centre(client_id), payload, qos=1, retain=True).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


def test_centre_offline_holds_cases_in_the_outbox_and_its_return_sends_them(broker, outbox):
    """While the centre says it is offline nothing is published or resent (the broker would pile up
    copies for it); when it is back, the held cases go out and every one is delivered."""
    centre = FakeCentre(broker, ack=False)
    announce(broker, "online")
    link = Link(settings(broker, ack_timeout_s=1, max_inflight=3), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: link.connected and link.stats.centre == "online", what="centre online")
        first = submit(outbox, 2)
        link.wake()
        wait_for(lambda: set(centre.ids()) == set(first), what="two cases published, not acked")
        announce(broker, "offline")
        wait_for(lambda: link.holding, what="the link sees the centre offline")
        seen = len(centre.ids())
        held = submit(outbox, 4, start=10)
        link.wake()
        time.sleep(3.5)                   # 1 + 2 s of ack timeouts: a link that ignored presence resends
        assert len(centre.ids()) == seen, "published while the centre was offline"
        c = outbox.counts()
        assert c["queued"] == 4 and c["sent"] == 2 and c["purged"] == 0
        centre.ack = True
        announce(broker, "online")
        wait_for(lambda: outbox.counts()["purged"] == 6, what="everything delivered once the centre is back")
        assert set(centre.ids()) == set(first + held)
        assert [cid for cid in centre.ids() if cid in held] == held      # in order
        assert link.stats.centre == "online"
    finally:
        link.stop()
        centre.close()
        announce(broker, None)


def test_a_kiosk_that_starts_while_the_centre_is_offline_publishes_nothing(broker, outbox):
    """The retained presence follows the SUBACK: the link waits for it before its first publish."""
    centre = FakeCentre(broker)
    announce(broker, "offline")
    ids = submit(outbox, 3)
    link = Link(settings(broker), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: link.holding, what="the retained offline presence")
        time.sleep(0.5)
        assert centre.ids() == [] and link.stats.published == 0 and outbox.counts()["queued"] == 3
        announce(broker, "online")
        wait_for(lambda: outbox.counts()["purged"] == 3, what="sent once the centre is back")
        assert centre.ids() == ids
    finally:
        link.stop()
        centre.close()
        announce(broker, None)


def test_centre_presence_of_several_ingests_and_bad_messages(broker, outbox):
    """Online if any ingest is online; unknown once every announcement is cleared; junk is ignored."""
    link = Link(settings(broker), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: link.connected, what="connect")
        assert link.stats.centre == "unknown" and not link.holding
        announce(broker, "online", "ingest-a")
        announce(broker, "offline", "ingest-b")
        wait_for(lambda: link.stats.centre == "online", what="one of two ingests online")
        announce(broker, "offline", "ingest-a")
        wait_for(lambda: link.stats.centre == "offline", what="both offline")
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.connect(broker.host, broker.port)
        c.loop_start()
        c.publish(topics.centre("ingest-c"), b"{not json", qos=1).wait_for_publish(5)
        c.disconnect()
        c.loop_stop()
        time.sleep(0.3)
        assert link.stats.centre == "offline" and link.connected
        announce(broker, None, "ingest-a")
        announce(broker, None, "ingest-b")
        wait_for(lambda: link.stats.centre == "unknown", what="no ingest announced any more")
    finally:
        link.stop()
        for cid in ("ingest-a", "ingest-b"):
            announce(broker, None, cid)


def _retained_status(broker) -> Status:
    return Status.model_validate_json(retained(broker, topics.topic(SITE, DEVICE, "status")))


def test_status_online_retained_and_offline_on_stop(broker, outbox):
    link = Link(settings(broker), SITE, DEVICE, outbox, software_version="sw", model_version="m1").start()
    wait_for(lambda: link.connected, what="connect")
    time.sleep(0.2)
    st = _retained_status(broker)
    assert st.state == "online" and st.device_id == DEVICE and st.model_version == "m1"
    link.stop()
    assert _retained_status(broker).state == "offline"


_KIOSK_SCRIPT = """
import sys, time
from edge.link import BrokerSettings, Link
from edge.outbox import Outbox
link = Link(BrokerSettings(url=sys.argv[1]), "site-a", "kiosk-1", Outbox(sys.argv[2])).start()
while not link.connected:
    time.sleep(0.02)
print("up", flush=True)
time.sleep(60)
"""


def test_last_will_offline_when_the_kiosk_dies(broker, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _KIOSK_SCRIPT, broker.url, str(tmp_path / "k")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        time.sleep(0.2)
        assert _retained_status(broker).state == "online"
        proc.kill()
        proc.wait()
        wait_for(lambda: _retained_status(broker).state == "offline", timeout=10, what="last will")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_session_persists_so_acks_sent_while_away_are_received(broker, outbox):
    """clean_start=False + session expiry + fixed client id: the broker queues our acks while we are away."""
    [cid] = submit(outbox, 1)
    link = Link(settings(broker, session_expiry=600), SITE, DEVICE, outbox).start()
    wait_for(lambda: outbox.get(cid).state == "sent", what="published")
    link.stop()
    assert link._new_client()._client_id == DEVICE.encode()
    # the centre acks while the kiosk is offline
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="acker", protocol=mqtt.MQTTv5)
    c.connect(broker.host, broker.port)
    c.loop_start()
    ack = Ack(case_id=uuid.UUID(cid), status="stored", received_at=datetime.now(timezone.utc))
    c.publish(topics.topic(SITE, DEVICE, "ack"), ack.model_dump_json(), qos=1).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()
    assert outbox.get(cid).state == "sent"
    link = Link(settings(broker, session_expiry=600), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: outbox.get(cid).state == "purged", timeout=5, what="queued ack delivered on resume")
    finally:
        link.stop()


def test_backoff_has_jitter_and_a_ceiling():
    import random

    rng = random.Random(1)
    delays = [backoff_delay(a, 0.5, 30, rng) for a in range(12)]
    assert all(0.25 <= d <= 30 for d in delays) and max(delays) > 10
    assert len({round(backoff_delay(3, 0.5, 30, rng), 6) for _ in range(20)}) > 10   # jittered


@pytest.mark.parametrize("url,problem", [
    ("http://x", "mqtt://"), ("mqtt://", "host"), ("mqtt://h:99999", "port"), ("mqtt://h/path", "path"),
])
def test_bad_broker_urls(url, problem):
    with pytest.raises(ValueError, match=problem):
        BrokerSettings(url=url)


def test_tls_files_need_mqtts_and_pairs():
    with pytest.raises(ValueError, match="mqtts"):
        BrokerSettings(url="mqtt://h", ca_file="/x/ca.pem")
    with pytest.raises(ValueError, match="both cert_file and key_file"):
        BrokerSettings(url="mqtts://h", cert_file="/x/c.pem")
    b = BrokerSettings(url="mqtts://h", ca_file="/x/ca.pem", cert_file="/c", key_file="/k")
    assert b.tls and b.port == 8883 and b.host == "h"


def test_outbox_failure_while_recording_an_ack_is_survived(broker, outbox, monkeypatch):
    """A failing outbox write (disk full) in a callback drops the connection, not the link thread."""
    import sqlite3

    centre = FakeCentre(broker)
    real = outbox.record_acks
    calls = []

    def flaky(acks):
        calls.append(acks)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real(acks)

    monkeypatch.setattr(outbox, "record_acks", flaky)
    ids = submit(outbox, 3)
    link = Link(settings(broker), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: outbox.counts()["purged"] == 3, timeout=20, what="delivery despite the failure")
        assert link.stats.connects >= 2 and link._thread.is_alive()
        assert {outbox.get(i).state for i in ids} == {"purged"}
    finally:
        link.stop()
        centre.close()


def test_case_with_a_missing_image_file_is_parked_and_the_rest_flow(broker, outbox):
    centre = FakeCentre(broker)
    imgs = [jpeg(900)]
    broken = str(outbox.submit(make_case(imgs), imgs).case_id)
    outbox.image_path(make_case(imgs).images[0].sha256).unlink()
    ok = submit(outbox, 2, start=901)
    link = Link(settings(broker), SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: outbox.queue_depth() == 0, what="the rest delivered")
        assert outbox.get(broken).state == "rejected" and "missing" in outbox.get(broken).reason
        assert set(ok) <= set(centre.images) and broken not in centre.images
    finally:
        link.stop()
        centre.close()


def test_unreadable_tls_files_keep_the_link_retrying_with_a_reason(tmp_path, outbox):
    b = BrokerSettings(url="mqtts://127.0.0.1:1", ca_file=tmp_path / "gone.pem", reconnect_min_s=0.1,
                       reconnect_max_s=0.2)
    link = Link(b, SITE, DEVICE, outbox).start()
    try:
        wait_for(lambda: "cannot connect" in link.stats.last_error, timeout=5, what="a reason")
        time.sleep(0.5)
        assert link._thread.is_alive() and not link.connected
    finally:
        link.stop()
