"""A defocused photograph keeps its sensor's noise: the focus ratio must not read the noise as detail.

The bench's blurred copies lose the original's noise with its detail; a real defocused photograph does not
(the noise is added after the optics). Near the working size (an archive's or another clinic's 600-1000 px
files) the focus ratio read that noise as the skin's detail: PH2 blurred 3 px with its own noise put back was
caught 81 % uncalibrated (100 % without the noise). ``measures.focus_ratio`` now takes the noise floor (the
fine energy of the flattest windows) off both energies; a calibration from before keeps its own measure.
"""

from __future__ import annotations


import numpy as np
import pytest

from edge.camera import synth
from edge.quality import QualitySettings, assess, focus_value
from edge.quality.scene import scene
from wire.kioskconfig.quality import FocusMeasure, KioskReference


def noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0.0, sigma, img.shape), 0, 255).astype(np.uint8)


def ratios(img: np.ndarray) -> tuple[float, float]:
    """The focus ratio with the noise floor taken off, and without."""
    settings = QualitySettings()
    sc = scene(synth.encode_jpeg(img, 92), settings, settings.rules("dermoscopic"))
    return focus_value(sc), focus_value(sc, FocusMeasure(noise_floor=False))


@pytest.mark.parametrize("seed", [0, 1])
def test_noise_is_not_read_as_detail(seed):
    blurred = synth.degrade_blur(synth.lesion_image(1000, 750, seed), 3.0)
    clean, clean_raw = ratios(blurred)
    with_noise, with_noise_raw = ratios(noisy(blurred, 8.0, seed))
    assert with_noise_raw - clean_raw > 0.2  # without the floor, noise of 8 grey levels reads as sharpness
    assert with_noise - clean < 0.12
    q = assess(synth.encode_jpeg(noisy(blurred, 8.0, seed), 92), "dermoscopic")
    assert not q.checks["focus"].ok and "blurred" in q.checks["focus"].message


@pytest.mark.parametrize("seed", [0, 1])
def test_sharp_frame_with_noise_still_passes(seed):
    sharp = synth.lesion_image(1000, 750, seed)
    q = assess(synth.encode_jpeg(noisy(sharp, 8.0, seed), 92), "dermoscopic")
    assert q.checks["focus"].ok


def test_thumbnail_is_measured_without_the_floor():
    # an archive thumbnail (under 400 px) has no noise left to find, and its flattest windows hold texture
    thumb = synth.cv2.resize(synth.lesion_image(1600, 1200, 0), (320, 240), interpolation=synth.cv2.INTER_AREA)
    floor, raw = ratios(thumb)
    assert floor == raw


def test_a_calibration_from_before_keeps_its_measure():
    old = KioskReference(chroma=(0.3, -0.02), cov=((0.003, 0.0), (0.0, 0.004)), focus=2.12, focus_thumbnail=2.12,
                         images=16)
    assert old.focus_noise_floor is False  # measured before the floor: its frames are measured as its stills were
    assert KioskReference().focus_noise_floor is True
    img = synth.degrade_blur(synth.lesion_image(1000, 750, 0), 2.0)
    data = synth.encode_jpeg(noisy(img, 8.0), 92)
    settings = QualitySettings()
    sc = scene(data, settings, settings.rules("dermoscopic"))
    as_before = (focus_value(sc, FocusMeasure(noise_floor=False, cored=False)) - 1) / (old.focus - 1)
    assert assess(data, "dermoscopic", QualitySettings(reference=old)).checks["focus"].value == \
        pytest.approx(as_before, abs=1e-4)

