"""The robustness bench's own pieces (bench.quality_robust): the noise it puts back, the files it makes."""

import cv2
import numpy as np
import pytest

from bench.quality_robust import VARIANTS, noise_sigma, stamp, wide
from edge.camera import synth


@pytest.mark.parametrize("sigma", [1.0, 2.5, 5.0])
def test_noise_estimate_recovers_white_noise_on_smooth_skin(sigma):
    rng = np.random.default_rng(0)
    skin = cv2.GaussianBlur(rng.uniform(120, 200, (600, 800)).astype(np.float32), (0, 0), 25)
    assert noise_sigma(skin) < 0.3  # smooth: next to no noise
    assert noise_sigma(skin + rng.normal(0, sigma, skin.shape)) == pytest.approx(sigma, rel=0.15)


def test_same_photograph_other_file():
    img = synth.lesion_image(800, 600, 0)
    shapes = {name: make(img).shape[:2] for name, make, _ in VARIANTS}
    assert shapes["portrait"] == (800, 600) and shapes["2x"] == (1200, 1600) and shapes["4x portrait"] == (3200, 2400)
    h, w = wide(img).shape[:2]
    assert abs(w / h - 16 / 9) < 0.01 and not wide(img)[:, :50].any()  # black beside the view
    marked = stamp(img)
    changed = np.any(marked != img, axis=2)
    assert 0.002 < changed.mean() < 0.05 and marked[changed].min(axis=1).max() == 255  # white text, a few % of it
