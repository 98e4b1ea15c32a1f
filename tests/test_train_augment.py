"""models.data.jpeg_roundtrip: the JPEG re-encode augmentation (--acquisition-aug), on generated images."""

import numpy as np

from models.data import jpeg_roundtrip


def batch(n=6, size=64, seed=0) -> np.ndarray:
    """Smooth generated RGB images (gradients plus a dark blob), like a lesion on skin."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for i in range(n):
        r = 180 + 40 * xx + 5 * i
        g = 120 + 30 * yy
        b = 100 + 20 * (xx * yy)
        blob = np.exp(-(((xx - 0.5) ** 2 + (yy - 0.45) ** 2) / 0.02))
        img = np.stack([r, g, b], -1) * (1 - 0.6 * blob[..., None])
        out.append(img)
    return np.clip(np.array(out), 0, 255).astype(np.uint8) + np.random.default_rng(seed).integers(
        0, 3, (n, size, size, 3), dtype=np.uint8)


def test_off_copies_and_on_changes_every_image():
    x = batch()
    off = jpeg_roundtrip(x, np.random.default_rng(1), p=0.0)
    assert off is not x and np.array_equal(off, x)
    on = jpeg_roundtrip(x, np.random.default_rng(1), p=1.0)
    assert on.shape == x.shape and on.dtype == np.uint8
    diff = np.abs(on.astype(int) - x.astype(int)).reshape(len(x), -1)
    assert (diff.max(1) > 0).all()            # every image re-encoded
    assert diff.mean() < 8                    # still the same picture (colour order kept: RGB in, RGB out)
    assert np.array_equal(x, batch())         # the input is not modified


def test_lower_quality_loses_more_and_draws_are_reproducible():
    x = batch()
    err = {}
    for q in (30, 90):
        y = jpeg_roundtrip(x, np.random.default_rng(2), p=1.0, quality=(q, q))
        err[q] = np.abs(y.astype(int) - x.astype(int)).mean()
    assert err[30] > err[90]
    a = jpeg_roundtrip(x, np.random.default_rng(3), p=0.5)
    b = jpeg_roundtrip(x, np.random.default_rng(3), p=0.5)
    assert np.array_equal(a, b)
    changed = (a != x).reshape(len(x), -1).any(1)
    assert 0 < changed.sum() < len(x)  # p=0.5 re-encodes some, not all (seed 3, 6 images)
