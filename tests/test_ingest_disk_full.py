"""A full disk under the centre's data folder: cases wait unacknowledged, nothing half-stored, then recover.

The data folder is a real, small tmpfs that the test mounts (root only; skipped
where mounting is not allowed) and fills with a filler file.
"""

from __future__ import annotations

import os
import time

import pytest

from dashboard import sample
from dashboard.ingest import Ingest
from dashboard.store import Store
from tests.smallfs import fill, mounted_tmpfs
from tests.test_ingest import Kiosk, centre_config, wait_for
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
