"""The lesion the quality gate finds, generated images: its size, its contrast on a shaded frame, and its framing
(cut by the edge, only touching it, larger than the view; a sticker beside it); split from test_quality.py."""

from __future__ import annotations

import numpy as np
import pytest

from edge.camera import synth
from edge.quality import assess
from edge.quality.analysis import decode
from tests.test_quality import calibrated, failed, good, jpeg


def test_lesion_cut_by_the_edge():
    q = assess(jpeg(synth.lesion_image(1600, 1200, 2, vignette=False, centre=(0.9, 0.5), size=0.2)), "dermoscopic")
    assert "framing" in failed(q)
    c = q.checks["framing"]
    assert c.message.startswith(f"The lesion is cut by the right edge of the picture (cut {c.value:.2f}, at most 0.50)")


@pytest.mark.parametrize("seed", [0, 2])
def test_lesion_that_only_touches_the_edge_passes(seed):
    # Off-centre and grazing the edge, but whole: a dermatologist reads it; the gate passes it.
    q = assess(jpeg(synth.lesion_image(1600, 1200, seed, vignette=False, centre=(0.8, 0.5), size=0.2)), "dermoscopic")
    assert q.checks["framing"].ok and q.checks["framing"].value < 0.2


def test_a_colour_sticker_at_the_edge_is_neither_lesion_nor_skin():
    img = good(1).copy()
    synth.cv2.circle(img, (1500, 600), 260, (200, 120, 40), -1)  # a blue calibration sticker over the edge
    q = assess(jpeg(img), "dermoscopic", calibrated())
    assert q.ok, {k: c for k, c in q.checks.items() if not c.ok}
    assert abs(q.checks["lesion"].value - assess(jpeg(good(1)), "dermoscopic").checks["lesion"].value) < 0.01


def shaded(img: np.ndarray, k: float) -> np.ndarray:
    """Radial fall-off of the light towards the corners (vignetting): the corners keep 1 - k of it."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / (0.25 * (w * w + h * h))
    return np.clip(img * (1 - k * r2)[..., None], 0, 255).astype(np.uint8)


def faint(img: np.ndarray, c: float) -> np.ndarray:
    """Contrast scaled by ``c`` around the image's median colour (a paler lesion)."""
    m = np.median(img.reshape(-1, 3), axis=0)
    return np.clip(m + c * (img.astype(np.float32) - m), 0, 255)


@pytest.mark.parametrize("seed", [0, 3])
def test_pale_lesion_on_a_shaded_frame_passes(seed):
    # Without the fall-off divided out, the dark corners take Otsu's dark class and the lesion is lost.
    img = shaded(faint(synth.lesion_image(1600, 1200, seed, vignette=False, size=0.25), 0.6), 0.45)
    q = assess(jpeg(img), "dermoscopic")
    assert q.ok, {k: c for k, c in q.checks.items() if not c.ok}
    assert q.checks["lesion"].value > 0.1


@pytest.mark.parametrize("seed", [0, 3])
def test_pale_lesion_cut_by_the_edge_of_a_shaded_frame_fails(seed):
    cut = shaded(faint(synth.lesion_image(1600, 1200, seed, vignette=False, size=0.2, centre=(0.92, 0.5)), 0.6), 0.45)
    q = assess(jpeg(cut), "dermoscopic")
    assert not q.checks["framing"].ok and "cut by the right edge" in q.checks["framing"].message
    centred = shaded(faint(synth.lesion_image(1600, 1200, seed, vignette=False, size=0.25), 0.6), 0.45)
    corner = synth.degrade_offcentre(centred, 0.5, seed)
    assert not assess(jpeg(corner), "dermoscopic").checks["framing"].ok


def test_shading_gain_undoes_a_radial_fall_off_only():
    from edge.quality.segment import shading_gain
    flat = np.full((300, 400), 180, np.uint8)
    inside = np.ones_like(flat, bool)
    img = shaded(np.dstack([flat] * 3), 0.4)[..., 0]
    gain = shading_gain(img, inside)
    assert gain is not None and abs(gain[150, 200] - 1.0) < 0.03
    assert abs(gain[0, 0] - 1 / 0.6) < 0.1 and abs(gain[299, 399] - 1 / 0.6) < 0.1
    assert abs(float((img * gain)[0, 0]) - float((img * gain)[150, 200])) < 6
    assert shading_gain(flat, inside) is None  # no fall-off
    brighter_out = 255 - shaded(np.dstack([255 - flat] * 3), 0.4)[..., 0]  # rim brighter than the middle
    assert shading_gain(brighter_out, inside) is None


@pytest.mark.parametrize("seed", [0, 1])
def test_lesion_larger_than_the_view(seed):
    # Larger than the view, centred or not: no framing could fit it, so it is not "cut" ...
    for centre in ((0.5, 0.5), (0.7, 0.5)):
        q = assess(jpeg(synth.lesion_image(1600, 1200, seed, vignette=False, size=0.65, centre=centre)), "dermoscopic")
        assert q.checks["framing"].ok and q.checks["lesion"].value > 0.5, centre
    # ... a lesion the view could hold, aimed beside it, is.
    q = assess(jpeg(synth.lesion_image(1600, 1200, seed, vignette=False, size=0.3, centre=(0.85, 0.5))), "dermoscopic")
    assert not q.checks["framing"].ok and "cut by the right edge" in q.checks["framing"].message


def test_lesion_size_rules_differ_per_view():
    small = jpeg(synth.lesion_image(1600, 1200, 1, size=0.03))
    q = assess(small, "dermoscopic")
    assert failed(q) == {"lesion"} and "move closer" in q.checks["lesion"].message
    c = q.checks["lesion"]
    assert c.message.startswith(f"The lesion is too small in the picture ({c.value:.1%} of the view, needs 0.5%)")
    assert assess(small, "close-up").ok
    none = jpeg(synth.lesion_image(1600, 1200, 1, size=0.004))
    q = assess(none, "dermoscopic")
    assert failed(q) == {"lesion"}  # refused once: framing has no lesion to judge
    assert "No lesion found" in q.checks["lesion"].message
    assert q.checks["lesion"].value == 0.0 and q.checks["framing"].value is None
    assert assess(none, "regional").ok  # a regional overview need not show a lesion


def test_lesion_segmentation_matches_truth():
    img, les = synth.lesion_image_and_truth(1600, 1200, 11, centre=(0.42, 0.55), size=0.18)
    q = assess(jpeg(img), "dermoscopic")
    assert q.ok, failed(q)
    from edge.quality.analysis import find_fov
    from edge.quality.segment import segment_lesion
    w = decode(jpeg(img), 800, 800, 400)
    region = segment_lesion(w.small, find_fov(synth.cv2.cvtColor(w.small, synth.cv2.COLOR_BGR2GRAY)))
    scale = 400 / 1600
    assert abs(region.centre[0] - les.cx * scale) < 8 and abs(region.centre[1] - les.cy * scale) < 8
    true_area = np.pi * (les.radius * scale) ** 2
    assert 0.6 < np.count_nonzero(region.mask) / true_area < 1.5
