"""A surgical marker's ink beside the lesion is not the lesion (``edge.quality.segment``, ``INK_*``).

Clinics hatch, circle or point at a lesion with a violet skin marker. On all of ISIC 2017's 2,286 photographs the
gate took such a patch of hatching for the lesion in about a dozen (it is larger than a small lesion, so it
outscored it), and measured its framing, its size and the classifier's crop on the ink. A blob the colour of the
ink now gives way to a clear lesion of another colour at most half as far from the middle of the view. Colour
alone cannot set ink aside: vascular lesions are as violet, so a violet lesion the photographer aimed at stays
the lesion.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.camera import synth
from edge.quality import QualitySettings, assess
from edge.quality.scene import scene
from edge.quality.choice import ink_coloured

#: Gentian violet as a marker leaves it on skin (BGR; CIELAB a* 42, b* -39); a vascular lesion's red-violet (a* 52, b* -15).
INK = (150, 60, 120)
VASCULAR = (110, 40, 150)


def jpeg(img: np.ndarray) -> bytes:
    return synth.encode_jpeg(img, 92)


def hatched(img: np.ndarray, centre: tuple[float, float], size: float, seed: int) -> np.ndarray:
    """``img`` with a patch of marker hatching: 70 strokes 5-8 px wide at random angles inside an ellipse
    ``size`` of the frame across, centred at ``centre`` (fractions of width and height)."""
    h, w = img.shape[:2]
    rng = np.random.default_rng(seed)
    cx, cy, rx, ry = int(centre[0] * w), int(centre[1] * h), int(size * w / 2), int(size * h / 2)
    region = np.zeros((h, w), np.uint8)
    cv2.ellipse(region, (cx, cy), (rx, ry), 20, 0, 360, 255, -1)
    strokes = np.zeros((h, w), np.uint8)
    for _ in range(70):
        x, y, a = rng.uniform(cx - rx, cx + rx), rng.uniform(cy - ry, cy + ry), rng.uniform(0, np.pi)
        half = rng.uniform(0.3, 0.6) * max(rx, ry)
        cv2.line(strokes, (int(x - half * np.cos(a)), int(y - half * np.sin(a))),
                 (int(x + half * np.cos(a)), int(y + half * np.sin(a))), 255, int(rng.integers(5, 9)), cv2.LINE_AA)
    ink = (cv2.bitwise_and(strokes, region).astype(np.float32) / 255)[..., None] * 0.85
    return np.clip(img * (1 - ink) + np.array(INK, np.float32) * ink, 0, 255).astype(np.uint8)


def with_blob(img: np.ndarray, centre: tuple[float, float], radius: float, colour: tuple[int, int, int],
              seed: int) -> np.ndarray:
    """``img`` with a solid, slightly mottled lesion of ``colour`` (a soft edge), ``radius`` of the shorter side."""
    h, w = img.shape[:2]
    m = np.zeros((h, w), np.float32)
    cv2.circle(m, (int(centre[0] * w), int(centre[1] * h)), int(radius * min(h, w)), 1.0, -1, cv2.LINE_AA)
    m = cv2.GaussianBlur(m, (0, 0), 4)[..., None]
    grain = np.random.default_rng(seed).normal(0, 6, (h, w, 1)).astype(np.float32)
    return np.clip(img * (1 - m) + (np.array(colour, np.float32) + grain) * m, 0, 255).astype(np.uint8)


def measured(img: np.ndarray):
    """The gate's scene of ``img`` and where its lesion lies (fractions of width and height)."""
    s = QualitySettings()
    sc = scene(jpeg(img), s, s.dermoscopic)
    h, w = sc.lesion.mask.shape
    return sc, (sc.lesion.centre[0] / w, sc.lesion.centre[1] / h)


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_marker_hatching_beside_the_lesion_is_not_the_lesion(seed):
    # A small lesion in the middle, a larger patch of hatching low on the left (it outscored the lesion before).
    good = synth.lesion_image(1600, 1200, seed, size=0.06, vignette=False)
    img = hatched(good, (0.22, 0.7), 0.3, seed)
    sc, (x, y) = measured(img)
    assert abs(x - 0.5) < 0.05 and abs(y - 0.5) < 0.05, (x, y)
    plain = assess(jpeg(good), "dermoscopic").checks["lesion"].value
    q = assess(jpeg(img), "dermoscopic")
    assert q.checks["framing"].ok and abs(q.checks["lesion"].value - plain) < 0.25 * plain


def test_the_classifiers_crop_leaves_the_ink_out():
    from edge.classifier import lesion_square

    img = hatched(synth.lesion_image(1600, 1200, 2, size=0.06, vignette=False), (0.22, 0.7), 0.3, 2)
    x0, y0, side = lesion_square(img)
    assert abs((x0 + side / 2) / 1600 - 0.5) < 0.05 and abs((y0 + side / 2) / 1200 - 0.5) < 0.05


def test_the_ink_and_a_vascular_lesion_are_ink_coloured_and_a_brown_lesion_is_not():
    for colour, ink in ((INK, True), (VASCULAR, True), ((60, 90, 150), False)):
        patch = np.full((20, 20, 3), colour, np.uint8)
        assert ink_coloured(cv2.cvtColor(patch, cv2.COLOR_BGR2Lab), np.full((20, 20), 255, np.uint8)) is ink


def test_a_violet_lesion_in_the_middle_stays_the_lesion():
    # A vascular lesion where the photographer aimed, a brown freckle off to the side: the violet one is the lesion.
    skin = synth.lesion_image(1600, 1200, 5, size=0.01, vignette=False)
    img = with_blob(with_blob(skin, (0.5, 0.5), 0.12, VASCULAR, 1), (0.2, 0.25), 0.06, (60, 90, 150), 2)
    sc, (x, y) = measured(img)
    assert abs(x - 0.5) < 0.05 and abs(y - 0.5) < 0.05, (x, y)


def test_a_violet_lesion_off_the_middle_keeps_a_freckle_only_a_little_nearer_out():
    # The violet lesion lies 0.6 of the half-side off the middle, a brown freckle 0.4: not half as far, so the
    # violet lesion (larger, the better candidate) is still the one measured.
    skin = synth.lesion_image(1600, 1200, 5, size=0.01, vignette=False)
    img = with_blob(with_blob(skin, (0.5 + 0.6 * 0.375, 0.5), 0.12, VASCULAR, 1),
                    (0.5 - 0.4 * 0.375, 0.5), 0.06, (60, 90, 150), 2)
    sc, (x, y) = measured(img)
    assert abs(x - 0.725) < 0.05 and abs(y - 0.5) < 0.05, (x, y)
