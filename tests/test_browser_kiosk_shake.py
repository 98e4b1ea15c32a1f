"""A shaken dermoscopic shot on a kiosk whose optics are sharper than its reference, by touch in Chromium: refused for
movement alone (the focus check passes it), and the photographer sees the words on the shot screen (800x480 and
1280x720). The replay camera's folder holds the frames (the hardware is faked, as the camera is)."""

from __future__ import annotations

import pytest

from edge.camera import synth
from tests.test_browser_kiosk_checks import capture_refused, photos_screen, shown_whole, with_other_views
from tests.test_browser_kiosk_flow import SIZES, browser  # noqa: F401 (fixture)
from tests.test_kiosk_service import MODEL_DIR
from tests.web import ARTIFACTS, playwright_or_skip
from wire.kioskconfig.quality import FOCUS_MEASURE_FLAGS

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")
playwright_or_skip()

#: A reference whose normal sharpness is far below the frames': as an uncalibrated kiosk meets PH2's sharp optics.
SOFT_REFERENCE = {"focus": 1.3, **dict.fromkeys(FOCUS_MEASURE_FLAGS, True)}


def frames() -> list[bytes]:
    """The replay camera's frames: a dermoscopic frame shaken 32 px, then the close-up and regional ones."""
    return with_other_views(synth.degrade_motion(synth.lesion_image(1600, 1200, 0, hairs=4), 32, 30))


@pytest.mark.parametrize("size", list(SIZES))
def test_a_shaken_shot_is_refused_for_movement_on_the_shot_screen(tmp_path, browser, size):  # noqa: F811
    with photos_screen(tmp_path, browser, frames(), f"shake_{size}", 9, size=size,
                       quality={"reference": SOFT_REFERENCE}) as (page, walk, svc):
        assert "/shoot/dermoscopic" in page.url
        reasons = capture_refused(page, walk)
        assert page.locator("#tabs [data-view='dermoscopic'].done").count() == 0  # refused
        assert len(reasons) == 1, reasons  # the focus check passes it: sharper optics than the reference
        assert reasons[0].startswith("Image is blurred by movement (sharpness along the movement "), reasons
        assert "needs 30%): hold the dermatoscope and the patient's skin still, and tap again" in reasons[0]
        # the words and "Send with a reason" under the retake button, without scrolling (the shots' strip after them)
        assert shown_whole(page, "#capture") and shown_whole(page, "#verdict .check-failed")
        assert shown_whole(page, "#override summary")
        walk.audit("shake_refused")
        assert (ARTIFACTS / f"kiosk_shake_{size}_{len(walk.screens):02d}_shake_refused.png").exists()
