"""A camera's file smaller than the focus size is read at that size (``analysis.enlarge``), as a kiosk's frames are.

The focus ratio's scales are fixed in the pixels of the image it reads, and a camera's normal sharpness is its
frames' at the focus size (800 px). Read at its own 600 px, a file blurred as much as a frame (1.5 of its pixels,
2 at 800) kept more of its detail by the ratio than the frame did, over the limit: HAM10000-masks' moderately
defocused copies at their own size were caught 65 %. A calibration from before reads files at their own size.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.camera import synth
from edge.quality import QualitySettings, focus_value
from edge.quality.analysis import decode, enlarge, field_crop
from edge.quality.fov import find_fov
from edge.quality.scene import scene
from wire.kioskconfig.quality import FocusMeasure, KioskReference

SETTINGS = QualitySettings()


def ratio(img: np.ndarray, enlarged: bool = True) -> float:
    """The focus ratio round the lesion of ``img`` saved as a JPEG, as the gate reads it."""
    sc = scene(synth.encode_jpeg(img, 92), SETTINGS, SETTINGS.rules("dermoscopic"))
    return focus_value(sc, FocusMeasure(enlarged=enlarged))


def detail_left(sharp: np.ndarray, blurred: np.ndarray, enlarged: bool = True) -> float:
    """The share of ``sharp``'s detail that ``blurred`` keeps (the focus check's value against it as the normal)."""
    return (ratio(blurred, enlarged) - 1.0) / (ratio(sharp, enlarged) - 1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_small_file_blurred_as_a_frame_keeps_as_little_of_its_detail(seed):
    frame = synth.lesion_image(800, 600, seed, hairs=4)  # at the focus size
    small = cv2.resize(frame, (600, 450), interpolation=cv2.INTER_AREA)  # the same view in a 600-px file
    at_focus_size = detail_left(frame, synth.degrade_blur(frame, 2.0))
    blurred_small = synth.degrade_blur(small, 1.5)  # the same blur, in the file's own pixels
    assert at_focus_size < 0.3
    assert abs(detail_left(small, blurred_small) - at_focus_size) < 0.06
    # read at its own size, the blur left it over the dermoscopic limit (0.35): a calibrated kiosk passed it
    assert detail_left(small, blurred_small, enlarged=False) > 0.35


@pytest.mark.parametrize("size", [(1600, 1200), (800, 600), (300, 225)])
def test_frames_at_the_focus_size_or_larger_and_thumbnails_are_read_as_they_are(size):
    img = synth.lesion_image(*size, 3)
    assert ratio(img) == ratio(img, enlarged=False)


def test_enlarge_scales_by_the_nominal_side_and_leaves_a_frame_near_the_size():
    assert enlarge(np.zeros((450, 600, 3), np.uint8), 800).shape == (600, 800, 3)
    assert enlarge(np.zeros((600, 450, 3), np.uint8), 800).shape == (800, 600, 3)  # portrait: by its longer side
    near = np.zeros((572, 765, 3), np.uint8)  # PH2's frames, 4.6 % under: resampled, they would only be smoothed
    assert enlarge(near, 800) is near
    assert enlarge(np.zeros((900, 1200, 3), np.uint8), 800).shape == (900, 1200, 3)  # never down


def test_a_calibration_from_before_reads_files_at_their_own_size():
    before = KioskReference(chroma=(0.3, -0.02), cov=((0.003, 0.0), (0.0, 0.004)), focus=2.0, focus_thumbnail=2.0,
                            focus_noise_floor=True, focus_field_scaled=True, focus_cored=True, images=40)
    assert before.focus_enlarged is False and KioskReference().focus_enlarged is True


def round_view_frame(view: int, frame_h: int) -> np.ndarray:
    """A generated lesion's middle cut round (``view`` pixels across) on a black 4:3 frame ``frame_h`` high."""
    img = synth.lesion_image(view, view, 5, vignette=False)
    disc = np.zeros((view, view), np.uint8)
    cv2.circle(disc, (view // 2, view // 2), view // 2, 1, -1)
    img[disc == 0] = 0
    out = np.zeros((frame_h, frame_h * 4 // 3, 3), np.uint8)
    y, x = (frame_h - view) // 2, (frame_h * 4 // 3 - view) // 2
    out[y:y + view, x:x + view] = img
    return out


def test_a_small_round_view_of_a_small_file_is_enlarged_as_the_file_is():
    def crop_side(img: np.ndarray, enlarged: bool) -> int:
        work = decode(synth.encode_jpeg(img), SETTINGS.work_size, SETTINGS.focus_size, SETTINGS.analysis_size)
        fov = find_fov(cv2.cvtColor(work.small, cv2.COLOR_BGR2GRAY))
        got = field_crop(work, fov.mask, enlarged)
        assert got is not None
        return max(got[0].shape[:2])

    small_file = round_view_frame(450, 750)  # a 1000 x 750 file, decoded whole: its 450-px view to 600 (3/4 of 800)
    assert crop_side(small_file, False) < 470 and 590 <= crop_side(small_file, True) <= 610
    large_file = round_view_frame(1500, 2500)  # decoded DCT-reduced: never enlarged from the reduced pixels
    assert crop_side(large_file, True) == crop_side(large_file, False)
