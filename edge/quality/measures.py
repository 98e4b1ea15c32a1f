"""Focus and glare measurements of the quality gate (at the ``focus_size`` working image).

``focus_ratios``: fine-to-coarse gradient energy in the worst and the best direction (``focus_ratio``: the worst);
``glare_fraction``: the share of a region under small saturated white blobs.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

#: The focus ratio's two scales (Gaussian sigma, pixels at ``focus_size``): fine detail just above
#: sensor and JPEG noise, against the coarse structure. Measured at 800 px on the longer side: at 500 px (a 1/8
#: DCT decode of a 12 MP frame, 5 ms faster) even rescaled scales miss most moderate defocus.
FINE_SIGMA = 0.7
COARSE_SIGMA = 2.0


#: The noise floor: a sensor's noise gives every pixel fine gradient energy, which the ratio would read as
#: detail (a defocused photograph keeps its noise; the skin's own detail does not survive the blur). The
#: fine energy of the flattest ``NOISE_WINDOW``-pixel windows of the region (this percentile of their local
#: mean) is taken as what noise gives each pixel, and taken off both energies (off the coarse one in the
#: proportion white noise keeps through the coarser blur).
NOISE_PERCENTILE, NOISE_WINDOW = 5, 9

#: 8-bit steps: a smooth stretch of an 8-bit image (faint skin, strongly defocused) climbs one grey level at a
#: time, and each step is an edge as sharp as the pixel, which the ratio would read as detail. A faint lesion
#: blurred 3 px of a 256-px ISIC 2017 image read sharper than blurred 1.5 px, and passed. So the fine band (the
#: fine image less its coarse blur) is cored by this many grey levels before the ratio is taken: a lone
#: one-level step's band peaks at 0.23 and loses most of its energy, while the skin's texture, many levels
#: deep, keeps nearly all of its own.
STEP_CORE = 0.1


def _white_noise_energy(sigma: float) -> float:
    """Sobel x energy, per pixel and unit variance, of white noise smoothed by a Gaussian of ``sigma``."""
    d = np.zeros((41, 41), np.float32)
    d[20, 20] = 1.0
    return float((cv2.Sobel(cv2.GaussianBlur(d, (0, 0), sigma), cv2.CV_32F, 1, 0, ksize=3) ** 2).sum())


#: How much of white noise's fine gradient energy survives the further coarse blur (about 0.034).
_COARSE_SHARE = _white_noise_energy(float(np.hypot(FINE_SIGMA, COARSE_SIGMA))) / _white_noise_energy(FINE_SIGMA)


def focus_ratio(gray: np.ndarray, roi: np.ndarray, noise_floor: bool = True, cored: bool = True) -> float:
    """Fine-to-coarse gradient energy ratio in ``roi`` (same size as ``gray``) in the worst direction: 1 = no fine
    detail (``focus_ratios``' first value)."""
    return focus_ratios(gray, roi, noise_floor, cored)[0]


class FocusRatios(NamedTuple):
    """The fine-to-coarse gradient energy ratios of ``focus_ratios`` (1 = no fine detail that way)."""

    worst: float  #: in the worst direction, every pixel weighed by its energy (the focus check's)
    best: float  #: in the best direction, likewise
    even_worst: float  #: in the worst direction, no pixel weighing more than ``EVEN_PERCENTILE``'s (the shake check's)
    even_best: float  #: in the best direction, likewise


#: The shake check's even weighing: each pixel's say in the directions' ratios is capped at this percentile of the
#: region's local coarse gradient energy, so that a few hairs or the lesion's rim lying one way (the strongest
#: edges, which an energy-weighted sum is made of) weigh no more than the skin's own texture round them. Chosen
#: in the twenty-ninth round from 25, 50, 75, 90 and none on PH2's and HAM10000-masks' 350 files and their
#: copies shaken 8 and 16 px ("Every pixel has a say in the shake").
EVEN_PERCENTILE = 75


def focus_ratios(gray: np.ndarray, roi: np.ndarray, noise_floor: bool = True,
                 cored: bool = True) -> FocusRatios:
    """Fine-to-coarse gradient energy ratio in ``roi`` (same size as ``gray``), in the worst direction and in the
    best, weighed by energy and evenly (``FocusRatios``): 1 = no fine detail that way.

    Sobel gradient energy of the image (lightly smoothed, sigma 0.7 px, to keep noise and JPEG
    artefacts out) divided by that of the image blurred further (sigma 2 px), in the worst
    direction (motion blur only removes detail along the motion): the smallest generalised
    eigenvalue of the two gradient structure tensors, each with the noise floor taken off
    (``NOISE_PERCENTILE``; not with ``noise_floor`` False: an archive thumbnail, whose JPEG has left
    no noise to find and whose flattest windows still hold the skin's texture), and with the 8-bit steps
    cored out of the fine band first (``STEP_CORE``; not with ``cored`` False). Independent of
    contrast (both energies scale alike; the core thins only detail a few grey levels deep), of the sensor's
    noise, and, measured at a fixed image size, of the sensor's resolution. Sharp detail gives a high ratio; defocus and motion blur
    remove the fine scales first and bring it towards 1. The best direction (the largest generalised eigenvalue) is
    where a straight motion blur leaves the optics' own sharpness: defocus lowers both alike, a shake the worst alone.
    The even pair sums the same tensors with no pixel weighing more than ``EVEN_PERCENTILE`` of the local coarse
    energy: the direction of the region's texture, not of its few strongest edges.
    """
    # Work on the ROI's bounding box plus a margin wider than the blurs reach.
    x0, y0, bw, bh = cv2.boundingRect(roi)
    pad = 10
    xa, ya = max(0, x0 - pad), max(0, y0 - pad)
    xb, yb = min(gray.shape[1], x0 + bw + pad), min(gray.shape[0], y0 + bh + pad)
    g = cv2.GaussianBlur(gray[ya:yb, xa:xb].astype(np.float32), (0, 0), FINE_SIGMA)  # below sensor/JPEG noise
    gb = cv2.GaussianBlur(g, (0, 0), COARSE_SIGMA)
    if cored:  # the fine band less STEP_CORE each way (none left where it is smaller), and blurred again
        g = cv2.subtract(g, np.clip(cv2.subtract(g, gb), -STEP_CORE, STEP_CORE))
        gb = cv2.GaussianBlur(g, (0, 0), COARSE_SIGMA)
    inside = roi[ya:yb, xa:xb] > 0
    m = inside.astype(np.float32)
    fine, coarse = _products(g), _products(gb)
    floor = 0.0
    if noise_floor:
        local = cv2.blur(fine[0] + fine[1], (NOISE_WINDOW, NOISE_WINDOW))[::3, ::3][inside[::3, ::3]]
        if local.size >= 20:
            floor = 0.5 * float(np.percentile(local, NOISE_PERCENTILE))  # per pixel and axis
    worst, best = _directions(fine, coarse, m, floor)
    energy = cv2.blur(coarse[0] + coarse[1], (NOISE_WINDOW, NOISE_WINDOW))
    sample = energy[::3, ::3][inside[::3, ::3]]
    cap = float(np.percentile(sample, EVEN_PERCENTILE)) if sample.size else 0.0
    if cap <= 0:
        return FocusRatios(worst, best, worst, best)
    even = m * np.minimum(1.0, cap / np.maximum(energy, cap * 1e-6))
    return FocusRatios(worst, best, *_directions(fine, coarse, even, floor))


def _products(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Sobel gradient's products gx*gx, gy*gy and gx*gy per pixel."""
    gx = cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=3)
    return gx * gx, gy * gy, gx * gy


def _directions(fine: tuple, coarse: tuple, weight: np.ndarray, floor: float) -> tuple[float, float]:
    """The smallest and largest generalised eigenvalues of the fine and coarse structure tensors summed with
    ``weight`` (min and max over unit v of v'Fv / v'Cv), the noise ``floor`` (per pixel and axis) taken off both."""
    fxx, fyy, fxy = (float(cv2.sumElems(p * weight)[0]) for p in fine)
    cxx, cyy, cxy = (float(cv2.sumElems(p * weight)[0]) for p in coarse)
    if floor:
        total = float(cv2.sumElems(weight)[0])
        fxx, fyy = fxx - floor * total, fyy - floor * total
        cxx, cyy = cxx - floor * total * _COARSE_SHARE, cyy - floor * total * _COARSE_SHARE
    f = np.array([[fxx, fxy], [fxy, fyy]])
    c = np.array([[cxx, cxy], [cxy, cyy]])
    if min(cxx, cyy) <= 0 or np.linalg.det(c) <= 1e-9 * max(cxx * cyy, 1e-12):
        # no coarse structure one way (a flat or one-dimensional patch): the axis that has some, both ways
        worst = best = fxx / cxx if cxx > 1e-6 else (fyy / cyy if cyy > 1e-6 else np.inf)
    else:
        ev = np.real(np.linalg.eigvals(np.linalg.solve(c, f)))
        worst, best = float(np.min(ev)), float(np.max(ev))
    worst = float(worst) if np.isfinite(worst) else 1.0
    return worst, (float(best) if np.isfinite(best) else worst)


#: A saturated blob larger than this share of the field of view is a burnt-out area, not a
#: specular reflection.
MAX_GLARE_BLOB = 0.02
#: A glare pixel is saturated in all three channels (a specular reflection is as bright as the
#: sensor goes; bright pale skin, as in PH2's frames, stays below it).
GLARE_LEVEL = 250
#: Near-white (all three channels at least this): the patch a saturated speck lies in. A reflection
#: is a small near-white patch in darker surroundings; pale skin under the light's hot spot is a
#: broad one, or one running to the rim of the view, speckled with saturated pixels.
ZONE_LEVEL = 235


def glare_fraction(focus_bgr: np.ndarray, fov_mask_small: np.ndarray, max_blob: float | None = None,
                   region_small: np.ndarray | None = None) -> float:
    """Fraction of ``region_small`` (default: the field of view) covered by small, saturated, colourless
    blobs (specular glare); blobs over ``max_blob`` of the field of view are burnt-out areas, not glare.

    Saturated pixels lying in a near-white (``ZONE_LEVEL``) patch larger than ``max_blob`` of the
    field of view, or one reaching its rim, are left out: that is pale skin burnt out under the
    light's hot spot (the clipping check's business; PH2's frames often show one at the rim), not a
    reflection. The rest are opened with a 3x3 disc: thin bright lines (the rims of air bubbles in
    the contact fluid, reflections along hairs) hide nothing and are not glare.
    """
    max_blob = MAX_GLARE_BLOB if max_blob is None else max_blob
    white = cv2.inRange(focus_bgr, (GLARE_LEVEL,) * 3, (255, 255, 255))
    if cv2.countNonZero(white) == 0:  # the usual case: nothing saturated at all
        return 0.0
    h, w = focus_bgr.shape[:2]
    fov = cv2.resize(fov_mask_small, (w, h), interpolation=cv2.INTER_NEAREST)
    region = fov if region_small is None else cv2.bitwise_and(
        fov, cv2.resize(region_small, (w, h), interpolation=cv2.INTER_NEAREST))
    white = cv2.bitwise_and(white, fov)
    n_fov = max(cv2.countNonZero(fov), 1)
    n_region = max(cv2.countNonZero(region), 1)
    # Saturated specks within a broad near-white patch (pale skin under the light's hot spot, as
    # at the rim of PH2's frames) are that patch burnt out (clipping's business), not reflections:
    # a reflection is a small white patch against darker surroundings. The patches are found at the
    # field of view mask's (analysis) size: a quarter of the pixels.
    fov_s = fov_mask_small
    sh, sw = fov_s.shape[:2]
    bright = cv2.bitwise_and(cv2.inRange(cv2.resize(focus_bgr, (sw, sh), interpolation=cv2.INTER_AREA),
                                         (ZONE_LEVEL,) * 3, (255, 255, 255)), fov_s)
    nz, zl, zs, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    broad = np.zeros(nz, np.uint8)
    broad[1:] = zs[1:, cv2.CC_STAT_AREA] > max_blob * max(cv2.countNonZero(fov_s), 1)
    rim = cv2.subtract(fov_s, cv2.erode(fov_s, _DISC3, borderType=cv2.BORDER_CONSTANT, borderValue=0))
    broad[np.unique(zl[rim > 0])] = 1
    broad[0] = 0
    if broad.any():
        zone = cv2.resize(broad[zl], (w, h), interpolation=cv2.INTER_NEAREST)
        white = cv2.bitwise_and(white, cv2.compare(zone, 0, cv2.CMP_EQ))
    white = cv2.morphologyEx(white, cv2.MORPH_OPEN, _DISC3)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(white, connectivity=8)
    for k in np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] > max_blob * n_fov) + 1:  # rare: burnt-out areas
        white[labels == k] = 0
    return float(cv2.countNonZero(cv2.bitwise_and(white, region))) / n_region


