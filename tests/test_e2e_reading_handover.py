"""Issue 20 end to end, as people would do it, with every real part: a photographer sends a one-lesion referral
from the real kiosk page by touch (800x480) over the real broker to the real ingest; a dermatologist opens it on
the real dashboard in Chromium (which claims it), zooms into the dermoscopic view and signs "re-image" with a
reason; a second browser (another dermatologist) is refused while the first holds the claim; the rules ask for a
second read (audit share 100 %), which the other dermatologist signs once the claim is released; sign-off makes
the letters and sends the outcome, and the re-image task with the reader's reason appears on the real kiosk page.

Afterwards no patient identifier is in an MQTT topic, a log line, a page URL or a file name, on either side.
Screenshots: tests/artifacts/e2e20_*.png.
"""

from __future__ import annotations

import io
import logging
import os
import time

import pytest
from pypdf import PdfReader

from dashboard import create_app
from dashboard.config import BrokerConfig, UpdatesConfig
from dashboard.ingest import Ingest
from dashboard.readingconfig import ReadingConfig
from dashboard.serviceconfig import ServiceConfig
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

KIOSK_SIZE = {"width": 800, "height": 480}
DESK_SIZE = {"width": 1366, "height": 768}
NAEVUS = "Benign:Benign melanocytic proliferations:Nevus"
REASON = "Dermoscopic view blurred at the lesion's edge: retake with contact gel"
REFERENCE = "E2E-20/2026"


def until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out: {what}")


def sign(page, case_id: str, management: str, text: str) -> None:
    form = f"#report-{case_id}"
    page.select_option(f"{form} select.diagnosis", NAEVUS)
    page.check(f"{form} input[name=management][value={management}]")
    page.fill(f"{form} textarea[name=text]", text)
    page.click(f"#sign-{case_id}")
    page.wait_for_load_state("domcontentloaded")


