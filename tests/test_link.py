"""Link against a real Mosquitto: QoS 1 publishing from the outbox, acks, the window, resends, restarts."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

from edge.link import Link
from edge.outbox import Outbox
from tests.link_kit import DEVICE, SITE, FakeCentre, outbox, settings, submit  # noqa: F401 (outbox: a fixture)
from tests.polling import wait_for
from tests.test_outbox import jpeg, make_case
from wire import topics
from wire.messages import Ack, Acks


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
