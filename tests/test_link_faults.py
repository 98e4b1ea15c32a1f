"""Link settings that are wrong and faults the link survives: backoff, bad URLs and TLS files, a failing outbox, a missing image."""

from __future__ import annotations

import time

import pytest

from edge.link import BrokerSettings, Link, backoff_delay
from tests.link_kit import DEVICE, SITE, FakeCentre, outbox, settings, submit  # noqa: F401 (outbox: a fixture)
from tests.polling import wait_for
from tests.test_outbox import jpeg, make_case


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
