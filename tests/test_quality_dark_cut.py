"""A black-brown lesion cut by the edge is a lesion, not the dark beyond the skin (``edge.quality.choice``:
``distinct``, ``DARK_LESION_*``).

A blob along the edge of the view counts as a lesion cut by it only where it is coloured as a lesion is (chroma
``RIM_LESION_CHROMA``, 15): shading, darker skin and the dark beyond the skin are grey. A melanoma's or a dark naevus's
black-brown is nearly grey in CIELAB too (ISIC_0014684's L* 25, chroma 12; ISIC_0015223's L* 12, chroma 11), so when
the skin slid until half of such a lesion lay beyond the edge, the gate took a freckle or a pink spot left in view for
the lesion and passed a photograph a dermatologist cannot read whole. A blob that stands out from the skin by
``DARK_LESION_CONTRAST`` now counts from ``DARK_LESION_CHROMA`` where it is brown (a* and b* above 0) and redder than
the skin in ln R/G by ``DARK_LESION_REDDER`` (melanin takes more green than red); a grey one still does not, nor the
skin in the optics' shade, as coloured as such a lesion but of the skin's own chromaticity.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.quality import QualitySettings, assess
from edge.quality.choice import (DARK_LESION_CHROMA, DARK_LESION_CONTRAST, DARK_LESION_REDDER, RIM_LESION_CHROMA,
                                 Redness, distinct)
from edge.quality.region import LesionRegion
from edge.quality.scene import scene

from tests.test_quality_ink import jpeg, with_blob

#: Even skin (BGR), as the bench's cut tests draw it.
SKIN = (150, 170, 205)
#: A black-brown lesion: CIELAB L* 12.5, a* 6, b* 9 (chroma 10.8), as ISIC 2017's dark melanomas are.
BLACK_BROWN = (20, 28, 45)
#: The dark beyond the skin, or a dermatoscope's shadow: L* 12.5, chroma 2.2.
GREY_DARK = (30, 32, 36)


def skin(seed: int) -> np.ndarray:
    """Even skin with a little grain, 1600 x 1200."""
    rng = np.random.default_rng(seed)
    return np.clip(np.array(SKIN, np.float32) + rng.normal(0, 3, (1200, 1600, 3)), 0, 255).astype(np.uint8)


def slid_out(colour: tuple[int, int, int], seed: int) -> np.ndarray:
    """Skin with a dark blob of ``colour`` half beyond the right edge, and a brown freckle left off the middle."""
    img = with_blob(skin(seed), (0.995, 0.45), 0.16, colour, seed)
    return with_blob(img, (0.3, 0.3), 0.06, tuple(int(0.5 * v) for v in SKIN), seed + 1)


def lesion_x(img: np.ndarray) -> float:
    """Where the gate's lesion lies across ``img`` (a fraction of its width)."""
    s = QualitySettings()
    sc = scene(jpeg(img), s, s.dermoscopic)
    return sc.lesion.centre[0] / sc.lesion.mask.shape[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_black_brown_lesion_half_beyond_the_edge_is_refused_though_a_freckle_is_left_in_view(seed):
    img = slid_out(BLACK_BROWN, seed)
    assert lesion_x(img) > 0.9  # the lesion at the right edge, not the freckle at 0.3
    q = assess(jpeg(img), "dermoscopic")
    assert not q.checks["framing"].ok and q.checks["framing"].value > 0.9
    assert "right" in q.checks["framing"].message


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grey_dark_along_the_edge_is_still_not_the_lesion(seed):
    # The same blob, as dark but grey: the dark beyond the skin, or the dermatoscope's shadow. The freckle is measured,
    # uncut, and the photograph passes the lesion and framing checks.
    img = slid_out(GREY_DARK, seed)
    assert lesion_x(img) < 0.4
    q = assess(jpeg(img), "dermoscopic")
    assert q.checks["lesion"].ok
    assert q.checks["framing"].ok and q.checks["framing"].value == 0.0


def _region(contrast: float) -> LesionRegion:
    return LesionRegion(np.zeros((8, 32), np.uint8), True, 0.1, contrast, (28.0, 4.0), 1.0, 0.5)


#: A more coloured skin (CIELAB L* 68, chroma 33), whose shading is as coloured as a black-brown lesion ...
PINK_SKIN = (120, 150, 215)
#: ... as it is in shade (x 0.3): chroma 12.2 and brown, but of the skin's own chromaticity (PH2's darkened corners).
PINK_SKIN_SHADED = (36, 45, 64)


def skin_with_blob(skin_bgr: tuple[int, int, int], blob_bgr: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """An 8 x 32 view of plain skin with a plain blob over its right quarter (the skin's median is the skin's), and the
    blob's mask."""
    bgr = np.zeros((8, 32, 3), np.uint8)
    bgr[:, :24] = skin_bgr
    bgr[:, 24:] = blob_bgr
    blob = np.zeros((8, 32), np.uint8)
    blob[:, 24:] = 255
    return bgr, blob


@pytest.mark.parametrize("skin_bgr, blob_bgr, contrast, counts", [
    (SKIN, BLACK_BROWN, DARK_LESION_CONTRAST, True),  # black-brown: chroma 10.8, 0.27 redder than the skin in ln R/G
    (SKIN, BLACK_BROWN, DARK_LESION_CONTRAST - 1, False),  # as dark and brown, but not standing out enough
    (SKIN, GREY_DARK, 60.0, False),  # grey (chroma 2.2), however dark
    (PINK_SKIN, PINK_SKIN_SHADED, 50.0, False),  # the skin in shade: as coloured and brown, but no redder
    (SKIN, (40, 60, 110), 20.0, True),  # chroma 30: coloured as any lesion cut by the edge is
])
def test_distinct_takes_a_dark_blob_for_a_lesion_where_its_pigment_reddens_it(skin_bgr, blob_bgr, contrast, counts):
    bgr, blob = skin_with_blob(skin_bgr, blob_bgr)
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab)
    redness = Redness(bgr, np.ones((8, 32), bool))
    assert (distinct(_region(contrast), lab, blob, redness) is not None) is counts
    if counts and contrast >= DARK_LESION_CONTRAST:  # the dark rule, not the chroma, let it count
        assert distinct(_region(contrast), lab, blob) is None  # without the frame's redness: as before
        a, b = lab[0, 24, 1:].astype(float) - 128.0
        assert DARK_LESION_CHROMA < float(np.hypot(a, b)) < RIM_LESION_CHROMA
        assert redness.excess(blob) >= DARK_LESION_REDDER


def test_the_skin_in_shade_is_no_redder_than_the_skin():
    bgr, blob = skin_with_blob(PINK_SKIN, PINK_SKIN_SHADED)
    assert abs(Redness(bgr, np.ones((8, 32), bool)).excess(blob)) < 0.05
