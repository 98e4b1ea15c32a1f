"""The kiosk appointment in Debian's Chromium by touch (Playwright, has_touch): a two-lesion referral
with three views each from sign-in to submit at 800x480 and 1280x720, against the real kiosk service
(replay camera, quality gate, the shipped model, the real outbox). Screenshots: tests/artifacts/."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from edge.service import KioskService
from edge.web import WebServer
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, synthetic_nhs_number
from tests.kiosk_walk import KioskWalk, LesionEntry, PatientEntry
from tests.test_kiosk_service import MODEL_DIR
from tests.web import ARTIFACTS, chromium, playwright_or_skip
from wire.codec import decode_case

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")
playwright_or_skip()  # the whole module needs Chromium

SIZES = {"800x480": {"width": 800, "height": 480}, "1280x720": {"width": 1280, "height": 720}}
PRACTICES = [{"ods": "A81001", "name": "Riverside Surgery"}, {"ods": "B82005", "name": "Hill Street Practice"}]
LESIONS = [LesionEntry("front", "arm-left", detail="Forearm", size_mm="6", history=("changed",),
                       checklist=("irregular_shape",)),
           LesionEntry("back", "torso")]


@contextmanager
def served(cfg):
    """The real kiosk service on ``cfg`` (no broker link) and its page on a free loopback port: (service, url)."""
    with KioskService(cfg, with_link=False) as svc:
        server = WebServer(svc, port=0).start()
        try:
            yield svc, server.url
        finally:
            server.stop()


@pytest.fixture
def kiosk(tmp_path):
    """The real kiosk service (no broker link) and its page on a free loopback port."""
    with served(appointment_config(tmp_path, appointment={"practices": PRACTICES})) as got:
        yield got


@pytest.fixture
def browser():
    with chromium() as b:
        yield b


def touch_page(browser, size: str):
    """A touch page (has_touch) of the given panel size."""
    context = browser.new_context(viewport=SIZES[size], has_touch=True)
    return context.new_page()


@pytest.mark.parametrize("size", list(SIZES))
def test_two_lesion_referral_by_touch(kiosk, browser, size):
    svc, url = kiosk
    page = touch_page(browser, size)
    urls: list[str] = []
    page.on("request", lambda req: urls.append(req.url))
    nhs = synthetic_nhs_number(1)
    walk = KioskWalk(page, url, shots_dir=ARTIFACTS, tag=size)
    result = walk.referral_walk(PHOTOGRAPHER, PIN, PatientEntry(nhs_number=nhs), LESIONS)

    assert "Referral saved" in result["final"] and "2 cases saved" in result["final"]
    assert nhs not in page.content() and "1234" not in page.locator("main").inner_text()
    assert walk.keystrokes == 0
    assert walk.failures() == {"small": {}, "below": []}
    assert not [s.name for s in walk.screens if s.page_scrolls], "no screen scrolls as a whole"
    assert result["per_lesion"][1] <= 12, result       # L2: three views, nothing optional recorded
    assert not [u for u in urls if nhs in u or "123456789012" in u]

    cases = [decode_case(svc.outbox.payload(c.case_id))[0] for c in svc.outbox.cases(("captured", "queued"))]
    assert len(cases) == 2
    by_index = {c.lesion.index: c for c in cases}
    first, second = by_index[1], by_index[2]
    assert first.patient.nhs_number == nhs and first.photographer == PHOTOGRAPHER
    assert first.referral.reference == "123456789012" and first.referral.practice_ods == "A81001"
    assert first.referral.lesion_count == 2 and second.referral.referral_id == first.referral.referral_id
    # the front view's figure on the viewer's right is the patient's LEFT arm
    assert (first.lesion.location.site.value, first.lesion.location.laterality) == ("upper extremity", "left")
    assert first.lesion.location.detail == "Forearm" and first.lesion.size_mm == 6
    assert first.lesion.history.changed is True and first.lesion.history.checklist == {"irregular_shape": True}
    assert second.lesion.location.site.value == "posterior torso"
    assert second.lesion.location.map_side == "back"
    for case in cases:
        assert sorted(im.view for im in case.images) == ["close-up", "dermoscopic", "regional"]
