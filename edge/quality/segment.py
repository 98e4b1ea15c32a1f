"""The lesion's segmentation: which blob of the frame is the lesion the photographer aimed at.

``segment_lesion(small, fov, ...)`` thresholds the smoothed, shading-corrected lightness of the analysis image
(``analysis.decode``'s ``small``) inside the dermatoscope's field of view, and chooses among the blobs: not a
sticker or pen mark (``markers``), not the optics' shading along the rim, not a patch of a surgical marker's
ink beside the lesion, not a band across the view (a fold, hair, a line of ink); a clear lesion in the middle over
what lies along the edge, and a lesion slid half out of the view over a freckle or ink left nearer the middle (the
rules in ``choice``, split from here in issue 24's twenty-seventh round). Split from ``analysis.py``
(issue 24's eighteenth round), which keeps the decode and the working images.
"""

from __future__ import annotations

import cv2
import numpy as np

from .analysis import masked_median, nominal_side
from .choice import (CORE_CUT, FALLBACK_REACH, SLID_CHOSEN_AREA, SLID_CUT, Redness, clear_beside_band, clear_beside_ink,
                     clear_in_the_middle, core_in_the_middle, cut_lesion_beside, ink_coloured, is_band, stands_out,
                     wide_band_aside)
from .fov import FieldOfView
from .markers import MARKED_SKIN_SHARE, is_marker, skin_marks
from .region import LesionRegion, describe, no_lesion


def lesion_channel(small: np.ndarray, lab: np.ndarray | None = None, blurred: np.ndarray | None = None) -> np.ndarray:
    """The channel the lesion is segmented on: lightness L*, smoothed over the pigment network.

    A grey-level closing then removes thin dark lines narrower than about 1/30 of the shorter
    side (hairs), which would otherwise join the lesion or pass for one. ``blurred``: the CIELAB
    image already smoothed by ``smooth_lab`` (saves the blur).
    """
    if blurred is None:
        if lab is None:
            lab = cv2.cvtColor(small, cv2.COLOR_BGR2Lab)
        blurred = smooth_lab(lab)
    ch = np.ascontiguousarray(blurred[..., 0])
    k = max(3, min(ch.shape[:2]) // 33 | 1)
    return cv2.morphologyEx(ch, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))


def smooth_lab(lab: np.ndarray) -> np.ndarray:
    """CIELAB smoothed over the pigment network (Gaussian, sigma 1/150 of the ``nominal_side``), all channels at once."""
    return cv2.GaussianBlur(lab, (0, 0), max(1.0, nominal_side(*lab.shape[:2]) / 150))


#: How much a lesion's colour (more yellow-brown or red than the skin, CIELAB b* and a*) counts
#: beside its darkness in the channel it is segmented on: pale lesions differ more in colour.
#: Chosen on the fit half of PH2 and of the HAM10000 expert masks (IoU against the masks).
COLOUR_WEIGHT = 3.0

#: A far-off blob with more than this share of its area in the rim band of the field of view is
#: the optics' shading, not a lesion, unless it stands out as a lesion cut across by the edge does
#: (``choice.stands_out``).
RIM_SHARE = 0.3

#: At most this many blobs, best-scoring first, are considered for the lesion.
MAX_CANDIDATES = 5


def colour_weighted(ch: np.ndarray, blurred: np.ndarray, inside: np.ndarray, weight: float) -> np.ndarray:
    """``ch`` lowered by ``weight`` times how much more yellow (b*) and red (a*) than the skin's median
    each pixel of the smoothed CIELAB image ``blurred`` is."""
    a, b = np.ascontiguousarray(blurred[..., 1]), np.ascontiguousarray(blurred[..., 2])
    a0, b0 = masked_median(a, inside, 128.0), masked_median(b, inside, 128.0)  # none: neutral
    extra = cv2.add(cv2.subtract(b, b0), cv2.subtract(a, a0), dtype=cv2.CV_16S)  # saturating: >= 0 each
    out = ch.astype(np.int16) - (weight * extra).astype(np.int16)
    return np.clip(out, 0, 255).astype(np.uint8)


