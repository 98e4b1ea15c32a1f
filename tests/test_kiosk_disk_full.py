"""Disk full on the kiosk: the page refuses to submit a referral with a clear message, queued cases
stay intact, and once space returns the same referral is saved and every case reaches the centre.

The kiosk's data folder is a real, small tmpfs that the test mounts (root only; skipped with the
reason where mounting is not allowed) and fills with a filler file. Real broker, real ingest.
"""

from __future__ import annotations

import re
import time

import pytest

from edge.service import KioskService
from edge.web import create_app
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, synthetic_nhs_number
from tests.smallfs import fill, mounted_tmpfs
from tests.test_kiosk_service import MODEL_DIR
from wire.codec import decode_case, sha256_hex

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")


@pytest.fixture
def small_fs(tmp_path):
    """A 6 MiB tmpfs for the kiosk's data folder (needs root)."""
    with mounted_tmpfs(tmp_path / "kioskfs", "6m") as mnt:
        yield mnt



class Page:
    """The kiosk pages through Flask's test client, signed in as the test photographer."""

    def __init__(self, client):
        self.client = client
        pin_page = client.get(f"/signin/{PHOTOGRAPHER}").data
        self.token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', pin_page).group(1).decode()
        self.post(f"/signin/{PHOTOGRAPHER}", pin=PIN)

    def post(self, path: str, **data) -> str:
        """POST a form (CSRF token added), following redirects; the page's HTML."""
        r = self.client.post(path, data={"csrf_token": self.token, **data}, follow_redirects=True)
        assert r.status_code in (200, 422), (path, r.status_code)
        m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', r.data.decode())
        if m:                                            # signing in starts a new session, with a new token
            self.token = m.group(1)
        return r.data.decode()

    def referral(self, ref: str) -> None:
        """Open an appointment, enter its details and one lesion, capture its dermoscopic view."""
        self.post("/appointment/open")
        self.post("/appointment/patient", nhs_number=synthetic_nhs_number(), date_of_birth="01021950", sex="male")
        self.post("/appointment/skin", fitzpatrick="II")
        self.post("/appointment/referral", reference=ref, referral_date="01112026", practice_ods="A81001",
                  route="gp-referral")
        self.post("/appointment/consents", photography="yes", ai_analysis="yes", teaching="no")
        self.post("/lesions/new", site="anterior torso", laterality="left")
        self.post("/lesions/1/shoot/dermoscopic")
        self.post("/lesions/1/shoot/dermoscopic/1/override", reason="other", text="test")

    def submit(self) -> str:
        """Submit the open appointment; the page shown after."""
        return self.post("/submit")


def test_full_kiosk_disk_refuses_on_the_page_keeps_the_queue_and_delivers_after(small_fs, broker, tmp_path):
    from tests.centre import centre_config
    from dashboard.ingest import Ingest
    from dashboard.store import Store

    cfg = appointment_config(small_fs, {"required_views": ["dermoscopic"]},
                             broker={"url": broker.url, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
                             camera={"replay": {"width": 640, "height": 480, "seed": 21}},
                             retention={"min_free_mb": 1})
    centre = centre_config(tmp_path / "c", broker, "diskfull-ingest")
    with KioskService(cfg) as svc:
        page = Page(create_app(svc).test_client())
        for i in range(2):                               # the centre is away: these wait in the queue
            page.referral(f"REF-DF-{i}")
            assert "Referral saved" in page.submit()
        queued = {c.case_id: decode_case(svc.outbox.payload(c.case_id)) for c in svc.outbox.cases(("queued", "sent"))}
        assert len(queued) == 2

        page.referral("REF-DF-2")                        # photographed, then the disk fills
        filler = small_fs / "filler.bin"
        fill(filler)
        html = page.submit()
        # a clear refusal on the page, the open appointment kept to retry, the queue untouched
        assert 'data-category="diskfull"' in html and "Storage is full" in html and "not saved" in html
        assert "Cases already waiting are safe" in html
        assert "Referral saved" not in html and svc.desk.current() is not None
        for case_id, (header, images) in queued.items():
            back_header, back_images = decode_case(svc.outbox.payload(case_id))
            assert back_header == header and back_images == images
            assert [sha256_hex(b) for b in back_images] == [m.sha256 for m in header.images]
        assert svc.outbox.queue_depth() == 2
        assert svc.status()["free_mb"] == 0
        assert not list(svc.outbox.images_dir.glob(".*.tmp"))

        filler.unlink()                                   # space returns: the same referral is saved
        html = page.submit()
        assert "Referral saved" in html and 'data-category="diskfull"' not in html
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
