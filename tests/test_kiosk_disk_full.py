"""Disk full on the kiosk: the page refuses a new case with a clear message, queued cases stay
intact, and once space returns the refused case is saved and every case reaches the centre.

The kiosk's data folder is a real, small tmpfs that the test mounts (root only; skipped with the
reason where mounting is not allowed) and fills with a filler file. Real broker, real ingest.
"""

from __future__ import annotations

import re
import time

import pytest

from edge.service import KioskService
from edge.web import create_app
from tests.smallfs import fill, mounted_tmpfs
from tests.test_kiosk_service import MODEL_DIR, config
from wire.codec import decode_case, sha256_hex

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")


@pytest.fixture
def small_fs(tmp_path):
    """A 6 MiB tmpfs for the kiosk's data folder (needs root)."""
    with mounted_tmpfs(tmp_path / "kioskfs", "6m") as mnt:
        yield mnt



def csrf(page: bytes) -> str:
    return re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1).decode()


def page_case(client, ref: str) -> bytes:
    """Start a case and capture the dermoscopic view through the page; returns the page."""
    token = csrf(client.get("/").data)
    client.post("/case", data={"csrf_token": token, "referral_ref": ref, "lesion_id": "L1",
                               "body_site": "anterior torso"})
    return client.post("/capture/dermoscopic", data={"csrf_token": token}, follow_redirects=True).data


def submit(client) -> bytes:
    token = csrf(client.get("/").data)
    return client.post("/submit", data={"csrf_token": token}, follow_redirects=True).data


def test_full_kiosk_disk_refuses_on_the_page_keeps_the_queue_and_delivers_after(small_fs, broker, tmp_path):
    from tests.centre import centre_config
    from dashboard.ingest import Ingest
    from dashboard.store import Store

    cfg = config(small_fs, broker={"url": broker.url, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
                 camera={"replay": {"width": 640, "height": 480, "seed": 21}},
                 retention={"min_free_mb": 1})
    centre = centre_config(tmp_path / "c", broker, "diskfull-ingest")
    saved = {}
    with KioskService(cfg) as svc:
        client = create_app(svc).test_client()
        for i in range(2):                               # the centre is away: these wait in the queue
            page_case(client, f"REF-DF-{i}")
            html = submit(client).decode()
            seq = int(re.search(r"Case saved \(number (\d+)\)", html).group(1))
            saved[seq] = None
        queued = {c.case_id: decode_case(svc.outbox.payload(c.case_id)) for c in svc.outbox.cases(("queued", "sent"))}
        assert len(queued) == 2

        filler = small_fs / "filler.bin"
        fill(filler)
        page_case(client, "REF-DF-2")
        html = submit(client).decode()
        # a clear refusal on the page, the open case kept to retry, the queue untouched
        assert 'data-category="diskfull"' in html and "Storage is full" in html and "not saved" in html
        assert "Cases already waiting are safe" in html
        assert "Case saved" not in html and svc.draft is not None
        assert "Submit case" in html                      # the photographer can submit again
        for case_id, (header, images) in queued.items():
            back_header, back_images = decode_case(svc.outbox.payload(case_id))
            assert back_header == header and back_images == images
            assert [sha256_hex(b) for b in back_images] == [m.sha256 for m in header.images]
        assert svc.outbox.queue_depth() == 2
        assert svc.status()["free_mb"] == 0
        assert not list(svc.outbox.images_dir.glob(".*.tmp"))

        filler.unlink()                                   # space returns: the same case is saved
        html = submit(client).decode()
        assert "Case saved" in html and 'data-category="diskfull"' not in html
        assert svc.outbox.queue_depth() == 3

        ingest = Ingest(centre).start()                   # the centre comes back: all three delivered
        try:
            assert ingest.wait_ready(15)
            deadline = time.monotonic() + 60
            while svc.outbox.queue_depth() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert svc.outbox.queue_depth() == 0, svc.outbox.counts()
            ids = [c.case_id for c in svc.outbox.cases(("purged",))]
        finally:
            ingest.stop()
    store = Store(centre.storage.database, centre.storage.images_dir)
    try:
        assert store.count_cases() == 3
        for case_id in ids:
            header, images = store.load_case(case_id)
            assert [sha256_hex(b) for b in images] == [m.sha256 for m in header.images]
            if case_id in queued:
                assert images == queued[case_id][1]
    finally:
        store.close()
