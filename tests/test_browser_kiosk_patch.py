"""A kiosk whose dermatoscope shows a grey patch, by touch in Chromium: a dermoscopic shot under a blue cast is refused
in the patch's words, and the photographer sees them on the shot screen (800x480 and 1280x720). The replay camera's folder holds
the frames, each with the patch drawn where the configuration says (the hardware is faked, as the camera is)."""

from __future__ import annotations

import re

import cv2
import pytest

from edge.camera import synth
from edge.service import KioskService
from edge.web import WebServer
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, synthetic_nhs_number
from tests.kiosk_walk import KioskWalk, LesionEntry, PatientEntry
from tests.test_browser_kiosk_flow import PRACTICES, SIZES, browser, touch_page  # noqa: F401 (fixture)
from tests.test_kiosk_service import MODEL_DIR
from tests.web import ARTIFACTS, playwright_or_skip

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")
playwright_or_skip()

PATCH = {"x": 0.5, "y": 0.9, "radius": 0.05}


@pytest.fixture
def patch_kiosk(tmp_path):
    """The real kiosk service with a grey patch configured; its replay camera's frames: a dermoscopic frame under a
    blue cast, then the close-up and regional ones."""
    folder = tmp_path / "frames"
    folder.mkdir()
    base = synth.grey_patch(synth.lesion_image(1600, 1200, 7), PATCH["x"], PATCH["y"], PATCH["radius"], 140.0)
    frames = [synth.degrade_cast(base, (1.35, 1.0, 1.0)), synth.lesion_image(1600, 1200, 8, vignette=False),
              synth.lesion_image(1600, 1200, 9, vignette=False)]
    for i, img in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{i:02d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    cfg = appointment_config(tmp_path, appointment={"practices": PRACTICES},
                             camera={"source": "replay", "replay": {"folder": str(folder)}},
                             quality={"grey_patch": PATCH})
    with KioskService(cfg, with_link=False) as svc:
        server = WebServer(svc, port=0).start()
        try:
            yield svc, server.url
        finally:
            server.stop()


@pytest.mark.parametrize("size", list(SIZES))
def test_a_cast_read_on_the_patch_is_shown_to_the_photographer(patch_kiosk, browser, size):  # noqa: F811
    svc, url = patch_kiosk
    page = touch_page(browser, size)
    walk = KioskWalk(page, url, shots_dir=ARTIFACTS, tag=f"patch_{size}")
    walk.sign_in(PHOTOGRAPHER, PIN)
    walk.details(PatientEntry(nhs_number=synthetic_nhs_number(8)))
    walk.add_lesion(LesionEntry("front", "arm-left"))
    index = walk.open_photos()
    assert f"/lesions/{index}/shoot/dermoscopic" in page.url
    walk.tap("#capture")
    page.wait_for_selector("#panel:not([aria-busy])", timeout=30_000)
    assert page.locator("#tabs [data-view='dermoscopic'].done").count() == 0  # refused
    text = page.locator("#panel").inner_text()
    # a gain of 1.35 on blue is ln 1.35 = 0.30 on the patch (a little less after the JPEG's rounding)
    assert re.search(r"Colours look wrong \(blue cast: the dermatoscope's grey patch is 0\.(2[6-9]|3[0-2]) from its "
                     r"normal colour, at most 0\.10\)", text), text
    assert "check the dermatoscope's light and the camera's white balance" in text
    walk.audit("patch_cast_refused")
    assert (ARTIFACTS / f"kiosk_patch_{size}_{len(walk.screens):02d}_patch_cast_refused.png").exists()
