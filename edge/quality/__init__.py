"""The quality gate: is this still good enough for a dermatologist, and if not, why not.

``assess(jpeg, view, settings)`` decodes the JPEG once on a fixed, DCT-reduced path
(``analysis.decode``) and runs the checks that ``settings`` enables for the view
(dermoscopic, close-up, regional; see ``settings`` for the per-view rules and defaults).
Each check gives a value, a verdict and, when it fails, a message the photographer can act on.
The image passes when every check passes. A file that is not an image gives a single failing
``decode`` check instead of an exception.

``cli_main(paths)`` is ``python -m edge quality IMAGE...``: one JSON object per line.
"""

from __future__ import annotations

import json
import math
import sys

import cv2
import numpy as np

from wire.messages import Quality, QualityCheck

from .analysis import DecodeError, decode, find_fov, focus_ratio, glare_fraction, segment_lesion
from .settings import CHECKS, QualitySettings, ViewRules

__all__ = ["CHECKS", "QualitySettings", "ViewRules", "assess", "cli_main"]

MSG = {
    "decode": "The file is not a readable image: take the picture again",
    "truncated": "The picture is incomplete (truncated file): take the picture again",
    "fov": "The dermatoscope's field of view is off-centre or partly covered: press it flat on the skin, "
           "centred, and tap again",
    "focus": "Image is blurred: hold the dermatoscope still, check the focus and tap again",
    "dark": "Image is too dark: check that the dermatoscope's light is on and tap again",
    "bright": "Image is too bright: reduce the light or exposure and tap again",
    "clip_white": "Parts of the image are burnt out white: reduce the light or exposure and tap again",
    "clip_black": "Parts of the image are black: check the light and that nothing covers the lens, and tap again",
    "glare": "Reflections (glare) on the skin: add contact fluid or use polarised light, and tap again",
    "colour": "Colours look wrong (colour cast): check the lighting and white balance, and tap again",
    "grey": "Colours look washed out: check the lighting and white balance, and tap again",
    "no_lesion": "No lesion found: centre the lesion in the view and tap again",
    "small": "The lesion is too small in the picture: move closer and tap again",
    "cut": "The lesion is cut by the edge of the picture: centre it in the view and tap again",
    "offcentre": "The lesion is off-centre: move it to the middle of the view and tap again",
}


def _check(value: float | None, ok: bool, fail_msg: str) -> QualityCheck:
    if value is not None:
        value = round(float(value), 4)
        if not math.isfinite(value):
            value = None
    return QualityCheck(value=value, ok=bool(ok), message="ok" if ok else fail_msg)


def masked_median(gray: np.ndarray, mask: np.ndarray) -> float:
    """Median of the uint8 image ``gray`` where the boolean ``mask`` is set (0 if empty)."""
    m = mask.astype(np.uint8)
    hist = cv2.calcHist([gray], [0], m, [256], [0, 256]).ravel()
    total = hist.sum()
    if total == 0:
        return 0.0
    return float(np.searchsorted(np.cumsum(hist), total / 2.0))


def colour_distance(lab: np.ndarray, skin: np.ndarray, rules: ViewRules) -> tuple[float, str, float]:
    """Mahalanobis distance of the mean skin colour (a*, b*) from the reference, its direction and chroma.

    ``lab`` is OpenCV's 8-bit CIELAB (a* and b* offset by 128); ``skin`` a boolean mask. The
    chroma is sqrt(a*^2 + b*^2) of the mean skin colour (``colour_max_chroma`` bounds it).
    """
    if not skin.any():
        return float("inf"), "colour", float("inf")
    _, a, b, _ = cv2.mean(lab, mask=skin.astype(np.uint8))
    a, b = a - 128.0, b - 128.0
    d = np.array([a - rules.colour_ref[0], b - rules.colour_ref[1]])
    dist = float(np.sqrt(d @ np.linalg.inv(np.array(rules.colour_cov)) @ d))
    # The cast's direction: the hue angle of the shift from the reference (channel gains move
    # skin towards about 30 deg for red, 100 yellow, 150 green, 255 blue on HAM10000).
    theta = float(np.degrees(np.arctan2(d[1], d[0]))) % 360.0
    direction = "yellow" if 52 <= theta < 130 else "green" if 130 <= theta < 200 else \
        "blue" if 200 <= theta < 300 else "red"
    return dist, direction, float(np.hypot(a, b))