def test_referral_read_signed_second_read_and_reimage_task_on_the_kiosk(broker, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    nhs = synthetic_nhs_number(20)
    sniffer, seen = sniff(broker)
    centre = centre_config(tmp_path / "centre", broker, "e2e20-ingest")
    ingest = Ingest(centre).start()
    cfg = appointment_config(tmp_path / "kiosk-root", broker={"url": broker.url, "reconnect_min_s": 0.2},
                             camera={"replay": {"width": 1600, "height": 1200, "seed": 20}})
    for user in ("dr.first", "dr.second"):
        make_user(centre.storage.database, centre.storage.images_dir, user, "dermatologist")
    app = create_app({"DATABASE": str(centre.storage.database), "IMAGES_DIR": str(centre.storage.images_dir),
                      "READING": ReadingConfig(audit_share=1.0), "OUTCOME_RETRY_S": 1.0,
                      "SERVICE": ServiceConfig(name="E2E Teledermatology", phone="01632 960020"),
                      "UPDATES": UpdatesConfig(broker=BrokerConfig(url=broker.url, client_id="e2e20-updates"))})
    urls: list[str] = []
    try:
        assert ingest.wait_ready(15), "ingest did not subscribe"
        with KioskService(cfg) as svc, serve(app) as base, playwright_api.sync_playwright() as p:
            kiosk_web = WebServer(svc, port=0).start()
            browser = launch(p)
            try:
                # 1. The photographer sends the referral from the kiosk page, by touch.
                kiosk = browser.new_context(viewport=KIOSK_SIZE, has_touch=True).new_page()
                kiosk.on("request", lambda req: urls.append(req.url))
                walk = KioskWalk(kiosk, kiosk_web.url, shots_dir=ARTIFACTS, tag="e2e20")
                result = walk.referral_walk(PHOTOGRAPHER, PIN, PatientEntry(nhs_number=nhs, reference=REFERENCE),
                                            [LesionEntry("front", "arm-left", detail="Forearm")])
                assert "1 case saved" in result["final"], result["final"]
                until(lambda: svc.outbox.queue_depth() == 0, 60, "the case reaches the centre")
                [case] = svc.outbox.cases(("delivered", "purged"))
                case_id = case.case_id
                store = Store(centre.storage.database, centre.storage.images_dir)
                try:
                    header, _ = store.load_case(case_id)
                finally:
                    store.close()
                key = str(header.referral.referral_id)

                # 2. The first dermatologist opens it (and so claims it) and zooms into the dermoscopic view.
                first = browser.new_context(viewport=DESK_SIZE).new_page()
                first.on("request", lambda req: urls.append(req.url))
                log_in(first, f"{base}/referrals/{key}", "dr.first", PASSWORD)
                first.wait_for_url(f"**/referrals/{key}")
                first.wait_for_function("() => [...document.querySelectorAll('.viewer img')].every("
                                        "i => i.complete && i.naturalWidth > 0)", timeout=15_000)
                assert "You hold this referral" in first.locator("#claim").inner_text()
                card = f"#lesion-{case_id} .today .viewer-card:nth-child(1)"
                first.click(f"{card} .zoom-in")
                first.wait_for_timeout(450)
                scale = first.eval_on_selector(f"{card} img", "e => new DOMMatrix(getComputedStyle(e).transform).a")
                assert scale > 1.2, scale
                first.screenshot(path=str(ARTIFACTS / "e2e20_first_reader_zoomed.png"))

                # 3. A second browser is refused while the first holds the claim.
                second = browser.new_context(viewport=DESK_SIZE).new_page()
                second.on("request", lambda req: urls.append(req.url))
                log_in(second, f"{base}/referrals/{key}", "dr.second", PASSWORD)
                second.wait_for_url(f"**/referrals/{key}")
                assert "Held by dr.first" in second.locator("#claim").inner_text()
                sign(second, case_id, "discharge", "Trying to decide over the claim.")
                refused = second.locator("#report-error").inner_text()
                assert "dr.first" in refused, refused
                second.locator("#report-error").scroll_into_view_if_needed()
                second.screenshot(path=str(ARTIFACTS / "e2e20_second_browser_refused.png"))
                store = Store(centre.storage.database, centre.storage.images_dir)
                try:
                    from dashboard.store import reports as report_table
                    assert report_table.reports_for(store.conn, key) == [], "the refused form signed something"
                finally:
                    store.close()

                # 4. The first read: re-image with the reason; the rules ask for a second read.
                first.reload()
                sign(first, case_id, "re-image", REASON)
                assert "second, independent read is needed" in first.locator("main").inner_text()
                first.click("#claim-release")
                first.wait_for_load_state("domcontentloaded")

                # 5. The second read by the other dermatologist (blind until signed), then sign-off.
                second.goto(f"{base}/referrals/{key}")
                assert "You hold this referral" in second.locator("#claim").inner_text()
                assert REASON not in second.locator("main").inner_text()
                sign(second, case_id, "re-image", REASON + " (agree)")
                page_text = second.locator("main").inner_text()
                assert second.locator("#referral-status").text_content().strip() == "Signed", page_text[:1000]
                second.locator("#letters").scroll_into_view_if_needed()
                second.screenshot(path=str(ARTIFACTS / "e2e20_signed_letters.png"))
                assert second.locator("#letter-gp").count() == 1 and second.locator("#letter-patient").count() == 1
                pdf = second.request.get(f"{base}/referrals/{key}/letters/patient.pdf")
                assert pdf.ok
                text = " ".join(PdfReader(io.BytesIO(pdf.body())).pages[0].extract_text().split())
                assert "E2E Teledermatology" in text and "take new photographs" in text and "%" not in text

                # 6. The re-image task appears on the real kiosk page, with the reader's reason.
                until(svc.outcomes.tasks, 30, "the outcome reaches the kiosk")
                kiosk.goto(kiosk_web.url)                  # still signed in after the walk: the start screen
                if kiosk.locator("[data-staff]").count():  # (or signed out meanwhile: sign in again)
                    walk.sign_in(PHOTOGRAPHER, PIN)
                walk.audit("start-with-task")
                assert kiosk.locator("#task-count").inner_text() == "1"
                walk.next("#tasks-link")
                walk.audit("tasks")
                row = kiosk.locator(".task-row").inner_text()
                assert REFERENCE in row and "Forearm" in row and "Reason: " in row and "dr.first" in row
                assert kiosk.locator(".status-row").first.get_attribute("data-status") == "reimage"
                assert walk.failures() == {"small": {}, "below": []}
                kiosk.screenshot(path=str(ARTIFACTS / "e2e20_kiosk_task_800x480.png"))
            finally:
                browser.close()
                kiosk_web.stop()
    finally:
        sender = app.extensions.get("dermkiosk.outcome_sender")
        if sender:
            sender.stop()
        ingest.stop()
        sniffer.loop_stop()
        sniffer.disconnect()

    assert any(t.endswith("/outcome") for t in seen)
    names = [n for d, dirs, files in os.walk(tmp_path) for n in dirs + files]
    for needle in (nhs, REFERENCE, "1950-02-01"):
        assert not [t for t in seen if needle in t], needle
        assert needle not in caplog.text, needle
        assert not [u for u in urls if needle in u], needle
        assert not [n for n in names if needle in n], needle
