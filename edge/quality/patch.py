"""The contact plate's grey patch (``wire.kioskconfig.quality.GreyPatch``): where it lies in a frame, what colour
the light gives it, and how far that is from the kiosk's normal.

A kiosk whose dermatoscope shows a neutral grey patch at the rim of its view reads the light's colour there in
every frame. The colour check then measures the cast on the patch, not on the skin, whose colour is the patient's
as much as the light's; every other check leaves the patch's pixels out (``hidden``).
"""

from __future__ import annotations

import cv2
import numpy as np

from wire.kioskconfig.quality import GreyPatch

#: The patch is read over its middle, this share of its radius: its printed edge, and the frame's blur and JPEG
#: ringing round it, stay out.
READ_SHARE = 0.7
#: The other checks leave out the patch grown by this share of its radius, and at least ``HIDE_LEAST_PX`` pixels:
#: its edge is sharp however blurred the skin (the focus check), and darker than the skin (the lesion's search).
HIDE_GROW = 0.3
HIDE_LEAST_PX = 3
#: A patch pixel is read where every channel lies within these levels: a saturated or black channel hides the
#: pixel's colour.
LEVELS = (16, 249)
#: The patch is unreadable where fewer than this share of its read pixels keep all three channels within
#: ``LEVELS`` (burnt out or in the dark: the photograph's exposure is wrong, or something covers the patch).
READABLE_SHARE = 0.5


def disc(shape: tuple[int, ...], patch: GreyPatch, share: float = 1.0, least_px: int = 0) -> np.ndarray:
    """The patch as a uint8 0/255 mask of an image of ``shape`` (height, width, ...), its radius times ``share``,
    and at least ``least_px`` pixels more than its own."""
    h, w = shape[:2]
    cx, cy, r = patch.circle(w, h)
    r = max(r * share, r + least_px) if least_px else r * share
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (cx, cy), max(1, round(r)), 255, -1)
    return mask


def hidden(shape: tuple[int, ...], patch: GreyPatch) -> np.ndarray:
    """What the other checks leave out of an image of ``shape``: the patch, grown by ``HIDE_GROW`` of its radius and
    at least ``HIDE_LEAST_PX`` pixels (uint8 0/255)."""
    return disc(shape, patch, 1.0 + HIDE_GROW, HIDE_LEAST_PX)


def _medians(small: np.ndarray, where: np.ndarray) -> tuple[float, float, float] | None:
    """Over the pixels of ``small`` (BGR uint8) in ``where`` (bool) with every channel within ``LEVELS``: the medians of
    ln R/G, ln B/G and of the log of each pixel's brightest channel. None where under ``READABLE_SHARE`` of them are."""
    pixels = small[where]
    lo, hi = LEVELS
    keep = pixels[((pixels >= lo) & (pixels <= hi)).all(axis=1)]
    if len(pixels) == 0 or len(keep) < max(5, READABLE_SHARE * len(pixels)):
        return None
    logs = np.log(keep.astype(np.float64) + 1.0)
    b, g, r = logs[:, 0], logs[:, 1], logs[:, 2]
    return float(np.median(r - g)), float(np.median(b - g)), float(np.median(logs.max(axis=1)))


def patch_colour(small: np.ndarray, patch: GreyPatch) -> tuple[float, float] | None:
    """The patch's colour in ``small`` (BGR uint8): the medians of ln R/G and ln B/G over the middle of the patch
    (``READ_SHARE`` of its radius), over pixels with every channel within ``LEVELS``. None where the patch cannot
    be read (``READABLE_SHARE``)."""
    got = _medians(small, disc(small.shape, patch, READ_SHARE) > 0)
    return None if got is None else got[:2]


#: The patch is there where its middle differs from the ring round it (1.4-1.8 of its radius) by at least this
#: much in colour (ln R/G, ln B/G: skin is seldom grey, and a cast moves both alike) ...
FOUND_COLOUR = 0.04
#: ... or in brightness (ln of the brightest channels' medians). On 563 of the seed tables' stills with a patch
#: drawn (``bench.quality_patch``) none is taken for missing (the least unlike their ring: 0.026 in colour with
#: 0.134 in brightness, 0.047 with 0.115), and 426 of 558 without one (76 %) are told apart; the rest are judged
#: as the patch would be, a cast.
FOUND_LEVEL = 0.08


