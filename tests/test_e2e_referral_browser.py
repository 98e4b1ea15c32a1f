"""Issue 19 end to end, as people would do it: a photographer walks a two-lesion referral through the real
kiosk page by touch (800x480 and 1280x720), the kiosk sends it over the real broker to the real ingest,
and a dermatologist sees the referral on the real dashboard in Chromium.

Real parts throughout: Mosquitto on a free port, the ingest and its SQLite store, the kiosk service with
its outbox, link, replay camera (the only faked hardware), quality gate and the shipped model, the
dashboard app, Debian's Chromium. Afterwards no patient identifier may be found in an MQTT topic, a log
line of either side, a page URL or a file name on either side. Screenshots: tests/artifacts/.
"""

from __future__ import annotations

import logging
import os
import time

import pytest

from dashboard import create_app
from dashboard.ingest import Ingest
from dashboard.store import Store
from edge.service import KioskService
from edge.web import WebServer
from tests.sniff import sniff
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, synthetic_nhs_number
from tests.centre import centre_config
from tests.dashauth import PASSWORD, make_user
from tests.kiosk_walk import KioskWalk, LesionEntry, PatientEntry
from tests.test_kiosk_service import MODEL_DIR
from tests.web import ARTIFACTS, launch, log_in, playwright_or_skip, serve

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")
playwright_api = playwright_or_skip()

SIZES = {"800x480": {"width": 800, "height": 480}, "1280x720": {"width": 1280, "height": 720}}
PRACTICES = [{"ods": "A81001", "name": "Riverside Surgery"}]
LESIONS = [LesionEntry("front", "arm-left", detail="Forearm", size_mm="6", history=("changed",),
                       checklist=("irregular_shape",)),
           LesionEntry("back", "torso")]
DOB_TEXT = "01021950"   # as typed on the pad; 1 Feb 1950


def file_names(root) -> list[str]:
    """Every file and folder name under ``root``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        out += dirnames + filenames
    return out


@pytest.mark.parametrize("size", list(SIZES))
def test_referral_from_kiosk_page_to_dashboard(broker, tmp_path, caplog, size):
    caplog.set_level(logging.DEBUG)
    nhs = synthetic_nhs_number(3)
    reference = "123456789012"
    sniffer, topics = sniff(broker)
    centre = centre_config(tmp_path / "centre", broker, "e2e-referral-ingest")
    ingest = Ingest(centre).start()
    cfg = appointment_config(tmp_path / "kiosk-root", appointment={"practices": PRACTICES},
                             broker={"url": broker.url, "reconnect_min_s": 0.2},
                             camera={"replay": {"width": 800, "height": 600, "seed": 21}})
    urls: list[str] = []
    try:
        assert ingest.wait_ready(15), "ingest did not subscribe"
        with KioskService(cfg) as svc, playwright_api.sync_playwright() as p:
            server = WebServer(svc, port=0).start()
            browser = launch(p)
            try:
                page = browser.new_context(viewport=SIZES[size], has_touch=True).new_page()
                page.on("request", lambda req: urls.append(req.url))
                walk = KioskWalk(page, server.url, shots_dir=ARTIFACTS, tag=f"e2e_{size}")
                result = walk.referral_walk(PHOTOGRAPHER, PIN, PatientEntry(nhs_number=nhs, reference=reference,
                                                                            date_of_birth=DOB_TEXT), LESIONS)
                assert "2 cases saved" in result["final"], result["final"]
                assert walk.keystrokes == 0
                assert nhs not in page.locator("body").inner_text(), "the clean screen shows no patient data"

                deadline = time.monotonic() + 60
                while svc.outbox.queue_depth() and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert svc.outbox.queue_depth() == 0, f"not delivered: {svc.outbox.counts()}"
            finally:
                browser.close()
                server.stop()
    finally:
        ingest.stop()
        sniffer.loop_stop()
        sniffer.disconnect()

    # the centre holds one referral of two lesion cases, three views each
    store = Store(centre.storage.database, centre.storage.images_dir)
    try:
        rows = store.list_cases(limit=10)
        assert len(rows) == 2, rows
        referral_ids = set()
        for row in rows:
            header, images = store.load_case(str(row["case_id"]))
            referral_ids.add(str(header.referral.referral_id))
            assert header.schema_version == 2 and header.patient.nhs_number == nhs
            assert header.photographer == PHOTOGRAPHER and header.referral.lesion_count == 2
            assert sorted(im.view for im in header.images) == ["close-up", "dermoscopic", "regional"]
            assert len(images) == 3
        assert len(referral_ids) == 1
        first_id = str(next(r for r in rows if r["lesion_id"] == "L1")["case_id"])
    finally:
        store.close()

    # the dermatologist reads it on the real dashboard
    make_user(centre.storage.database, centre.storage.images_dir, "dr.e2e", "dermatologist")
    app = create_app({"DATABASE": str(centre.storage.database), "IMAGES_DIR": str(centre.storage.images_dir)})
    with serve(app) as base, playwright_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
            page.on("request", lambda req: urls.append(req.url))
            log_in(page, f"{base}/", "dr.e2e", PASSWORD)
            page.wait_for_load_state("networkidle")
            worklist = page.locator("body").inner_text()
            assert reference in worklist or "L1" in worklist, worklist[:2000]
            page.goto(f"{base}/cases/{first_id}")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(ARTIFACTS / f"e2e_{size}_dashboard_case.png"), full_page=True)
            text = page.locator("body").inner_text()
            nhs_spaced = f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"
            assert nhs_spaced in text, "the dermatologist sees the NHS number, 3-3-4"
            assert "1950" in text and reference in text and PHOTOGRAPHER in text
            assert "upper extremity" in text.lower() or "arm" in text.lower()
            assert "Forearm" in text
            for view in ("dermoscopic", "close-up", "regional"):
                assert view in text
        finally:
            browser.close()

    # no patient identifier in a topic, a log line, a URL or a file name, on either side
    assert any(t.endswith("/case") for t in topics)
    names = file_names(tmp_path)
    for needle in (nhs, reference, "1950-02-01", "01/02/1950"):
        assert not [t for t in topics if needle in t], needle
        assert needle not in caplog.text, needle
        assert not [u for u in urls if needle in u], needle
        assert not [n for n in names if needle in n], needle
