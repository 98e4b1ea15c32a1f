"""A band across the view is not the lesion (``edge.quality.segment``, ``BAND_*``).

On ISIC 2017 the gate took, for the lesion beside a clear one in the middle, a skin fold's shadow, an ear's fold, a
line of a marker's ink round the lesion, a sticker's ring and the dermatoscope's dark wedge at the side: long, thin
blobs that a photographer does not aim at. Such a band now gives way to a clear lesion near the middle that is not
a band itself, or else to a paler lesion at most half as far from the middle; with neither, the band stays what is
measured (a long lesion is still a lesion). Off the middle a wider band gives way too, unless it stands out as a
lesion cut by the edge does.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.camera import synth
from edge.quality import QualitySettings, assess
from edge.quality.scene import scene
from edge.quality.choice import is_band


def jpeg(img: np.ndarray) -> bytes:
    return synth.encode_jpeg(img, 92)


def painted(img: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] | None, darken: float = 0.5) -> np.ndarray:
    """``img`` with ``mask`` (float 0..1, soft edge) painted in ``colour`` (BGR), or darkened to ``darken`` of its
    brightness and reddened a little (a fold's shadow) where ``colour`` is None."""
    m = cv2.GaussianBlur(mask, (0, 0), 3)[..., None]
    f = img.astype(np.float32)
    if colour is None:
        over = f * np.array([darken * 0.8, darken * 0.85, darken], np.float32)
    else:
        over = np.array(colour, np.float32) + np.random.default_rng(1).normal(0, 5, img.shape).astype(np.float32)
    return np.clip(f * (1 - m) + over * m, 0, 255).astype(np.uint8)


def measured(img: np.ndarray) -> tuple[float, float, float]:
    """Where the gate's lesion of ``img`` lies (fractions of width and height) and its area (share of the view)."""
    s = QualitySettings()
    sc = scene(jpeg(img), s, s.dermoscopic)
    h, w = sc.lesion.mask.shape
    return sc.lesion.centre[0] / w, sc.lesion.centre[1] / h, sc.lesion.area


def fold(h: int, w: int, x: float, width: float) -> np.ndarray:
    """A skin fold's shadow: a band ``width`` of the shorter side wide from the top of the frame to its bottom at ``x``
    (a fraction of the width), slightly curved."""
    m = np.zeros((h, w), np.float32)
    pts = np.array([[int((x + 0.03 * np.sin(3 * t)) * w), int(t * h)] for t in np.linspace(-0.05, 1.05, 40)], np.int32)
    cv2.polylines(m, [pts], False, 1.0, int(width * min(h, w)), cv2.LINE_AA)
    return m


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_a_skin_fold_beside_the_lesion_is_not_the_lesion(seed):
    # A small lesion in the middle; the fold's shadow, larger, outscored it before.
    good = synth.lesion_image(1600, 1200, seed, size=0.08, vignette=False)
    img = painted(good, fold(1200, 1600, 0.66, 0.06), None)
    x, y, _ = measured(img)
    assert abs(x - 0.5) < 0.05 and abs(y - 0.5) < 0.05, (x, y)
    plain = assess(jpeg(good), "dermoscopic")
    q = assess(jpeg(img), "dermoscopic")
    size, plain_size = q.checks["lesion"].value, plain.checks["lesion"].value
    assert q.ok == plain.ok and abs(size - plain_size) < 0.25 * plain_size


def test_the_classifiers_crop_leaves_the_fold_out():
    from edge.classifier import lesion_square

    good = synth.lesion_image(1600, 1200, 0, size=0.08, vignette=False)
    x0, y0, side = lesion_square(painted(good, fold(1200, 1600, 0.66, 0.06), None))
    assert abs((x0 + side / 2) / 1600 - 0.5) < 0.05 and abs((y0 + side / 2) / 1200 - 0.5) < 0.05, (x0, y0, side)


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_a_line_of_ink_drawn_round_the_lesion_is_not_the_lesion(seed):
    # Three sides of a square round the lesion, as a clinic outlines it, in a marker's violet as it looks on skin
    # (CIELAB a* 24, b* -10: too pale for a pen mark). Its centroid lies near the middle too.
    good = synth.lesion_image(1600, 1200, seed, size=0.06, vignette=False)
    m = np.zeros((1200, 1600), np.float32)
    cv2.polylines(m, [np.array([[420, 1150], [420, 140], [1200, 140], [1200, 1150]], np.int32)], False, 1.0, 50)
    x, y, area = measured(painted(good, m, (115, 85, 130)))
    assert abs(x - 0.5) < 0.05 and abs(y - 0.5) < 0.05 and area < 0.03, (x, y, area)


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_a_wider_grey_band_at_the_side_is_not_the_lesion(seed):
    # A dark grey band down the left side (the dermatoscope's wedge, the dark beyond the skin), 0.24 of its length
    # wide: off the middle of the view and not coloured as a lesion is, so a band up to BAND_WIDTH_ASIDE wide gives
    # way to the lesion in the middle (it stood out more, and was taken before).
    good = synth.lesion_image(1600, 1200, seed, size=0.06, vignette=False)
    x, y, area = measured(painted(good, fold(1200, 1600, 0.14, 0.24), (45, 45, 50)))
    assert abs(x - 0.5) < 0.05 and abs(y - 0.5) < 0.05 and area < 0.03, (x, y, area)


@pytest.mark.parametrize("seed", [0, 3])
def test_a_brown_band_at_the_side_stays_the_lesion(seed):
    # The same band in a lesion's brown stands out as a lesion cut by the edge does (``_stands_out``): what is
    # left in view of a lesion slid out, which the framing check must see, not the freckle in the middle.
    good = synth.lesion_image(1600, 1200, seed, size=0.06, vignette=False)
    x, y, area = measured(painted(good, fold(1200, 1600, 0.14, 0.24), (30, 40, 70)))
    assert x < 0.25 and area > 0.1, (x, y, area)


def pale_lesion(img: np.ndarray, radius: float) -> np.ndarray:
    """``img`` with a pale brown lesion in the middle, ``radius`` of the shorter side: its skin 0.8-0.88 as bright."""
    h, w = img.shape[:2]
    m = np.zeros((h, w), np.float32)
    cv2.circle(m, (w // 2, h // 2), int(radius * min(h, w)), 1.0, -1)
    m = cv2.GaussianBlur(m, (0, 0), 6)[..., None]
    f = img.astype(np.float32)
    return np.clip(f * (1 - m) + f * np.array([0.8, 0.82, 0.88], np.float32) * m, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_pale_lesion_in_the_middle_beside_a_line_of_ink_is_the_lesion(seed):
    # A pale lesion (7-11 delta E from the skin: not clear, CLEAR_LESION_CONTRAST, but a lesion) where the
    # photographer aimed, a line of ink across the view beside it, as on ISIC 2017's ISIC_0012388: at most half as
    # far from the middle as the line, the pale lesion is the lesion.
    skin = synth.lesion_image(1600, 1200, seed, size=0.005, vignette=False)
    line = np.zeros((1200, 1600), np.float32)
    cv2.line(line, (250, 1250), (650, -50), 1.0, 60)
    img = painted(pale_lesion(skin, 0.07), line, (115, 85, 130))
    x, y, area = measured(img)
    assert abs(x - 0.5) < 0.05 and abs(y - 0.5) < 0.05 and area < 0.03, (x, y, area)
    s = QualitySettings()
    assert scene(jpeg(img), s, s.dermoscopic).present


def test_a_long_lesion_alone_stays_the_lesion():
    # A long, narrow lesion across the middle and nothing else: a band, but nothing clear to give way to.
    skin = synth.lesion_image(1600, 1200, 5, size=0.005, vignette=False)
    m = np.zeros((1200, 1600), np.float32)
    cv2.ellipse(m, (800, 600), (560, 55), 15, 0, 360, 1.0, -1)
    img = painted(skin, m, (60, 90, 150))
    x, y, area = measured(img)
    assert abs(x - 0.5) < 0.05 and abs(y - 0.5) < 0.05 and area > 0.05, (x, y, area)


def test_what_is_a_band():
    side = 600
    def shape(draw) -> np.ndarray:
        m = np.zeros((side, 800), np.uint8)
        draw(m)
        return m
    line = shape(lambda m: cv2.line(m, (100, 50), (600, 550), 255, 40))
    short = shape(lambda m: cv2.line(m, (300, 250), (500, 350), 255, 20))  # thin, but under BAND_LENGTH
    disc = shape(lambda m: cv2.circle(m, (400, 300), 200, 255, -1))
    ellipse = shape(lambda m: cv2.ellipse(m, (400, 300), (250, 80), 0, 0, 360, 255, -1))  # 0.32 of its length wide
    assert is_band(line, side) and not is_band(short, side) and not is_band(disc, side) and not is_band(ellipse, side)
    assert is_band(ellipse, side, 0.35)
