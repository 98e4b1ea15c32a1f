"""An 8-bit image's steps are not the skin's detail: faint skin blurred hard reads little sharper than blurred less.

A smooth stretch of an 8-bit image (faint skin, strongly defocused) climbs one grey level at a time, and the
focus ratio read each step as a sharp edge: on ISIC 2017 a faint lesion blurred 3 px read sharper than one
blurred 1.5 px, and passed. ``measures.focus_ratio`` now cores the fine band by ``STEP_CORE`` grey levels
first; a calibration from before keeps its own (uncored) measure.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.camera import synth
from edge.quality import QualitySettings, assess, focus_value
from edge.quality.measures import STEP_CORE, focus_ratio
from edge.quality.scene import scene
from wire.kioskconfig.quality import FocusMeasure, KioskReference


def faint(seed: int, contrast: float, blur: float) -> bytes:
    """A generated camera-sized frame with its contrast scaled by ``contrast`` about the mean colour,
    defocused by ``blur`` pixels before it is rounded to 8 bits (no noise after the blur, as a camera
    that denoises hard, or a copy blurred by software), as a JPEG."""
    img = synth.lesion_image(1600, 1200, seed, size=0.1).astype(np.float32)
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    mean = img.reshape(-1, 3).mean(0)
    return synth.encode_jpeg(np.clip(np.round(mean + (img - mean) * contrast), 0, 255).astype(np.uint8), 92)


def ratio(data: bytes, cored: bool = True) -> float:
    """The focus ratio of the frame round its lesion, as the gate reads it."""
    settings = QualitySettings()
    return focus_value(scene(data, settings, settings.rules("dermoscopic")), FocusMeasure(cored=cored))


#: A kiosk whose normal stills are soft (the bench's ISIC 2017 kiosk calibrates to 1.66), calibrated since the steps
#: were cored, and the same kiosk calibrated before (its frames measured uncored, as its stills were).
SOFT_KIOSK = dict(chroma=(0.3, -0.02), cov=((0.003, 0.0), (0.0, 0.004)), focus=1.66, focus_thumbnail=1.66,
                  focus_noise_floor=True, focus_field_scaled=True, images=40)


def test_faint_skin_blurred_hard_is_refused():
    data = faint(0, 0.25, 25.0)
    q = assess(data, "dermoscopic", QualitySettings(reference=KioskReference(**SOFT_KIOSK, focus_cored=True)))
    assert not q.checks["focus"].ok and "blurred" in q.checks["focus"].message
    # uncored, its steps read as half the kiosk's normal detail, and it passed
    before = assess(data, "dermoscopic", QualitySettings(reference=KioskReference(**SOFT_KIOSK)))
    assert before.checks["focus"].ok and before.checks["focus"].value > 0.45


def test_more_blur_reads_no_sharper_for_the_steps():
    moderate, strong = (faint(0, 0.25, b) for b in (12.0, 25.0))
    raw = ratio(strong, cored=False) - ratio(moderate, cored=False)
    cored = ratio(strong) - ratio(moderate)
    assert raw > 0.15                     # uncored, more blur read sharper: the steps
    assert cored < 0.3 * raw              # cored, most of that is gone
    sharp = ratio(faint(0, 0.25, 0))
    assert ratio(strong) - 1 < 0.1 * (sharp - 1)


@pytest.mark.parametrize("contrast", [1.0, 0.25])
def test_a_sharp_frame_keeps_its_detail(contrast):
    data = faint(2, contrast, 0)
    cored, raw = ratio(data), ratio(data, cored=False)
    assert cored <= raw
    assert cored - 1 > 0.9 * (raw - 1)                 # the skin's texture is many levels deep
    assert assess(data, "dermoscopic").checks["focus"].ok


def test_a_lone_step_is_cored_out():
    step = np.zeros((60, 60), np.uint8)
    step[:, 30:] = 1
    roi = np.full(step.shape, 255, np.uint8)
    assert focus_ratio(step, roi, noise_floor=False, cored=False) > 1.2
    assert focus_ratio(step, roi, noise_floor=False) < focus_ratio(step, roi, noise_floor=False, cored=False)
    assert 0 < STEP_CORE < 0.23   # under a one-level step's band, which peaks at 0.23


def test_a_calibration_from_before_keeps_its_measure():
    old = KioskReference(chroma=(0.3, -0.02), cov=((0.003, 0.0), (0.0, 0.004)), focus=2.12, focus_thumbnail=2.12,
                         focus_noise_floor=True, focus_field_scaled=True, images=16)
    assert old.focus_cored is False and KioskReference().focus_cored is True
    data = faint(0, 0.25, 25.0)
    got = assess(data, "dermoscopic", QualitySettings(reference=old)).checks["focus"].value
    assert got == pytest.approx((ratio(data, cored=False) - 1) / (old.focus - 1), abs=1e-4)

