"""A full disk under the centre's data folder: cases wait unacknowledged, nothing half-stored, then recover.

The data folder is a real, small tmpfs that the test mounts (root only; skipped
where mounting is not allowed) and fills with a filler file.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

import pytest

from dashboard import sample
from dashboard.fleet import centre_disks, ingest_states
from dashboard.ingest import Ingest
from dashboard.store import Store
from edge.link import BrokerSettings, Link
from edge.outbox import Outbox
from tests.smallfs import fill, mounted_tmpfs
from tests.test_ingest import Kiosk, centre_config, retained_presence, wait_for
from tests.test_outbox import jpeg, make_case
from wire import codec


@pytest.fixture
def small_fs(tmp_path):
    with mounted_tmpfs(tmp_path / "data", "4m") as mnt:
        yield mnt



def test_full_disk_keeps_cases_unacked_then_recovers(broker, small_fs, tmp_path):
    cfg = centre_config(broker, small_fs)
    ingest = Ingest(cfg).start()
    assert ingest.wait_ready(10)
    kiosk = Kiosk(broker)
    try:
        warm, warm_frame = sample.make_frame(40)
        kiosk.publish(warm_frame)
        assert kiosk.ack().status == "stored"

        fill(small_fs / "filler")
        header, images = sample.make_case(41, images=[sample.make_jpeg_of_size(300_000, seed=s) for s in (1, 2)])
        kiosk.publish(codec.encode_case(header, images))
        assert wait_for(lambda: ingest.stats["storage-errors"] >= 2, timeout=10)
        assert kiosk.no_ack(0.5), "a case was acknowledged although the disk is full"
        assert ingest._worker.is_alive()

        os.unlink(small_fs / "filler")  # space returns
        ack = kiosk.ack(timeout=15)
        assert (ack.case_id, ack.status) == (header.case_id, "stored")
        store = Store(small_fs / "centre.db", small_fs / "images", small_fs / "quarantine")
        back, data = store.load_case(header.case_id)
        assert back == header and data == images
        assert store.count_cases() == 2
        assert not list((small_fs / "images").rglob(".tmp-*")), "temp files left behind"
        store.close()
    finally:
        kiosk.close()
        ingest.stop()
    time.sleep(0.1)


def images_on(volume, cfg):
    """``cfg`` with its image folder on ``volume`` (its own file system) and the rest where it was."""
    return cfg.model_copy(update={"storage": cfg.storage.model_copy(update={"images_dir": volume / "images"})})


def test_a_full_image_disk_is_reported_on_the_fleet_page_then_clears(broker, small_fs, tmp_path):
    """Images on their own volume, which fills; the database elsewhere: the ingest's beat says why nothing
    is stored and since when, the dashboard sees the full disk itself, and both clear when space returns."""
    cfg = images_on(small_fs, centre_config(broker, tmp_path))
    ingest = Ingest(cfg).start()
    assert ingest.wait_ready(10)
    kiosk = Kiosk(broker)
    store = Store(cfg.storage.database, cfg.storage.images_dir)

    def beat() -> dict:
        [b] = ingest_states(store, datetime.now(timezone.utc))
        return b

    try:
        kiosk.publish(sample.make_frame(50)[1])
        assert kiosk.ack().status == "stored"
        assert beat()["state"] == "running" and beat()["problem"] is None
        fill(small_fs / "filler")
        header, images = sample.make_case(51, images=[sample.make_jpeg_of_size(300_000, seed=s) for s in (3, 4)])
        kiosk.publish(codec.encode_case(header, images))
        assert wait_for(lambda: beat()["state"] == "blocked", timeout=10)
        first = beat()
        assert first["problem"] == "storage unavailable: No space left on device (OSError)"
        assert wait_for(lambda: ingest.stats["storage-errors"] >= 3, timeout=10)
        assert beat()["problem_since"] == first["problem_since"], "each retry keeps the problem's start"
        assert kiosk.no_ack(0.3)
        assert wait_for(lambda: retained_presence(broker, cfg.broker.client_id).state == "offline", timeout=5), \
            "the kiosks are told to hold their cases"
        images_disk, db_disk = centre_disks({"images": cfg.storage.images_dir, "database": tmp_path}, 90.0)
        assert images_disk["labels"] == ["images"] and images_disk["alert"] and images_disk["free"] < 64 * 1024
        assert db_disk["labels"] == ["database"]

        os.unlink(small_fs / "filler")  # space returns
        ack = kiosk.ack(timeout=15)
        assert (ack.case_id, ack.status) == (header.case_id, "stored")
        assert wait_for(lambda: beat()["state"] == "running", timeout=5)
        assert beat()["problem"] is None and beat()["problem_since"] is None
        assert ingest.problem is None
        assert wait_for(lambda: retained_presence(broker, cfg.broker.client_id).state == "online", timeout=5)
    finally:
        store.close()
        kiosk.close()
        ingest.stop()


def test_kiosks_hold_their_cases_while_the_centre_cannot_store_then_all_arrive_once(broker, small_fs, tmp_path):
    """A real kiosk link (ack timeout 1 s) and an ingest whose image disk is full: the ingest says it is
    offline, so the kiosk neither resends its unacknowledged case nor sends new ones (copies the broker
    would queue); once space returns every case arrives, once."""
    cfg = images_on(small_fs, centre_config(broker, tmp_path))
    ingest = Ingest(cfg).start()
    assert ingest.wait_ready(10)
    outbox = Outbox(tmp_path / "kiosk")
    link = Link(BrokerSettings(url=broker.url, reconnect_min_s=0.1, reconnect_max_s=0.5, ack_timeout_s=1),
                "site-a", "kiosk-1", outbox).start()
    store = Store(cfg.storage.database, cfg.storage.images_dir)
    try:
        assert wait_for(lambda: link.connected and link.stats.centre == "online", timeout=10)
        fill(small_fs / "filler")
        first = outbox.submit(make_case([jpeg(1)]), [jpeg(1)]).case_id
        link.wake()
        assert wait_for(lambda: link.holding, timeout=10), "the kiosk sees the centre offline"
        published = link.stats.published
        later = [outbox.submit(make_case([jpeg(i)]), [jpeg(i)]).case_id for i in (2, 3)]
        link.wake()
        time.sleep(3.5)  # 1 + 2 s of ack timeouts: a kiosk told nothing would have resent twice by now
        assert link.stats.published == published, "published while the centre could not store"
        assert outbox.counts()["queued"] == 2 and store.count_cases() == 0

        os.unlink(small_fs / "filler")  # space returns: the held case is stored, then the others are sent
        assert wait_for(lambda: outbox.counts()["purged"] == 3, timeout=30), outbox.counts()
        assert {str(c["case_id"]) for c in store.list_cases()} == {str(first), *map(str, later)}
        assert store.count_cases() == 3 and ingest.stats["stored"] == 3 and ingest.stats["duplicate"] == 0
        assert link.stats.centre == "online"
    finally:
        store.close()
        link.stop()
        outbox.close()
        ingest.stop()