def patch_found(small: np.ndarray, patch: GreyPatch) -> bool:
    """Whether ``small`` (BGR uint8) shows a patch where ``patch`` says: its middle unlike the ring round it in colour
    (``FOUND_COLOUR``) or brightness (``FOUND_LEVEL``). Where either cannot be read (burnt out, in the dark) it is
    taken as there: ``patch_colour`` says what is wrong then."""
    ring = (disc(small.shape, patch, 1.8) > 0) & (disc(small.shape, patch, 1.4) == 0)
    inside = _medians(small, disc(small.shape, patch, READ_SHARE) > 0)
    around = _medians(small, ring)
    if inside is None or around is None:
        return True
    (r0, b0, l0), (r1, b1, l1) = inside, around
    return bool(np.hypot(r0 - r1, b0 - b1) >= FOUND_COLOUR or abs(l0 - l1) >= FOUND_LEVEL)


def patch_level(small: np.ndarray, patch: GreyPatch) -> float:
    """The patch's brightness in ``small`` (BGR uint8): the median, over its middle (``READ_SHARE`` of its radius), of
    each pixel's brightest channel (0-255; 255 where it is burnt out)."""
    pixels = small[disc(small.shape, patch, READ_SHARE) > 0]
    return float(np.median(pixels.max(axis=1))) if len(pixels) else 0.0


#: An 8-bit level is about the light's 1/2.2 power (sRGB's gamma): one stop more light, 2^(1/2.2) = 1.37 times the level.
GAMMA = 2.2


def patch_stops(level: float, normal: float) -> float:
    """How many stops brighter (negative: darker) the patch at ``level`` is than at its ``normal`` level: the
    exposure's and the light's change together, as a camera's stops (``GAMMA``)."""
    return GAMMA * float(np.log2(max(level, 1.0) / normal))


#: ``locate``: a patch pixel varies between the stills by under this share of its level (the skin under it varies
#: with every patient; the patch only with the light and the sensor's noise) ...
STEADY = 0.05
#: ... and the patch is looked for within this many of its radii of where the configuration says.
SEARCH_RADII = 3.0


def locate(smalls: list[np.ndarray], near: GreyPatch) -> GreyPatch | None:
    """Where the grey patch really lies, from several stills of different patients (BGR uint8, one size): the steady
    blob (``STEADY``) nearest ``near`` within ``SEARCH_RADII`` of its radius, lit (neither the vignette's black nor
    burnt out), as a ``GreyPatch`` (its centre and the radius of a disc of its area). None where no steady blob of at
    least a third of the expected area lies there (the patch missing, or too few or too alike stills)."""
    h, w = smalls[0].shape[:2]
    grey = np.stack([cv2.cvtColor(s, cv2.COLOR_BGR2GRAY).astype(np.float32) for s in smalls])
    mean, spread = grey.mean(axis=0), grey.std(axis=0)
    cx, cy, r = near.circle(w, h)
    window = disc(smalls[0].shape, near, SEARCH_RADII)
    steady = (spread < STEADY * np.maximum(mean, 1.0)) & (mean > 20) & (mean < 245) & (window > 0)
    steady = cv2.morphologyEx(steady.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, centres = cv2.connectedComponentsWithStats(steady, connectivity=8)
    least = np.pi * r * r / 3
    blobs = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= least]
    if not blobs:
        return None
    best = min(blobs, key=lambda i: np.hypot(centres[i][0] - cx, centres[i][1] - cy))
    radius = float(np.sqrt(stats[best, cv2.CC_STAT_AREA] / np.pi))
    return GreyPatch(x=round(float(centres[best][0]) / (w - 1), 4), y=round(float(centres[best][1]) / (h - 1), 4),
                     radius=round(min(max(radius / min(h, w), 0.01), 0.2), 4))


def cast_direction(d_red: float, d_blue: float) -> str:
    """The words for a shift of (ln R/G, ln B/G) by (``d_red``, ``d_blue``): red (R up), blue (B up, or R down:
    cool), green (R and B down together) or yellow (B down)."""
    theta = float(np.degrees(np.arctan2(d_blue, d_red))) % 360.0
    return "red" if theta < 60 or theta >= 315 else "blue" if theta < 180 else "green" if theta < 250 else "yellow"


def patch_cast(colour: tuple[float, float], normal: tuple[float, float]) -> tuple[float, str]:
    """How far the patch's ``colour`` lies from its ``normal`` colour (ln units: 0.1 is about a 10 % change in a
    channel's gain against green), and the cast's direction (``cast_direction``)."""
    d_red, d_blue = colour[0] - normal[0], colour[1] - normal[1]
    return float(np.hypot(d_red, d_blue)), cast_direction(d_red, d_blue)
