"""The bench's lesion cut by the edge (``bench.quality_degrade.cut``) draws what it claims: the lesion slid half
out of the view, and the strip the slide uncovers as plain skin with no dark band along its seam.

Before the eighteenth round the seam was feathered across both sides, and on the uncovered side it mixed in the
black that the slide leaves where nothing was seen: a band a third darker than the skin ran the height or width
of the view, and the gate's segmentation took the skin beside it for the lesion.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

from bench.quality_degrade import cut

SKIN = (150, 170, 205)


def plain_skin_with_a_lesion() -> tuple[np.ndarray, np.ndarray]:
    """A 4:3 still of even skin (a fine grain) with a dark round lesion in the middle, and the lesion's mask."""
    rng = np.random.default_rng(0)
    img = np.clip(np.array(SKIN, np.float32) + rng.normal(0, 3, (600, 800, 3)), 0, 255).astype(np.uint8)
    lesion = np.zeros((600, 800), np.uint8)
    cv2.circle(lesion, (400, 300), 80, 1, -1)
    img[lesion > 0] = (60, 70, 110)
    return img, lesion > 0


def banded(gray: np.ndarray) -> np.ndarray:
    """Where a row's or a column's median grey is well below the skin's: a band across the view (the slid lesion
    covers under half of any row or column, so it leaves the medians alone)."""
    skin = skin_grey()
    cols, rows = np.median(gray, axis=0) < skin - 6, np.median(gray, axis=1) < skin - 6
    return cols[None, :] | rows[:, None]


def skin_grey() -> float:
    return float(cv2.cvtColor(np.uint8([[SKIN]]), cv2.COLOR_BGR2GRAY)[0, 0])


@pytest.mark.parametrize("seed", range(4))  # the four directions
def test_the_uncovered_strip_has_no_dark_seam(seed):
    img, lesion = plain_skin_with_a_lesion()
    gray = cv2.cvtColor(cut(img, lesion, 0.5, random.Random(seed)), cv2.COLOR_BGR2GRAY).astype(np.float32)
    assert not banded(gray).any()


@pytest.mark.parametrize("seed", range(4))
def test_half_the_lesion_is_out_of_the_view(seed):
    img, lesion = plain_skin_with_a_lesion()
    gray = cv2.cvtColor(cut(img, lesion, 0.5, random.Random(seed)), cv2.COLOR_BGR2GRAY)
    left = np.count_nonzero((gray < 120) & ~banded(gray)) / np.count_nonzero(lesion)
    assert 0.3 < left <= 0.55, left