def shading_gain(ch: np.ndarray, inside: np.ndarray, step: int = 4, iterations: int = 4) -> np.ndarray | None:
    """The gain that divides out the optics' radial fall-off (vignetting) of ``ch`` (None: no fall-off).

    Fits brightness = a + b * r^2 (r: distance from the frame's centre, 1 at its corners) to
    every ``step``-th pixel within the boolean mask ``inside``, leaving out, after each fit, the
    pixels more than one standard deviation darker than it (the lesion); the gain is
    fit(0) / fit(r), at most 4. Only a fall-off is corrected (b < 0; a fit that brightens
    outwards, as a large central lesion gives, returns None). The model is radially symmetric
    on purpose: vignetting darkens all of the rim alike, whereas a lesion cut by one edge or
    corner does not fit it and stays dark, so the framing check still sees it.
    """
    h, w = ch.shape
    v = ch[::step, ::step].astype(np.float32)
    m = inside[::step, ::step]
    if np.count_nonzero(m) < 20:
        return None
    gh, gw = v.shape
    x = (np.arange(gw, dtype=np.float32) * step - (w - 1) / 2) / (0.5 * float(np.hypot(w, h)))
    y = (np.arange(gh, dtype=np.float32) * step - (h - 1) / 2) / (0.5 * float(np.hypot(w, h)))
    r2 = x[None, :] ** 2 + y[:, None] ** 2  # 1 at the frame's corners
    keep = m
    a, b = float(np.median(v[m])), 0.0
    for _ in range(iterations):
        vk, rk = v[keep], r2[keep]
        if vk.size < 20:
            break
        b, a = _line_fit(rk, vk)
        if b > 0:
            a, b = float(np.median(vk)), 0.0
        resid = v - (a + b * r2)
        keep = m & (resid > -float(np.std(resid[keep])) - 1e-3)
    if b >= 0 or a <= 0:
        return None
    fit = np.maximum(a + b * r2, 0.25 * a)  # never amplify the dark rim more than 4x
    return cv2.resize((a / fit).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


#: A blob whose part along the rim of a round view (the band ``segment_lesion`` calls the rim) runs round at least this
#: many degrees of it, while the blob covers under ``RING_FILL`` of the view inside that band, is the view's dark soft
#: edge joined to a lesion or a darker patch inside: filled in (``region.describe`` fills a blob's holes) it would be
#: the whole view, and no lesion would stand out from the skin. A lesion cut by the edge runs along a part of the
#: rim; one larger than the view fills the inside too. Issue 24's thirty-fourth round, on BCN20000's round views at
#: 1024 px.
RING_TURN, RING_FILL = 270, 0.5


def without_rim_ring(cand: np.ndarray, band: np.ndarray, fov: FieldOfView) -> np.ndarray:
    """``cand`` (uint8 0/1, the pixels dark enough for a lesion) without the part in the rim ``band`` (boolean) of each
    blob that runs round the rim of the round view ``fov`` (``RING_TURN``, ``RING_FILL``): the view's dark soft edge."""
    n, labels = cv2.connectedComponents(cand, connectivity=8)
    ys, xs = np.nonzero(band & (cand > 0))
    if n <= 1 or xs.size == 0:
        return cand
    m = cv2.moments(fov.mask, binaryImage=True)
    if not m["m00"]:
        return cand
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    turn = (np.degrees(np.arctan2(ys - cy, xs - cx)) % 360.0 // 10).astype(np.intp)  # 36 sectors of 10 degrees
    covered = np.zeros((n, 36), bool)
    covered[labels[ys, xs], turn] = True
    inside = (fov.inner > 0) & ~band
    within = np.bincount(labels[inside].ravel(), minlength=n)
    ring = (covered.sum(axis=1) * 10 >= RING_TURN) & (within < RING_FILL * max(np.count_nonzero(inside), 1))
    ring[0] = False
    if not ring.any():
        return cand
    out = cand.copy()
    out[band & ring[labels]] = 0
    return out


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of y = a + b x in closed form (as ``np.polyfit(x, y, 1)``, faster)."""
    xm, ym = float(x.mean()), float(y.mean())
    dx = x - xm
    var = float(dx @ dx)
    b = float(dx @ (y - ym)) / var if var > 0 else 0.0
    return b, ym - b * xm


def segment_lesion(small: np.ndarray, fov: FieldOfView, lab: np.ndarray | None = None,
                   min_contrast: float = 0.0, marks: np.ndarray | None = None) -> LesionRegion:
    """Otsu threshold of the smoothed, shading-corrected lightness inside the field of view; the most
    central large blob that is neither sticker nor pen mark nor, along the rim of the view, the
    optics' shading (a blob there counts only if it stands out as a lesion cut by the edge does), or,
    where that one differs from the skin by under ``min_contrast`` (CIELAB delta E), the
    best-placed blob near the middle that does; and where the blob taken lies off the middle along the
    edge of the view, a clear lesion in the middle that stands out as much (``CLEAR_LESION_*``); where it is
    ink-coloured or a band (``INK_*``, ``BAND_*``), a clear lesion nearer the middle or near it (beside a band, or
    else a paler one nearer the middle); and where a small blob off the middle is left, a lesion beside it cut by the
    edge that stands out as much (``SLID_*``); and where the blob taken is cut by the edge, the dark core inside it
    where that is a clear lesion in the middle and the rest little darker than the skin (``CORE_*``). The rules and
    their constants are in ``choice``.

    ``lab``: ``small`` already converted to OpenCV's 8-bit CIELAB (saves a conversion); ``marks``: its
    ``markers.skin_marks`` already taken (saves taking them again).
    """
    h, w = small.shape[:2]
    s = min(h, w)
    if lab is None:
        lab = cv2.cvtColor(small, cv2.COLOR_BGR2Lab)
    inside = fov.inner > 0
    blurred = smooth_lab(lab)
    ch = lesion_channel(small, lab, blurred)
    gain = shading_gain(ch, inside)
    if gain is not None:
        ch = cv2.multiply(ch, gain, dtype=cv2.CV_8U)
        # the lesion's contrast against the skin, too, is measured with the fall-off divided out
        lab = cv2.merge([cv2.multiply(lab[..., 0], gain, dtype=cv2.CV_8U), lab[..., 1], lab[..., 2]])
    if COLOUR_WEIGHT and inside.any():
        ch = colour_weighted(ch, blurred, inside, COLOUR_WEIGHT)
    empty = no_lesion((h, w))
    vals = ch[inside]
    if vals.size < 100:
        return empty
    # the threshold is taken on the view without stickers and pen marks: a large saturated sticker
    # would pull it towards itself and shrink the lesion
    plain = inside & ~(skin_marks(lab) if marks is None else marks)
    if np.count_nonzero(plain) >= (1 - MARKED_SKIN_SHARE) * vals.size:  # more, and they are the skin under a cast
        vals = ch[plain]
    thr, _ = cv2.threshold(vals.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    cand = ((ch <= thr) & inside).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    cand = cv2.morphologyEx(cand, cv2.MORPH_OPEN, k)
    # Vignetting darkens the rim of the field of view: a far-off blob lying mostly along the
    # rim is shading, not a lesion; nor is a blob's part that runs round the rim of a round view.
    band = cv2.erode(fov.inner, cv2.getStructuringElement(cv2.MORPH_RECT, (s // 10 | 1,) * 2)) == 0
    if fov.present:
        cand = without_rim_ring(cand, band, fov)
    n, labels, stats, cents = cv2.connectedComponentsWithStats(cand, connectivity=8)
    if n <= 1:
        return empty
    d = np.hypot(cents[1:, 0] - w / 2, cents[1:, 1] - h / 2) / (s / 2)
    score = stats[1:, cv2.CC_STAT_AREA] / (1.0 + (d / 0.5) ** 2)
    on_band = np.bincount(labels[band].ravel(), minlength=n)[1:] / np.maximum(stats[1:, cv2.CC_STAT_AREA], 1)
    on_rim = (d > 0.6) & (on_band > RIM_SHARE)
    # A colour-calibration sticker or a pen mark is not a lesion (``markers.is_marker``). Blobs are
    # described in order of score until one passes (usually the first): no need to measure them all.
    # Where the best is too faint to be a lesion (under ``min_contrast`` from the skin: a diffuse
    # shadow, uneven skin), a blob in the middle of the view that does stand out is taken instead.
    # A blob along the rim is described only to see whether it stands out as a cut lesion (the
    # shading passed over is not counted among the candidates, but at most as many again are looked
    # at). One that does is held, and gives way only to a blob in the middle of the view that stands
    # out at least as much, overall or in colour (``tint``): a lesion there, with a skin fold's or
    # hair's shadow along the rim, darker than the lesion but hardly another colour than the skin.
    first, tried, rim_seen, markers, depth, held = None, 0, 0, None, None, None
    redness = Redness(small, inside)  # taken only if a dark blob asks (``choice.distinct``)
    first_k = -1
    order = np.argsort(-score, kind="stable")
    for k in order:
        if tried == MAX_CANDIDATES:
            break
        if first is not None and d[k] > FALLBACK_REACH:
            continue
        if on_rim[k] and (held is not None or rim_seen == MAX_CANDIDATES):  # one held at most
            continue
        blob = (labels == k + 1).view(np.uint8)
        if is_marker(lab, blob):
            markers = blob * 255 if markers is None else cv2.bitwise_or(markers, blob * 255)
            continue
        region = describe(blob, lab, fov.mask, inside)
        if on_rim[k]:
            rim_seen += 1
            if depth is None:  # how far each pixel lies inside the view
                depth = cv2.distanceTransform(fov.inner, cv2.DIST_L2, 3)
            if stands_out(region, lab, blob, depth, redness):
                held = region
            continue
        tried += 1
        if region.contrast >= min_contrast:
            if held is not None and (d[k] > FALLBACK_REACH or region.contrast < held.contrast
                                     and region.tint < held.tint):
                break
            first, first_k = region, k
            break
        if first is None:
            first, first_k = region, k
    if held is not None and (first is None or first.contrast < min_contrast):
        first = held
    elif first is not None and d[first_k] > FALLBACK_REACH and first.border > 0:
        central = [k for k in order if d[k] <= FALLBACK_REACH and k != first_k]
        first = clear_in_the_middle(first, central[:MAX_CANDIDATES], labels, lab, fov, inside)
    if first is not None and ink_coloured(lab, first.mask):
        first = clear_beside_ink(first, order[:2 * MAX_CANDIDATES], d, on_rim, labels, lab, fov, inside)
    if first is not None:
        narrow = is_band(first.mask, s)
        if narrow or wide_band_aside(first, lab, fov, s, depth, redness):
            first = clear_beside_band(first, order[:2 * MAX_CANDIDATES], d, on_rim, labels, lab, fov, inside, s,
                                       min_contrast if narrow else None)
    # a small dark lesion too few pixels to pull the threshold, run on to the edge by a little darker skin round it
    if first is not None and first.cut > CORE_CUT:
        first = core_in_the_middle(first, ch, lab, fov, inside)
    if first is not None and first.offset > FALLBACK_REACH and first.cut < SLID_CUT and first.area <= SLID_CHOSEN_AREA:
        # a small blob off the middle, and the lesion the photographer aimed at slid half out beside it
        first = cut_lesion_beside(first, order[:2 * MAX_CANDIDATES], labels, lab, fov, inside, redness)
    found = first or empty
    found.markers = markers
    return found
