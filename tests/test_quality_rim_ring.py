"""A round view's dark soft edge is not part of the lesion (``edge.quality.segment.without_rim_ring``, issue 24).

Some dermatoscopes (BCN20000's round views) show the field of view with a soft edge: the skin darkens over the last
tenth of the radius before the black. That darker ring lies inside the field of view, dark enough to pass for lesion.
Where a lesion reached it, the two were one blob; filled in, that blob was the whole view, so the gate measured the
lesion against no skin and refused a good photograph: "The lesion hardly stands out from the skin". The part of a
blob that runs round most of the rim, while the blob fills under half of the view inside it, is now left out before
the lesion is chosen. A lesion cut by the edge along part of the rim, or one larger than the view, is as before.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.camera import synth
from edge.quality import QualitySettings, assess
from edge.quality.fov import FieldOfView
from edge.quality.scene import scene
from edge.quality.segment import RING_TURN, without_rim_ring
from wire.kioskconfig.quality import ViewRules


def soft_round_view(seed: int, centre: tuple[float, float], size: float, soft: tuple[float, float],
                    n: int = 1024) -> tuple[np.ndarray, synth.Lesion]:
    """An ``n`` x ``n`` still of a round view (radius 0.45 n) whose skin darkens to black from ``soft[0]`` to
    ``soft[1]`` of that radius (BCN20000's files fall from 0.88 to about 1.04), with a lesion of radius ``size`` at
    ``centre`` (fractions of the frame); and the lesion."""
    img, truth = synth.lesion_image_and_truth(n, n, seed, vignette=False, centre=centre, size=size)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r = np.hypot(xx - (n - 1) / 2, yy - (n - 1) / 2) / (0.45 * n)
    t = np.clip((soft[1] - r) / (soft[1] - soft[0]), 0, 1)
    t = t * t * (3 - 2 * t)
    return np.clip(img.astype(np.float32) * t[..., None] + 3, 0, 255).astype(np.uint8), truth


#: Views whose lesion reached the soft edge and was taken, before, for the whole view (area 0.955, refused for lesion).
JOINED = [((0.86, 1.06), (0.4, 0.4), 0.28, 1), ((0.86, 1.06), (0.4, 0.4), 0.28, 2), ((0.9, 1.04), (0.4, 0.4), 0.28, 2),
          ((0.8, 1.08), (0.5, 0.3), 0.2, 1), ((0.8, 1.08), (0.5, 0.3), 0.2, 2), ((0.8, 1.08), (0.4, 0.4), 0.28, 1)]


@pytest.mark.parametrize("soft,centre,size,seed", JOINED)
def test_a_lesion_reaching_the_soft_edge_is_found_as_itself(soft, centre, size, seed):
    img, truth = soft_round_view(seed, centre, size, soft)
    data = synth.encode_jpeg(img, 92)
    q = assess(data, "dermoscopic")
    assert q.ok, {k: c.message for k, c in q.checks.items() if not c.ok}
    sc = scene(data, QualitySettings(), ViewRules(), text=False)
    assert 0.1 < sc.lesion.area < 0.5  # the lesion (0.18-0.39 of the view drawn), not the view (0.95)
    m = cv2.moments(sc.lesion.mask, binaryImage=True)
    k = sc.work.small.shape[1] / img.shape[1]
    found = np.array([m["m10"], m["m01"]]) / m["m00"]
    assert np.hypot(*(found - np.array([truth.cx, truth.cy]) * k)) < truth.radius * k * 0.4


@pytest.mark.parametrize("seed", [0, 1])
def test_a_lesion_in_the_middle_of_a_soft_edged_view_reads_as_before(seed):
    img, _ = soft_round_view(seed, (0.5, 0.5), 0.2, (0.86, 1.06))
    sc = scene(synth.encode_jpeg(img, 92), QualitySettings(), ViewRules(), text=False)
    assert 0.12 < sc.lesion.area < 0.25 and sc.lesion.cut == 0


def round_fov(n: int = 200, radius: float = 90) -> tuple[FieldOfView, np.ndarray, np.ndarray]:
    """A round field of view of ``radius`` px in an ``n`` x ``n`` frame; its rim band (the outer tenth, as
    ``segment_lesion`` draws it); and each pixel's angle round the centre in degrees."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r = np.hypot(xx - n / 2, yy - n / 2)
    mask = (r < radius).astype(np.uint8) * 255
    inner = (r < radius - 2).astype(np.uint8) * 255
    band = (r >= radius - 12) & (r < radius)
    angle = np.degrees(np.arctan2(yy - n / 2, xx - n / 2)) % 360
    return FieldOfView(mask, inner, True, float(np.pi * radius**2 / n**2), 0.0), band, angle


def test_a_ring_round_the_rim_is_cut_from_the_blob_it_joins():
    fov, band, _ = round_fov()
    blob = np.zeros((200, 200), np.uint8)
    cv2.circle(blob, (100, 60), 45, 1, -1)  # a lesion reaching the rim at the top
    cand = blob | band.astype(np.uint8)
    out = without_rim_ring(cand, band, fov)
    assert not (out[band] > 0).any()  # the ring is gone, with the lesion's part in the band
    assert np.array_equal(out[~band], cand[~band])  # the lesion inside the band is kept whole


@pytest.mark.parametrize("turn", [90, RING_TURN - 20])
def test_a_lesion_cut_along_part_of_the_rim_is_kept(turn):
    fov, band, angle = round_fov()
    cand = (band & (angle < turn)).astype(np.uint8)
    cv2.circle(cand, (150, 150), 25, 1, -1)  # a lesion slid out at the lower right, joined to that arc
    assert np.array_equal(without_rim_ring(cand, band, fov), cand)


def test_a_lesion_larger_than_the_view_is_kept():
    fov, band, _ = round_fov()
    cand = (fov.mask > 0).astype(np.uint8)
    cand[95:105, 95:105] = 0  # a paler spot inside does not make it a ring
    assert np.array_equal(without_rim_ring(cand, band, fov), cand)