_DISC3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))


#: The colour check's first rule: a photograph whose most colourful pixels (the 99th percentile, over
#: the lit field of view, of each pixel's largest difference between two colour channels) differ by
#: under this many levels has no colour to read: a camera left in black and white, or with its
#: saturation turned down. Measured as the gate measures, on 7,636 real dermoscopic images (all of PH2,
#: ISIC 2017 and HAM10000 with masks, 2,500 each of HAM10000 and BCN20000), the lowest is 14 (two BCN20000
#: thumbnails; ISIC 2017's lowest, 17, is pale grey skin round a small blue-grey naevus); black and white is 0.
COLOUR_LEAST = 6
#: A channel at or above this level is saturated: the pixel's colour is not known (``scene.skin_colour``
#: reads the skin's colour without such pixels; ``colourfulness`` leaves out pixels saturated in all three).
SATURATED = 250
#: Pixels darker than this grey level (the dark rim, a shadow) are left out of ``colourfulness``: their
#: colour is noise; so are pixels saturated in all three channels (burnt out white has no colour to show).
_LIT = 20


def colourfulness(bgr: np.ndarray, fov_mask: np.ndarray, gray: np.ndarray) -> float | None:
    """The 99th percentile, over the lit pixels of ``fov_mask`` (grey level >= 20, not saturated in all three
    channels), of each pixel's largest difference between two colour channels (0-255; 0 for a black-and-white
    photograph); None where under 1 % of the field of view is so lit (too dark or burnt out to tell: the
    exposure and clipping checks speak for it).

    A colour cast changes the channels' gains, not whether the picture has colour: a strongly cast
    photograph of skin stays well above ``COLOUR_LEAST``. A high percentile, not the median, so that
    pale, nearly grey skin round a small coloured lesion still counts as colour.
    """
    lo = cv2.min(cv2.min(bgr[..., 0], bgr[..., 1]), bgr[..., 2])
    spread = cv2.subtract(cv2.max(cv2.max(bgr[..., 0], bgr[..., 1]), bgr[..., 2]), lo)
    lit = cv2.bitwise_and(cv2.bitwise_and(fov_mask, cv2.inRange(gray, _LIT, 255)), cv2.inRange(lo, 0, SATURATED - 1))
    hist = cv2.calcHist([spread], [0], lit, [256], [0, 256]).ravel()
    total = hist.sum()
    if total < max(50, 0.01 * cv2.countNonZero(fov_mask)):
        return None
    return float(np.searchsorted(np.cumsum(hist), 0.99 * total))
