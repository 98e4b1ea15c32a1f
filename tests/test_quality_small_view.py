"""A view smaller than the frame (a round view with black round it, on a sensor larger than the dermatoscope's
view) is measured for focus at its own scale, as the same view filling the frame's height is."""

import cv2
import numpy as np
import pytest

from bench.quality_robust import round_view
from edge.camera import synth
from edge.quality import KioskReference, QualitySettings, assess, focus_value
from edge.quality.analysis import FIELD_SCALED, decode, field_crop, find_fov
from edge.quality.scene import scene
from wire.kioskconfig.quality import FocusMeasure


def focus_of(img: np.ndarray) -> float:
    return assess(synth.encode_jpeg(img, 92), "dermoscopic", QualitySettings()).checks["focus"].value


def textured(seed: int, grain: float) -> np.ndarray:
    """A camera-sized still whose skin has fine texture of ``grain`` px (a Gaussian's sigma), as the skin's
    furrows and the pigment network give a real one: what a coarser working scale loses or keeps."""
    img = synth.lesion_image(1600, 1200, seed).astype(np.float32)
    n = cv2.GaussianBlur(np.random.default_rng(seed).normal(0, 1, img.shape[:2]).astype(np.float32), (0, 0), grain)
    return np.clip(img + (14.0 / n.std()) * n[..., None], 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed,grain", [(0, 1.5), (2, 1.5), (0, 3.0), (3, 3.0)])
def test_a_smaller_round_view_reads_the_focus_of_the_full_height_one(seed, grain):
    img = textured(seed, grain)
    full, small = round_view(img, 1.0), round_view(img, 0.6)
    assert small.shape[0] == 2000                          # the same skin, at its own pixels, on a larger frame
    # measured with the frame reduced as a whole, the smaller view read 0.73-1.82 times the full-height one's
    assert focus_of(small) == pytest.approx(focus_of(full), rel=0.05)
    blurred = round_view(synth.degrade_blur(img, 6.0), 0.6)
    q = assess(synth.encode_jpeg(blurred, 92), "dermoscopic", QualitySettings())
    assert not q.checks["focus"].ok and q.checks["fov"].ok  # and blurred, it is still refused for focus


def test_only_a_field_narrower_than_the_frame_is_cut_out():
    img = synth.lesion_image(1600, 1200, 3)
    settings = QualitySettings()

    def crop(frame):
        work = decode(synth.encode_jpeg(frame, 92), settings.work_size, settings.focus_size, settings.analysis_size)
        return field_crop(work, find_fov(cv2.cvtColor(work.small, cv2.COLOR_BGR2GRAY)).mask)

    assert crop(img) is None                               # no vignette: the whole frame
    assert crop(round_view(img, 1.0)) is None              # a round view as high as the frame
    assert crop(round_view(img, FIELD_SCALED + 0.1)) is None
    got = crop(round_view(img, 0.6))
    assert got is not None
    view, (x, y, w, h) = got
    assert max(view.shape[:2]) == pytest.approx(600, abs=8)  # scaled as a full-height view at the focus size
    assert abs(view.shape[0] - view.shape[1]) <= 4            # the round view's box
    assert crop(cv2.resize(round_view(img, 0.6), None, fx=0.25, fy=0.25)) is None  # nothing to gain: not reduced


def test_a_calibration_from_before_measures_a_small_view_as_its_stills_were():
    """A kiosk calibrated before a small view was measured at its own scale keeps its measure (its normal was
    taken at the frame's scale; a new one's flag: ``test_quality_calibrate``)."""
    old = KioskReference(chroma=(0.3, -0.02), cov=((0.003, 0.0), (0.0, 0.004)), focus=2.12, focus_thumbnail=2.12,
                         focus_noise_floor=True, images=16)
    assert old.focus_field_scaled is False and KioskReference().focus_field_scaled is True
    data = synth.encode_jpeg(round_view(textured(0, 3.0), 0.6), 92)
    settings = QualitySettings()
    sc = scene(data, settings, settings.rules("dermoscopic"))
    at_frame_scale = FocusMeasure(field_scaled=False)
    assert focus_value(sc, at_frame_scale) != pytest.approx(focus_value(sc), rel=0.05)   # the two measures differ here
    got = assess(data, "dermoscopic", QualitySettings(reference=old)).checks["focus"].value
    as_old = focus_value(sc, at_frame_scale._replace(cored=False))  # as a calibration from before both changes
    assert got == pytest.approx((as_old - 1) / (old.focus - 1), abs=1e-4)

