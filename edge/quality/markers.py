"""What is on the skin but is neither lesion nor skin: colour-calibration stickers and pen marks.

Clinics put round colour stickers (orange, yellow, red, green, blue; some rings of two colours)
beside a lesion to identify the photograph or to check its colour, and draw round a lesion with a
surgical marker. The lesion segmentation must not take one for the lesion (a sticker at the edge of
the view would be "a lesion cut by the edge"), and the skin's colour and brightness must not
include them. The rules are in CIELAB (OpenCV's 8-bit encoding: L* scaled to 0-255, a* and b*
offset by 128), as measured on ISIC 2017's stickers against PH2's, HAM10000's and ISIC 2017's
lesions (README, "The quality gate").
"""

from __future__ import annotations

import cv2
import numpy as np

#: No skin lesion is this green (a*): green stickers, green pen. Nor, on average over its blob, this blue (b*) beside
#: the middle of the view: blue stickers, paper and pen.
BLUE_B = -15.0
GREEN_A = -15.0
#: In the middle of the view (``STICKER_OFFSET``) a blob as blue as ``BLUE_B`` is the lesion the photographer aimed at:
#: the blue-grey of a pigmented basal cell carcinoma's nests, a melanoma's blue-white veil or a blue naevus, or a
#: vascular lesion's violet (b* -15 to -25 over the 40 such lesions of the 25,165 files of ``../shared/data``, issue
#: 24's thirty-third round), unless it is bluer than any of them (a blue sticker or paper: ISIC 2017's reach b* -31
#: and -45) or a drawn line (``STROKE_WIDTH``: a pen's ring round the lesion).
BLUE_MARK_B = -30.0
#: A drawn line: the widest circle inside the blob has a radius under this share of the square root of the blob's area
#: (a stroke under about a seventh as wide as it is long; a disc reads 0.56). ISIC 2017's violet ring round a lesion
#: (ISIC_0013414) reads 0.13, the blue and violet lesions 0.22-0.52.
STROKE_WIDTH = 0.18
#: A bright saturated orange beyond a pale orange-brown naevus (PH2's reach about b* 55 at L* 62).
ORANGE_B, ORANGE_L = 60.0, 65.0
#: A warm sticker (orange, yellow, salmon): at least this light, this saturated (chroma) and this
#: yellow (b*: red and purple vascular lesions lie below) ...
WARM_L, WARM_CHROMA, WARM_B = 50.0, 45.0, 30.0
#: ... beside the lesion, not where the photographer aims (its centre at least this far from the
#: frame's, in halves of the shorter side: a sticker in the middle would hide the lesion) ...
STICKER_OFFSET = 0.5
#: ... and die-cut (its outline convex: area over its convex hull's at least this) or printed flat
#: (its lightness's standard deviation inside at most this); lesions as saturated have an irregular
#: outline and a pigment network, globules or vessels inside.
STICKER_SOLIDITY = 0.98
STICKER_FLAT_L = 3.0
#: Or, beside the middle too, the centre of a two-colour sticker (ISIC 2017's red centre in a lavender ring, as red as
#: a vascular lesion): a ring round the blob, this share of the shorter side wide, at least this share of it
#: coloured like a sticker (``skin_marks``) ...
STICKER_RING_WIDTH, STICKER_RING = 0.04, 0.6
#: ... where such colours are not the skin's own: on this share of the lit view (L* over ``LIT_L``) or more they are the
#: skin under a cast (a bluish thumbnail), as the segmentation takes them too.
MARKED_SKIN_SHARE, LIT_L = 0.4, 15.0


def skin_marks(lab: np.ndarray) -> np.ndarray:
    """Boolean mask of the pixels coloured like a sticker or pen mark rather than skin: b* below
    ``BLUE_B`` or chroma over 60 (the skin's colour and brightness leave them out). ``lab``: an image, or
    any array of CIELAB pixels on its last axis."""
    a, b = lab[..., 1].astype(np.int16) - 128, lab[..., 2].astype(np.int16) - 128
    return (b < BLUE_B) | (a * a + b * b > 3600)


