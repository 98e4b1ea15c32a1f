"""In Chromium: a signed referral's study as the hospital sees it in Orthanc's own web viewer (Orthanc Explorer),
the photograph rendered by Orthanc from the DICOM object it was sent (so the encapsulated JPEG decodes as the
objects say), and the dashboard's hospital state for the dermatologist (referral page) and IT (/hand-over).
Screenshots in tests/artifacts (orthanc_explorer_study.png, orthanc_explorer_instance.png,
hand_over_referral.png, hand_over_it.png)."""

from __future__ import annotations

import pytest

from dashboard import create_app, pacs
from dashboard.readingconfig import ReadingConfig
from tests.dashauth import PASSWORD, make_user
from tests.hospital_kit import open_store, signed_referral
from tests.orthanc import Orthanc
from tests.web import ARTIFACTS, launch, log_in, playwright_or_skip, serve

api = playwright_or_skip()


@pytest.fixture
def orthanc(tmp_path):
    o = Orthanc(tmp_path / "orthanc").start()
    yield o
    o.stop()


def test_study_in_orthanc_explorer_and_state_on_the_dashboard(tmp_path, orthanc):
    ARTIFACTS.mkdir(exist_ok=True)
    cfg = orthanc.pacs_config(password_file=orthanc.password_file())
    store = open_store(tmp_path)
    try:
        key, cases = signed_referral(store, seed=91, lesions=2)
        pacs.queue_referral(store.conn, key, cfg, None)
        assert pacs.flush(store.conn, store.images_dir, cfg, None) == {(key, "pacs"): "sent"}
    finally:
        store.close()
    h = cases[0][0]
    [study] = orthanc.get("/studies")
    with api.sync_playwright() as p:
        browser = launch(p)
        try:
            ctx = browser.new_context(viewport={"width": 1366, "height": 900},
                                      http_credentials={"username": orthanc.USER, "password": orthanc.PASSWORD})
            page = ctx.new_page()
            page.goto(f"{orthanc.url}/app/explorer.html#study?uuid={study}")
            page.wait_for_selector("text=L2 regional")
            body = page.inner_text("body")
            assert h.referral.reference in body and "Teledermatology referral" in body
            for label in ("L1 dermoscopic", "L1 close-up", "L1 regional", "L2 dermoscopic"):
                assert label in body
            assert body.count("Modality: DMS") == 2 and body.count("Modality: XC") == 4
            page.screenshot(path=str(ARTIFACTS / "orthanc_explorer_study.png"), full_page=True)
            # Orthanc renders the dermoscopic photograph from the object it holds
            series = [s for s in orthanc.get(f"/studies/{study}/series")
                      if s["MainDicomTags"]["SeriesDescription"] == "L1 dermoscopic"]
            [inst] = orthanc.get(f"/series/{series[0]['ID']}")["Instances"]
            page.goto(f"{orthanc.url}/instances/{inst}/preview")
            size = page.evaluate("() => { const i = document.querySelector('img'); "
                                 "return i && i.complete ? [i.naturalWidth, i.naturalHeight] : null; }")
            assert size == [640, 480]
            page.screenshot(path=str(ARTIFACTS / "orthanc_explorer_instance.png"))
            ctx.close()
            # the dashboard: the referral page's state for a dermatologist, the IT page
            app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"),
                              "TESTING": False, "READING": ReadingConfig(audit_share=0.0), "PACS": cfg,
                              "HAND_OVER_TICK_S": 3600})
            make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "dr.look", "dermatologist")
            make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "it.look", "it")
            with serve(app) as url:
                page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
                log_in(page, f"{url}/referrals/{key}", "dr.look", PASSWORD)
                page.wait_for_selector("#hand-over")
                assert page.get_attribute("#hand-over-pacs", "data-state") == "sent"
                assert "6 of 6 objects stored" in page.inner_text("#hand-over-pacs")
                page.locator("#hand-over").screenshot(path=str(ARTIFACTS / "hand_over_referral.png"))
                page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
                log_in(page, f"{url}/hand-over", "it.look", PASSWORD)
                page.wait_for_selector("#hand-over-counts")
                text = page.inner_text("main")
                assert "Every signed referral has been handed over." in text and key in text
                assert page.locator("img").count() == 0 and h.patient.nhs_number not in page.content()
                page.screenshot(path=str(ARTIFACTS / "hand_over_it.png"), full_page=True)
            pacs.sender_of(app).stop()
        finally:
            browser.close()