def assess(jpeg: bytes, view: str, settings: QualitySettings | None = None) -> Quality:
    """Run the view's checks on ``jpeg``; ``Quality.ok`` is True when all of them pass.

    Raises ValueError for an unknown view; never raises for unreadable image bytes (they give
    a failing ``decode`` check).
    """
    settings = settings or QualitySettings()
    rules = settings.rules(view)
    try:
        work = decode(jpeg, settings.work_size, settings.focus_size, settings.analysis_size)
    except DecodeError as exc:
        msg = MSG["truncated"] if "truncated" in str(exc) else MSG["decode"]
        return Quality(ok=False, checks={"decode": _check(None, False, msg)})
    enabled = set(rules.checks)
    small = work.small
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2Lab)
    fov = find_fov(gray)
    lesion = segment_lesion(small, fov, lab)
    present = lesion.found and lesion.contrast >= rules.lesion_min_contrast
    inside = fov.inner > 0
    if present:
        ring = cv2.dilate(lesion.mask, np.ones((5, 5), np.uint8))
        skin = inside & (ring == 0)
        if np.count_nonzero(skin) < 0.05 * np.count_nonzero(inside):
            skin = inside
    else:
        skin = inside
    checks: dict[str, QualityCheck] = {}

    if "fov" in enabled:
        ok = (not fov.present) or (fov.area >= rules.fov_min_area and fov.offset <= rules.fov_max_offset)
        checks["fov"] = _check(fov.area, ok, MSG["fov"])

    if "focus" in enabled:
        fh, fw = work.focus.shape[:2]
        s = min(small.shape[:2])
        roi_small = cv2.erode(fov.inner, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (s // 20 | 1,) * 2))
        if present:
            x, y, bw, bh = cv2.boundingRect(lesion.mask)
            pad_x, pad_y = bw // 4 + 2, bh // 4 + 2
            box = np.zeros_like(roi_small)
            box[max(0, y - pad_y):y + bh + pad_y, max(0, x - pad_x):x + bw + pad_x] = 255
            roi_small = cv2.bitwise_and(roi_small, box)
        roi = cv2.resize(roi_small, (fw, fh), interpolation=cv2.INTER_NEAREST)
        value = focus_ratio(cv2.cvtColor(work.focus, cv2.COLOR_BGR2GRAY), roi) if roi.any() else 1.0
        checks["focus"] = _check(value, value >= rules.focus_min, MSG["focus"])

    if "exposure" in enabled:
        value = masked_median(gray, skin)
        msg = MSG["dark"] if value < rules.exposure_min else MSG["bright"]
        checks["exposure"] = _check(value, rules.exposure_min <= value <= rules.exposure_max, msg)

    if "clipping" in enabled:
        n = max(int(np.count_nonzero(inside)), 1)
        b, g, r = cv2.split(small)
        brightest = cv2.max(cv2.max(b, g), r)
        # burnt out: every channel saturated (no detail left); one channel saturated (the red of
        # fair skin under a bright light, most often) loses colour, not detail: allowed over more.
        white = float(np.count_nonzero(cv2.bitwise_and(cv2.inRange(small, (250, 250, 250), (255, 255, 255)),
                                                       fov.inner))) / n
        channel = float(np.count_nonzero(cv2.bitwise_and(cv2.inRange(brightest, 253, 255), fov.inner))) / n
        black = float(np.count_nonzero(cv2.bitwise_and(cv2.inRange(gray, 0, 4), fov.inner))) / n
        ok = white + black <= rules.clipping_max and channel + black <= rules.clipping_channel_max
        msg = MSG["clip_white"] if max(white, channel) >= black else MSG["clip_black"]
        checks["clipping"] = _check(white + black, ok, msg)

    if "glare" in enabled:
        value = glare_fraction(work.focus, fov.inner)
        checks["glare"] = _check(value, value <= rules.glare_max, MSG["glare"])

    if "colour" in enabled:
        value, direction, chroma = colour_distance(lab, skin, rules)
        msg = MSG["colour"].replace("(colour cast)", f"({direction} cast)")
        ok = value <= rules.colour_max and chroma <= rules.colour_max_chroma
        checks["colour"] = _check(value, ok, msg)

    if "lesion" in enabled:
        value = lesion.area if present else 0.0
        ok = present and lesion.area >= rules.lesion_min_area
        checks["lesion"] = _check(value, ok, MSG["no_lesion"] if not present else MSG["small"])

    if "framing" in enabled:
        if not present:
            checks["framing"] = _check(None, False, MSG["no_lesion"])
        else:
            fills = lesion.area >= rules.framing_fill_area and lesion.offset <= rules.framing_fill_offset
            cut = lesion.border > rules.framing_max_border and not fills
            ok = not cut and lesion.offset <= rules.framing_max_offset
            # Why it fails: "cut" once the lesion reaches the edge (over half the border limit, as every cut
            # lesion is; an off-centre one that touches it is best described so too), else "off-centre".
            touches = lesion.border > rules.framing_max_border / 2 and not fills
            checks["framing"] = _check(lesion.offset, ok, MSG["cut"] if touches else MSG["offcentre"])

    return Quality(ok=all(c.ok for c in checks.values()), checks=checks)


def cli_main(paths: list[str], view: str = "dermoscopic", settings: QualitySettings | None = None) -> int:
    """Assess each file and print ``{"image", "ok", "checks"}`` as one JSON line per file.

    Returns 0 when every image passed, 1 when any failed or could not be read, 2 for no paths.
    """
    if not paths:
        print("usage: python -m edge quality IMAGE...", file=sys.stderr)
        return 2
    settings = settings or QualitySettings()
    all_ok = True
    for path in paths:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            q = Quality(ok=False, checks={"decode": QualityCheck(
                value=None, ok=False, message=f"cannot read the file: {exc.strerror or exc}")})
        else:
            q = assess(data, view, settings)
        all_ok &= q.ok
        out = {"image": path, "ok": q.ok,
               "checks": {k: {"value": c.value, "ok": c.ok, "message": c.message} for k, c in q.checks.items()}}
        print(json.dumps(out), flush=True)
    return 0 if all_ok else 1
