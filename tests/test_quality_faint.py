"""A lesion found but too faint is refused once, quoting the figure its rule tested.

The lesion check refused a lesion standing out from the skin by under ``lesion_min_contrast`` (delta E) as "No lesion
found: centre the lesion in the view", reporting 0.0, while the lesion lay in the middle of the view and the rule had
tested its colour difference; and the framing check refused the same photograph with the same words, so the kiosk
listed them twice. Now the lesion check reports the colour difference against its limit and says what to do where the
lesion itself is that faint; framing, with no lesion to judge, passes as not judged (where the view checks the
lesion: else it still refuses, so that no view passes a photograph without a lesion).
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.camera import synth
from edge.quality import NOT_JUDGED, QualitySettings, assess
from edge.quality.scene import scene
from tests.test_quality import failed, jpeg
from tests.test_quality_lesion import faint
from wire.kioskconfig.quality import CHECKS, ViewRules


def pale(seed: int, c: float) -> bytes:
    """A centred lesion whose difference from the skin is scaled by ``c``, as a JPEG."""
    return jpeg(faint(synth.lesion_image(1600, 1200, seed, vignette=False, size=0.2), c).astype(np.uint8))


@pytest.mark.parametrize("seed,c", [(0, 0.15), (0, 0.2), (1, 0.1)])
def test_a_faint_lesion_is_refused_once_with_the_colour_difference_it_was_judged_by(seed, c):
    data = pale(seed, c)
    q = assess(data, "dermoscopic")
    assert failed(q) == {"lesion"}
    lesion = q.checks["lesion"]
    sc = scene(data, QualitySettings(), QualitySettings().dermoscopic, text=False)
    assert sc.lesion.found and not sc.present
    assert lesion.value == round(sc.lesion.contrast, 4) and lesion.value < 6.0
    assert lesion.message == (f"The lesion hardly stands out from the skin (colour difference {lesion.value:.1f}, "
                              "needs 6.0): centre it in the view and tap again; if the lesion itself is this faint, "
                              "send the photograph with a reason")
    assert q.checks["framing"].ok and q.checks["framing"].value is None
    assert q.checks["framing"].message == NOT_JUDGED["no_lesion"]


def test_the_same_lesion_standing_out_enough_passes_with_its_size_reported():
    q = assess(pale(0, 0.3), "dermoscopic")
    assert q.ok and 0.05 < q.checks["lesion"].value < 0.2  # its share of the view, as before


def test_no_lesion_at_all_is_still_no_lesion_found():
    skin = synth.lesion_image(1600, 1200, 0, vignette=False, size=0.2)
    skin[...] = np.median(skin.reshape(-1, 3), axis=0)  # the skin's colour all over: aimed where no lesion is
    q = assess(jpeg(skin), "dermoscopic")
    assert "lesion" in failed(q) and q.checks["framing"].ok
    assert q.checks["lesion"].value == 0.0 and q.checks["lesion"].message.startswith("No lesion found")


def test_a_view_that_frames_the_lesion_without_checking_it_still_refuses_no_lesion():
    rules = ViewRules(checks=[name for name in CHECKS if name != "lesion"])
    q = assess(pale(0, 0.15), "dermoscopic", QualitySettings(dermoscopic=rules))
    assert not q.ok and failed(q) == {"framing"} and q.checks["framing"].message.startswith("No lesion found")
