"""What lies along the rim of the view: a lesion cut by the edge, or only the optics' shading.

A blob lying mostly along the rim of the field of view, far from the middle, used to be passed over
as vignetting. A small lesion slid half out of the view lies there too, so it was lost and the
photographer was told "No lesion found" instead of "cut by the edge" (or, with a faint patch nearer
the middle, the photograph passed). It is now kept when it stands out as a lesion does (delta E 10,
chroma 15, reaching into the view: ``choice.RIM_LESION_*``); grey shading still is not, and a
lesion in the middle that stands out as much, overall or in colour, still wins over it.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.camera import synth
from edge.quality import assess


def jpeg(img: np.ndarray) -> bytes:
    return synth.encode_jpeg(img)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_small_lesion_half_out_of_the_view_is_cut_not_missing(seed):
    img = synth.lesion_image(1600, 1200, seed, vignette=False, centre=(0.99, 0.5), size=0.09)
    q = assess(jpeg(img), "dermoscopic")
    framing = q.checks["framing"]
    assert not framing.ok and framing.value is not None and framing.value > 0.9
    assert framing.message.startswith("The lesion is cut by the right edge of the picture")
    assert q.checks["lesion"].ok  # found, and large enough: the one thing to change is the aim


@pytest.mark.parametrize("seed", [0, 3])
def test_grey_shading_along_one_side_is_still_not_the_lesion(seed):
    # The dermatoscope's rim seen at one side: the skin darkened towards grey over a band along the
    # edge, beside a whole lesion in the middle.
    img = synth.lesion_image(1600, 1200, seed, vignette=False, size=0.07).astype(np.float32)
    ramp = np.clip((np.arange(1600, dtype=np.float32) - 1440) / 20, 0, 1)[None, :, None]
    grey = img.mean(axis=2, keepdims=True) * 0.45
    shaded = np.clip(img * (1 - ramp) + grey * ramp, 0, 255).astype(np.uint8)
    q = assess(jpeg(shaded), "dermoscopic")
    plain = assess(jpeg(img.astype(np.uint8)), "dermoscopic")
    assert q.checks["framing"].ok, q.checks["framing"].message
    assert abs(q.checks["lesion"].value - plain.checks["lesion"].value) < 0.01


def test_a_brown_half_lesion_at_the_edge_wins_over_grey_shading_at_the_other():
    img = synth.lesion_image(1600, 1200, 2, vignette=False, centre=(0.99, 0.5), size=0.09).astype(np.float32)
    ramp = np.clip((150 - np.arange(1600, dtype=np.float32)) / 150, 0, 1)[None, :, None]
    grey = img.mean(axis=2, keepdims=True) * 0.45
    img = np.clip(img * (1 - ramp) + grey * ramp, 0, 255).astype(np.uint8)
    q = assess(jpeg(img), "dermoscopic")
    assert not q.checks["framing"].ok and "cut by the right edge" in q.checks["framing"].message
    # the lesion found is the one on the right, not the shading on the left
    from edge.quality.analysis import decode
    from edge.quality.scene import find_lesion
    from edge.quality import QualitySettings
    s = QualitySettings()
    work = decode(jpeg(img), s.work_size, s.focus_size, s.analysis_size)
    _, lesion, _, present = find_lesion(work.small, s.dermoscopic)
    assert present and lesion.centre[0] > 0.8 * work.small.shape[1]
    assert cv2.countNonZero(lesion.mask[:, : work.small.shape[1] // 2]) == 0



def fold_shadow(img: np.ndarray, radius: int, darker: float) -> np.ndarray:
    """A skin fold's shadow reaching in from the right edge: a half disc of ``radius`` pixels whose
    lightness is ``darker`` (CIELAB L*) lower, its colour (a*, b*) the skin's own."""
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2Lab).astype(np.float32)
    h, w = img.shape[:2]
    m = np.zeros((h, w), np.float32)
    cv2.circle(m, (w, h // 2), radius, 1.0, -1)
    lab[..., 0] -= darker * 255 / 100 * cv2.GaussianBlur(m, (0, 0), 2)
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_Lab2BGR)


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_a_lesion_in_the_middle_wins_over_a_fold_shadow_along_the_rim(seed):
    # A 256-px square as ISIC 2017's files are: a small lesion in the middle, and at the side of the
    # view a shadow larger and darker than it but of the skin's own colour. The lesion is the one to
    # read and the photograph passes (seed 0: the shadow even stands out more than the lesion, but
    # the lesion is another colour than the skin, and the shadow is not).
    img = cv2.resize(synth.lesion_image(1024, 1024, seed, vignette=False, size=0.05), (256, 256),
                     interpolation=cv2.INTER_AREA)
    q = assess(jpeg(fold_shadow(img, 45, 30)), "dermoscopic")
    assert q.checks["framing"].ok, q.checks["framing"].message
    plain = assess(jpeg(img), "dermoscopic")
    assert abs(q.checks["lesion"].value - plain.checks["lesion"].value) < 0.002