def is_marker(lab: np.ndarray, blob: np.ndarray) -> bool:
    """Whether the blob (uint8 mask, nonzero inside) of the CIELAB image ``lab`` is a sticker or pen
    mark rather than a lesion: green; a bright saturated orange; blue, unless it is in the middle of the frame,
    no bluer than a lesion and not a drawn line (``BLUE_MARK_B``, ``STROKE_WIDTH``); or, away from the middle of
    the frame, a bright saturated warm colour that is convex or flat, or the centre of a two-colour sticker
    (``ringed``; see the constants)."""
    l_mean, a_mean, b_mean, _ = cv2.mean(lab, mask=blob)
    l_mean, a_mean, b_mean = l_mean * (100 / 255), a_mean - 128.0, b_mean - 128.0
    if a_mean < GREEN_A or (b_mean > ORANGE_B and l_mean > ORANGE_L):
        return True
    m = cv2.moments(blob, binaryImage=True)
    h, w = blob.shape
    centred = not m["m00"] or np.hypot(m["m10"] / m["m00"] - (w - 1) / 2, m["m01"] / m["m00"] - (h - 1) / 2) \
        < STICKER_OFFSET * min(h, w) / 2
    if b_mean < BLUE_B:
        return b_mean < BLUE_MARK_B or not centred or _drawn_line(blob, m["m00"])
    if centred:
        return False
    if warm_sticker_colour(l_mean, a_mean, b_mean) and (
            _solidity(blob) >= STICKER_SOLIDITY or _lightness_sd(lab, blob) <= STICKER_FLAT_L):
        return True
    return ringed(lab, blob)


def ringed(lab: np.ndarray, blob: np.ndarray) -> bool:
    """Whether a ring round the blob (``STICKER_RING_WIDTH`` of the shorter side wide) is at least ``STICKER_RING``
    coloured like a sticker (``skin_marks``): the blob is the centre of a two-colour sticker. Not where such colours
    cover ``MARKED_SKIN_SHARE`` of the lit image or more: there they are the skin's, under a cast."""
    h, w = blob.shape
    r = max(3, int(STICKER_RING_WIDTH * min(h, w)))
    ring = cv2.subtract(cv2.dilate(blob, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)), blob) > 0
    # the ring's own pixels first: nearly every blob ends there, without reading the whole image for a cast
    if not ring.any() or float(skin_marks(lab[ring]).mean()) < STICKER_RING:
        return False
    lit = lab[..., 0] > LIT_L * 255 / 100
    return bool(lit.any()) and float(skin_marks(lab[lit]).mean()) < MARKED_SKIN_SHARE


def warm_sticker_colour(l_mean: float, a_mean: float, b_mean: float) -> bool:
    """Whether a blob's mean colour (L* 0-100, a*, b*) is a warm sticker's: light, saturated and yellow
    enough (``WARM_L``, ``WARM_CHROMA``, ``WARM_B``); where it lies and its shape decide the rest."""
    return l_mean >= WARM_L and b_mean >= WARM_B and float(np.hypot(a_mean, b_mean)) >= WARM_CHROMA


def _drawn_line(blob: np.ndarray, area: float) -> bool:
    """Whether the blob (of ``area`` pixels) is a drawn line rather than a patch: no circle inside it as wide as
    ``STROKE_WIDTH`` of the square root of its area."""
    if area <= 0:
        return True
    inside = cv2.distanceTransform(cv2.copyMakeBorder(blob, 1, 1, 1, 1, cv2.BORDER_CONSTANT), cv2.DIST_L2, 3)
    return float(inside.max()) < STROKE_WIDTH * float(np.sqrt(area))


def _solidity(blob: np.ndarray) -> float:
    """Area of the blob's largest outline over its convex hull's (1: convex)."""
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 0.0
    c = max(contours, key=cv2.contourArea)
    hull = cv2.contourArea(cv2.convexHull(c))
    return float(cv2.contourArea(c) / hull) if hull > 0 else 0.0


def _lightness_sd(lab: np.ndarray, blob: np.ndarray) -> float:
    """Standard deviation of L* (0-100) inside the blob, its outline's soft edge left out."""
    core = cv2.erode(blob, np.ones((5, 5), np.uint8))
    if cv2.countNonZero(core) < 20:
        core = blob
    _, sd = cv2.meanStdDev(np.ascontiguousarray(lab[..., 0]), mask=core)
    return float(sd[0, 0]) * (100 / 255)
