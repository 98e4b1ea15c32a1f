"""The robustness bench's own pieces (bench.quality_robust): the noise it puts back, the files it makes."""

import cv2
import numpy as np
import pytest

from bench.quality_robust import (VARIANTS, adobe_rgb, cmyk_jpeg, encoded, exif_turned, noise_sigma, png16, round_view,
                                  stamp, wide)
from edge.quality import QualitySettings, assess
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
    assert shapes["1.3x"] == (780, 1040)
    assert shapes["portrait"] == (800, 600) and shapes["2x"] == (1200, 1600) and shapes["4x portrait"] == (3200, 2400)
    h, w = wide(img).shape[:2]
    assert abs(w / h - 16 / 9) < 0.01 and not wide(img)[:, :50].any()  # black beside the view
    framed = round_view(img, 0.6)
    assert framed.shape[:2] == (1000, 1333)                                    # 600 / 0.6 high, 4:3
    assert not framed[:200].any() and not framed[:, :366].any()                # black round the view
    assert framed[500, 376:956].min() > 0                                      # the skin at its own pixels inside
    assert np.array_equal(framed[500, 566:766], img[300, 300:500]) and not framed[220, 420].any()  # cut round
    marked = stamp(img)
    changed = np.any(marked != img, axis=2)
    assert 0.002 < changed.mean() < 0.05 and marked[changed].min(axis=1).max() == 255  # white text, a few % of it


def test_other_files_of_one_photograph_are_judged_alike():
    """Stored on its side with an EXIF orientation, as a 16-bit PNG or as a CMYK JPEG: the gate sees the
    same upright picture (OpenCV turns and converts on decoding), so the same verdict and nearly the same
    focus value as from the plain JPEG; a JPEG whose orientation tag were ignored would be a portrait frame."""
    img = synth.lesion_image(800, 600, 3)
    plain = assess(synth.encode_jpeg(img, 92), "dermoscopic", QualitySettings())
    stored_on_side = cv2.imdecode(np.frombuffer(exif_turned(img), np.uint8),
                                  cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert stored_on_side.shape[:2] == (800, 600)  # without its tag the file is a portrait frame
    progressive = encoded(".jpg", cv2.IMWRITE_JPEG_QUALITY, 92, cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    webp = encoded(".webp", cv2.IMWRITE_WEBP_QUALITY, 92)
    assert progressive(img)[:2] == b"\xff\xd8" and b"\xff\xc2" in progressive(img)   # SOF2: progressive
    assert webp(img)[8:12] == b"WEBP"
    for data in (exif_turned(img), png16(img), cmyk_jpeg(img), progressive(img), webp(img)):
        shown = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert shown.shape == img.shape and np.abs(shown.astype(int) - img).mean() < 3
        q = assess(data, "dermoscopic", QualitySettings())
        assert q.ok == plain.ok and set(q.checks) == set(plain.checks)
        assert q.checks["focus"].value == pytest.approx(plain.checks["focus"].value, rel=0.1)


def test_adobe_rgb_numbers_are_paler_for_the_same_skin():
    skin = np.full((4, 4, 3), (120, 150, 210), np.uint8)  # BGR: a pale skin
    a = adobe_rgb(skin)[0, 0].astype(int)
    assert a[2] < 210 and a[0] > 120  # less red, more blue: less saturated numbers
    grey = np.full((4, 4, 3), 128, np.uint8)
    assert np.abs(adobe_rgb(grey).astype(int) - 128).max() <= 2  # greys stay grey
