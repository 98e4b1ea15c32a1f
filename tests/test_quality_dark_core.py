"""A small dark lesion is not cut by the edge because darker skin round it is (``choice.core_in_the_middle``, issue 24).

The lesion's threshold is one Otsu split of the view. Where the lesion is small and the skin uneven (a patch of redder,
darker skin round the lesion, running on to the edge of the view), the split falls between the bright skin and the
darker skin, and the lesion is taken with that patch: one blob, cut by the edge, and a plain lesion in the middle of the
view was refused as "The lesion is cut by the left edge of the picture". Such a blob now gives way to the dark core
inside it (a second split on the blob's own pixels) where the core is a clear lesion in the middle, not touching the
edge, and the rest of the blob is under half as far from the skin as the core. A lesion whose paler part runs to the
edge, or whose dark core is off the middle, is cut as before.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.camera import synth
from edge.quality import QualitySettings, assess
from edge.quality.choice import CORE_HALO
from edge.quality.scene import scene
from wire.kioskconfig.quality import ViewRules

SKIN = (150, 180, 235)  # BGR: fair skin, L* 78
DARK = (45, 55, 95)  # a dark brown lesion


def lab(bgr) -> np.ndarray:
    """CIELAB (L* 0-100, a*, b*) of one BGR colour."""
    v = cv2.cvtColor(np.uint8([[bgr]]), cv2.COLOR_BGR2Lab)[0, 0].astype(float)
    return np.array([v[0] * 100 / 255, v[1] - 128, v[2] - 128])


def lobed(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    """A five-lobed blob (uint8 0/255)."""
    t = np.linspace(0, 2 * np.pi, 90)
    r = radius * (1 + 0.2 * np.sin(5 * t))
    pts = np.stack([centre[0] + r * np.cos(t), centre[1] + r * np.sin(t)], 1).astype(np.int32)
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [pts], 255)
    return m


def lesion_on_a_patch(patch: tuple[float, float, float], centre: tuple[float, float] = (0.5, 0.5),
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 1600 x 1200 still: textured skin, a patch of it multiplied by ``patch`` (B, G, R) running from round the lesion
    to the left edge, and a small dark lesion (radius 0.07 of the height) at ``centre`` (fractions); and the lesion."""
    rng = np.random.default_rng(seed)
    h, w = 1200, 1600
    img = np.full((h, w, 3), SKIN, np.float32)
    img *= 1 + 0.12 * cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)[..., None]
    cx, cy = int(centre[0] * w), int(centre[1] * h)
    area = np.zeros((h, w), np.uint8)
    cv2.ellipse(area, (cx, cy), (int(0.2 * h), int(0.15 * h)), 0, 0, 360, 255, -1)
    cv2.line(area, (cx, cy), (0, int(0.55 * h)), 255, int(0.45 * h))
    soft = cv2.GaussianBlur(area, (0, 0), 25).astype(np.float32)[..., None] / 255
    img = img * (1 - soft * (1 - np.array(patch, np.float32)))
    blob = lobed((h, w), (cx, cy), 0.07 * h)
    a = cv2.GaussianBlur(blob, (0, 0), 4).astype(np.float32)[..., None] / 255
    blotch = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 8)[..., None]
    img = img * (1 - a) + np.array(DARK, np.float32) * (1 + 0.4 * blotch) * a
    img += rng.normal(0, 2, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), blob


#: A little darker, redder skin (delta E 8-13 from the skin, the lesion 51 away): taken with the lesion before.
REDDER = [(0.88, 0.88, 0.94), (0.84, 0.84, 0.92), (0.80, 0.80, 0.90)]
#: A lesion's paler brown part (delta E 30 from the skin, the dark core 51 away): the lesion itself, run to the edge.
PALE_BROWN = (0.45, 0.55, 0.72)


def test_the_patches_are_what_they_stand_for():
    skin = lab(SKIN)
    core = np.linalg.norm(lab(DARK) - skin)
    for patch in REDDER:
        assert np.linalg.norm(lab(np.array(SKIN) * patch) - skin) < CORE_HALO * core
    assert np.linalg.norm(lab(np.array(SKIN) * PALE_BROWN) - skin) > CORE_HALO * core


@pytest.mark.parametrize("patch", REDDER)
@pytest.mark.parametrize("seed", [0, 1])
def test_a_small_dark_lesion_on_a_patch_of_darker_skin_is_not_cut(patch, seed):
    img, truth = lesion_on_a_patch(patch, seed=seed)
    data = synth.encode_jpeg(img, 92)
    q = assess(data, "dermoscopic")
    assert q.ok, {k: c.message for k, c in q.checks.items() if not c.ok}
    sc = scene(data, QualitySettings(), ViewRules(), text=False)
    found = cv2.resize(sc.lesion.mask, truth.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    drawn = truth > 0
    assert np.count_nonzero(found & drawn) / np.count_nonzero(found | drawn) > 0.7  # the lesion, not the patch


@pytest.mark.parametrize("seed", [0, 1])
def test_a_lesion_whose_paler_part_runs_to_the_edge_is_still_cut(seed):
    img, _ = lesion_on_a_patch(PALE_BROWN, seed=seed)
    q = assess(synth.encode_jpeg(img, 92), "dermoscopic")
    assert not q.checks["framing"].ok and "cut by the left edge" in q.checks["framing"].message


def test_a_dark_core_off_the_middle_is_still_cut():
    # the same patch of darker skin, the lesion on it off the middle (where one slid towards the edge lies)
    img, _ = lesion_on_a_patch(REDDER[1], centre=(0.2, 0.55))
    q = assess(synth.encode_jpeg(img, 92), "dermoscopic")
    assert not q.checks["framing"].ok
