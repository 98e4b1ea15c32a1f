"""A kiosk whose dermatoscope shows a grey patch, by touch in Chromium: a dermoscopic shot under a blue cast is refused
in the patch's words, and the photographer sees them on the shot screen (800x480 and 1280x720). The replay camera's
folder holds the frames, each with the patch drawn where the configuration says (the hardware is faked, as the camera
is)."""

from __future__ import annotations

import re

import pytest

from edge.camera import synth
from tests.test_browser_kiosk_checks import capture_refused, photos_screen, shown_whole, with_other_views
from tests.test_browser_kiosk_flow import SIZES, browser  # noqa: F401 (fixture)
from tests.test_kiosk_service import MODEL_DIR
from tests.web import ARTIFACTS, playwright_or_skip

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")
playwright_or_skip()

PATCH = {"x": 0.5, "y": 0.9, "radius": 0.05}


def frames() -> list[bytes]:
    """The replay camera's frames: a dermoscopic frame with the patch under a blue cast, then the close-up and
    regional ones."""
    base = synth.grey_patch(synth.lesion_image(1600, 1200, 7), PATCH["x"], PATCH["y"], PATCH["radius"], 140.0)
    return with_other_views(synth.degrade_cast(base, (1.35, 1.0, 1.0)))


@pytest.mark.parametrize("size", list(SIZES))
def test_a_cast_read_on_the_patch_is_shown_to_the_photographer(tmp_path, browser, size):  # noqa: F811
    with photos_screen(tmp_path, browser, frames(), f"patch_{size}", 8, size=size,
                       quality={"grey_patch": PATCH}) as (page, walk, svc):
        assert "/shoot/dermoscopic" in page.url
        capture_refused(page, walk)
        assert page.locator("#tabs [data-view='dermoscopic'].done").count() == 0  # refused
        text = page.locator("#panel").inner_text()
        # a gain of 1.35 on blue is ln 1.35 = 0.30 on the patch (a little less after the JPEG's rounding)
        assert re.search(r"Colours look wrong \(blue cast: the dermatoscope's grey patch is 0\.(2[6-9]|3[0-2]) from its "
                         r"normal colour, at most 0\.10\)", text), text
        assert "check the dermatoscope's light and the camera's white balance" in text
        # at 800x480 too, the words and both actions (the lesion larger than the view; send with a reason) without a
        # scroll: the refusal comes before the shots' strip there
        for part in ("#capture", "#fills-view-mark", "#verdict .check-failed", "#override summary"):
            assert shown_whole(page, part), part
        walk.audit("patch_cast_refused")
        assert (ARTIFACTS / f"kiosk_patch_{size}_{len(walk.screens):02d}_patch_cast_refused.png").exists()
