"""Off the middle and along the edge, or clear in the middle: which blob the photographer aimed at.

The lesion is the most central large blob; a large one off the middle scored higher than a small
clear lesion in the middle. Along the edge of the picture that is often not a lesion at all: the
background beyond the skin where the dermatoscope does not sit flat (BCN20000's grey bands), a band
of redder skin, a fold, a pen line. The photograph was refused as "cut by the edge" though the lesion
in the middle was whole. Such a blob now gives way to a clear lesion in the middle (delta E 12, half
a per cent of the view: ``choice.CLEAR_LESION_*``) that stands out at least as much, overall or in
colour; a lesion slid out of the view is still cut beside a fainter freckle in the middle.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.camera import synth
from edge.quality import QualitySettings, assess
from edge.quality.analysis import decode
from edge.quality.scene import find_lesion


def jpeg(img: np.ndarray) -> bytes:
    return synth.encode_jpeg(img)


def band_beyond_the_skin(img: np.ndarray, depth: float, seed: int) -> np.ndarray:
    """A band along the bottom edge, ``depth`` of the height deep, its top edge wavy as where the contact
    plate leaves the skin: the background beyond the skin, darker (12 L*) and greyer (a*, b* 30 % less)
    than the skin, as in BCN20000's photographs. It stands out less than the lesion, and is larger."""
    h, w = img.shape[:2]
    rng = np.random.default_rng(seed)
    xs = np.arange(w)
    top = h * (1 - depth) + 0.03 * h * np.sin(xs / w * 2 * np.pi * rng.uniform(1, 3) + rng.uniform(0, 6))
    below = np.arange(h)[:, None] >= top[None, :]
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2Lab).astype(np.float32)
    lab[below, 0] -= 12 * 255 / 100
    lab[below, 1:] = 128 + 0.7 * (lab[below, 1:] - 128)
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_Lab2BGR)


def lesion_of(img: np.ndarray):
    s = QualitySettings()
    work = decode(jpeg(img), s.work_size, s.focus_size, s.analysis_size)
    return find_lesion(work.small, s.dermoscopic)[1], work.small.shape[:2]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_clear_lesion_in_the_middle_wins_over_a_band_beyond_the_skin_along_the_edge(seed):
    img = synth.lesion_image(1024, 1024, seed, vignette=False, size=0.06)
    banded = band_beyond_the_skin(img, 0.3, seed)
    q = assess(jpeg(banded), "dermoscopic")
    assert q.checks["framing"].ok, q.checks["framing"].message
    assert q.checks["lesion"].ok
    lesion, (h, w) = lesion_of(banded)
    assert abs(lesion.centre[1] - h / 2) < 0.1 * h  # the lesion in the middle, not the band below it
    plain = assess(jpeg(img), "dermoscopic")
    assert abs(q.checks["lesion"].value - plain.checks["lesion"].value) < 0.01


@pytest.mark.parametrize("seed", [2, 3])
def test_a_lesion_slid_out_of_the_view_is_still_cut_beside_a_fainter_freckle_in_the_middle(seed):
    # a large lesion half out of the view on the right; in the middle a freckle clear enough to count
    # (darker by 22 L*, 0.9 % of the frame) but standing out less, and less in colour, than the lesion
    img = synth.lesion_image(1600, 1200, seed, vignette=False, centre=(0.97, 0.5), size=0.25)
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2Lab).astype(np.float32)
    freckle = np.zeros(img.shape[:2], np.float32)
    cv2.circle(freckle, (800, 600), 75, 1.0, -1)
    freckle = cv2.GaussianBlur(freckle, (0, 0), 4)
    lab[..., 0] -= 22 * 255 / 100 * freckle
    img = cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_Lab2BGR)
    q = assess(jpeg(img), "dermoscopic")
    framing = q.checks["framing"]
    assert not framing.ok and framing.message.startswith("The lesion is cut by the right edge of the picture")
    lesion, (h, w) = lesion_of(img)
    assert lesion.centre[0] > 0.7 * w
