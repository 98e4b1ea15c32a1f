"""The focus and shake checks' measure: the focus ratio around the lesion, in the worst and the best direction.

``focus_values`` measures a scene once (``Scene.memo``) and both checks read it: ``focus`` holds the worst direction to
the kiosk's normal, ``shake`` the worst to the best, every pixel evenly weighed (``shake_share``).
"""

from __future__ import annotations

import cv2
import numpy as np

from wire.kioskconfig.quality import FocusMeasure, camera_sized

from .analysis import enlarge, field_crop
from .measures import FocusRatios, focus_ratios
from .scene import Scene, around_lesion
from .stamps import text_mask

#: The focus check's region around the lesion is at least this share of the frame's shorter side
#: each way: a small lesion's own box holds too little detail for a steady ratio (ISIC 2017's small
#: lesions in 256-px images), and the skin beside it lies in the same plane under the contact plate.
FOCUS_LEAST = 0.35


def focus_value(sc: Scene, measure: FocusMeasure = FocusMeasure()) -> float:
    """The focus ratio in the worst direction, measured as ``measure`` says (the kiosk's
    ``KioskReference.focus_measure``; by default an uncalibrated kiosk's): weighed by energy (``focus_values``'
    ``worst``), or with every pixel evenly weighed where ``measure.even`` (its ``even_worst``: a calibration of
    today)."""
    ratios = focus_values(sc, measure)
    return ratios.even_worst if measure.even else ratios.worst


def focus_values(sc: Scene, measure: FocusMeasure = FocusMeasure()) -> FocusRatios:
    """The focus ratios in the worst and the best direction, weighed by energy and evenly (``measures.focus_ratios``),
    around the lesion (its box grown by a quarter, and to at least ``FOCUS_LEAST`` of the shorter side), or over the
    field of view without one; lines of burnt-in text (``stamps.text_mask``) left out unless they are all there is.
    Each change ``measure`` holds (``FocusMeasure``; its ``even`` is the caller's to read) applies unless it is off,
    as in a calibration from before it: the sensor's noise floor taken off on a camera-sized frame (``camera_sized``;
    ``noise_floor``); a round view well inside a larger frame read on its own box at its own scale
    (``analysis.field_crop``; ``field_scaled``); the 8-bit steps cored out of the fine detail (``measures.STEP_CORE``;
    ``cored``); a camera-sized file smaller than the focus size read enlarged to it (``analysis.enlarge``), and a small
    round view of one at the view's own scale enlarged too (``enlarged``). Measured once per scene and measure
    (``Scene.memo``): the focus and shake checks read the same ratios."""
    key = ("focus", measure._replace(even=False))
    if key not in sc.memo:
        sc.memo[key] = _focus_values(sc, measure)
    return sc.memo[key]


def _focus_values(sc: Scene, measure: FocusMeasure) -> FocusRatios:
    focus, small, gray = sc.work.focus, sc.work.small, sc.focus_gray
    # burnt-in text is sharp however blurred the skin under it; found in the whole frame (taken first, so that no
    # search started beside the segmentation is left running)
    text = sc.text.result() if sc.text is not None else text_mask(focus, gray)
    # a small view is measured at its own scale: its box cut from the decoded frame (crop) and that box in small
    # read at the focus size's scale, as a kiosk's frame
    camera_file = measure.enlarged and camera_sized(sc.work.full_size)
    crop, box = (field_crop(sc.work, sc.fov.mask, camera_file) if measure.field_scaled else None) or (None, None)
    s = min(small.shape[:2])
    view = s if box is None else max(box[2], box[3])  # the view's own size: margins and the least region follow it
    roi_small = cv2.erode(sc.fov.inner, cv2.getStructuringElement(cv2.MORPH_RECT, (view // 20 | 1,) * 2))
    if sc.present:
        roi_small = cv2.bitwise_and(roi_small, around_lesion(sc, FOCUS_LEAST * view / s))
    if not roi_small.any():
        return FocusRatios(1.0, 1.0, 1.0, 1.0)
    if box is not None:
        x, y, bw, bh = box
        k = focus.shape[1] / small.shape[1]
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        if text is not None:
            text = _resized(text[round(y * k):round((y + bh) * k), round(x * k):round((x + bw) * k)], gray)
        roi_small = roi_small[y:y + bh, x:x + bw]
    if camera_file and box is None and sc.work.focus_side:
        gray = enlarge(gray, sc.work.focus_side)  # a camera's file under the focus size, at the scale its normal has
        if text is not None:
            text = _resized(text, gray)
    fh, fw = gray.shape[:2]
    roi = _resized(roi_small, gray)
    if not roi.any():
        return FocusRatios(1.0, 1.0, 1.0, 1.0)
    if text is not None:
        rest = cv2.subtract(roi, text)
        if cv2.countNonZero(rest):
            roi = rest
    # only the ROI's box (and the blurs' margin, as focus_ratio takes it) is measured
    x, y, bw, bh = cv2.boundingRect(roi)
    xa, ya, xb, yb = max(0, x - 10), max(0, y - 10), min(fw, x + bw + 10), min(fh, y + bh + 10)
    return focus_ratios(gray[ya:yb, xa:xb], roi[ya:yb, xa:xb],
                        noise_floor=measure.noise_floor and camera_sized(sc.work.full_size), cored=measure.cored)


def _resized(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``mask`` (uint8 0/255) at ``like``'s size, nearest neighbour."""
    return cv2.resize(mask, (like.shape[1], like.shape[0]), interpolation=cv2.INTER_NEAREST)


def shake_share(sc: Scene) -> float | None:
    """The fine detail left along the photograph's worst direction as a share of that along its best (1 = alike every
    way; ``focus_values``' even pair, as a calibration of today measures them), which the shake check holds to
    ``shake_min``: a straight shake blurs along its own direction only, and the other keeps the optics' own sharpness,
    so no kiosk's normal is needed. Every pixel is weighed evenly (``measures.EVEN_PERCENTILE``): a few hairs lying one
    way would otherwise make a sharp photograph's best direction theirs. None where it is not judged: an archive's
    thumbnail (under ``THUMBNAIL_SIDE`` pixels, whose skin has lost its fine detail and whose hairs' direction would
    read as a shake) or a photograph with no fine detail any way (``SHAKE_LEAST_DETAIL``: the focus check refuses it)."""
    if not camera_sized(sc.work.full_size):
        return None
    ratios = focus_values(sc)
    worst, best = ratios.even_worst, ratios.even_best
    if best - 1.0 <= SHAKE_LEAST_DETAIL:
        return None
    return max(worst - 1.0, 0.0) / (best - 1.0)


#: Fine detail (the best direction's ratio less 1) under which no direction holds any: nothing for ``shake_share``
#: to compare.
SHAKE_LEAST_DETAIL = 0.02
