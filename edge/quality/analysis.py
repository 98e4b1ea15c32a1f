"""Image measurements behind the quality gate, on one fixed decode path (focus and glare: ``measures``).

``decode()`` turns the JPEG into three working images: the DCT-reduced decode (libjpeg's
1/2, 1/4 or 1/8 scaling, about twice as fast as a full decode of a 12 MP frame), a copy
``focus_size`` pixels on its longer side for focus and glare, and one ``analysis_size`` on its
longer side for the field of view, the lesion, exposure and colour (for a frame wider than 4:3, on the
longer side of the 4:3 frame round the same view: ``nominal_side``). Every measurement is taken at
these fixed sizes, so thresholds depend neither on the sensor's resolution, nor on whether the frame
is held in landscape or in portrait (a phone's dermatoscope), nor on how wide the sensor is round the
round view: the same skin is measured at the same scale each way.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.camera.replay import jpeg_size

from .fov import FieldOfView, find_fov, fov_coverage  # noqa: F401 (the field of view, re-exported)
from .markers import is_marker, skin_marks, warm_sticker_colour
from .region import LesionRegion, describe, no_lesion


class DecodeError(ValueError):
    """The bytes are not an image that can be decoded, or one too small or narrow to judge (``size``: its
    width and height, where it was read)."""

    def __init__(self, message: str, size: tuple[int, int] | None = None):
        super().__init__(message)
        self.size = size


#: The working image's shorter side, at the analysis width, must be at least this many pixels: below it
#: (a thumbnail, a sliver 4000 x 60) there is nothing to find a lesion or a field of view in.
MIN_SIDE = 16


@dataclass
class Working:
    """The decoded frame at the working sizes."""

    focus: np.ndarray  # BGR, focus_size on its nominal_side (or smaller if the frame is)
    small: np.ndarray  # BGR, analysis_size on its nominal_side
    full_size: tuple[int, int]  # width, height of the original frame
    reduction: int  # DCT reduction used (1, 2, 4 or 8)
    decoded: np.ndarray | None = None  # BGR, the frame as decoded (DCT-reduced): what the two above were scaled from


_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


#: The widest frame measured by its longer side: a 4:3 frame's, with room for sensors a few pixels off it
#: (4056 x 3040, PH2's 765 x 572).
NOMINAL_ASPECT = 1.34
#: A frame this close to the working size (its share of it) is not resampled (``shrink``).
NEAR_ENOUGH = 0.99


def nominal_side(h: int, w: int) -> float:
    """The length a frame's working sizes refer to: its longer side, or, for a frame wider than
    ``NOMINAL_ASPECT`` (3:2, 16:9: a wider sensor round the same round view), that many times its shorter
    side, as for the 4:3 frame round the same view; at least half the longer side (a strip).

    The dermatoscope's round view spans the shorter side, so a wide frame sized by its longer side had its
    skin measured smaller (a 16:9 frame a quarter smaller than the 4:3 one of the same view). Landscape or
    portrait alike; every frame up to 4:3 (all of PH2, HAM10000, ISIC 2017, the kiosk's own) by its
    longer side, as before."""
    long_side, short_side = max(h, w), min(h, w)
    return max(min(long_side, NOMINAL_ASPECT * short_side), long_side / 2)


def shrink(img: np.ndarray, side: int) -> np.ndarray:
    """Scale down until the frame's ``nominal_side`` is ``side`` pixels (never up, nor by under 1 %):
    area averaging from 2x down, bilinear above (faster). By the longer side, not the width, so that a
    frame in portrait is measured at the scale of the same frame in landscape, and by the 4:3 frame round
    its view for a wider one. A frame within 1 % of the size is measured as it is: resampling it by 0.99-1
    would blur it by up to half a pixel (the focus ratio read 13 % lower), far more than the 1 % of scale."""
    h, w = img.shape[:2]
    f = side / nominal_side(h, w)
    if f >= NEAR_ENOUGH:
        return img
    interp = cv2.INTER_AREA if f <= 0.5 else cv2.INTER_LINEAR
    return cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=interp)


def decode(data: bytes, work_size: int, focus_size: int, analysis_size: int) -> Working:
    """Decode ``data`` once (DCT-reduced for JPEG) and scale to the working sizes; DecodeError if unreadable."""
    size = jpeg_size(data)
    # The end-of-image marker lies in the second half (an EXIF thumbnail's own marker is near the
    # start; some cameras append trailers after it).
    if size is not None and b"\xff\xd9" not in data[len(data) // 2:]:
        raise DecodeError("truncated JPEG (no end-of-image marker)")
    buf = np.frombuffer(data, np.uint8)
    factor = 1
    if size is not None:
        nominal = nominal_side(size[1], size[0])
        for f in (8, 4, 2):
            if nominal // f >= work_size:
                factor = f
                break
    img = cv2.imdecode(buf, _REDUCED[factor] if factor > 1 else cv2.IMREAD_COLOR) if len(buf) else None
    if img is None or img.ndim != 3:
        raise DecodeError("not a readable image")
    if size is None:
        size = (img.shape[1], img.shape[0])
    focus = shrink(img, focus_size)
    small = shrink(focus, analysis_size)
    if min(small.shape[:2]) < MIN_SIDE:  # the smaller of the two working images (never scaled up)
        raise DecodeError("too small or narrow to judge", size)
    return Working(focus=focus, small=small, full_size=size, reduction=factor, decoded=img)


#: A field of view whose box spans less than this share of the frame's shorter side (a round view with black
#: round it, on a sensor larger than the dermatoscope's view) is measured for focus at its own scale (``field_crop``).
FIELD_SCALED = 0.85


def field_crop(work: Working, fov_mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The focus image of a small field of view: its box cut from the decoded frame and scaled as a view as high as
    a 4:3 frame is at the focus size (three quarters of that frame's ``nominal_side``; never up), and the box in
    ``small``'s pixels (x, y, w, h). None for a field spanning ``FIELD_SCALED`` of the shorter side or more, and
    for a frame the focus image was not reduced from (it already holds every decoded pixel).

    Reduced by the whole frame, a view 0.6 of the frame's height was measured with its skin at 0.6 of the pixels
    a full-height view has, and the focus ratio read 0.73 of it (``bench.quality_robust``, "round view 60%")."""
    dec = work.decoded
    if dec is None or dec.shape[1] <= work.focus.shape[1]:
        return None
    sh, sw = work.small.shape[:2]
    x, y, bw, bh = cv2.boundingRect(fov_mask)
    if bw == 0 or max(bw, bh) >= FIELD_SCALED * min(sh, sw):
        return None
    kx, ky = dec.shape[1] / sw, dec.shape[0] / sh
    crop = dec[int(y * ky):min(dec.shape[0], int(np.ceil((y + bh) * ky))),
               int(x * kx):min(dec.shape[1], int(np.ceil((x + bw) * kx)))]
    f = 0.75 * nominal_side(*work.focus.shape[:2]) / max(crop.shape[:2])
    if f < NEAR_ENOUGH:
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f))),
                          interpolation=cv2.INTER_AREA if f <= 0.5 else cv2.INTER_LINEAR)
    return crop, (x, y, bw, bh)


# --- lesion ----------------------------------------------------------------------------------------

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
#: the optics' shading, not a lesion ...
RIM_SHARE = 0.3
#: ... unless it stands out as a lesion cut across by the edge does: at least this far from the skin
#: (CIELAB delta E) and this coloured (chroma), as brown and red lesions are and shading, darker skin
#: or the dermatoscope's grey rim are not; and reaching into the view, its area at most this many
#: squares of its depth (a half disc: 1.6), not a crescent along the rim as the optics' fall-off is.
#: Chosen on the fit halves (issue 24's ninth round).
RIM_LESION_CONTRAST, RIM_LESION_CHROMA, RIM_LESION_SPREAD = 10.0, 15.0, 4.0

#: At most this many blobs, best-scoring first, are considered for the lesion.
MAX_CANDIDATES = 5
#: A blob taken instead of a faint best one lies within this distance of the frame's centre (in halves
#: of the shorter side): where the photographer aims, not a ruler or hair at the side.
FALLBACK_REACH = 0.5
#: A blob chosen off the middle of the view (beyond ``FALLBACK_REACH``) and touching its edge gives way to a
#: clear lesion in the middle: one standing out from the skin by at least this much (delta E), covering at
#: least ``CLEAR_LESION_AREA`` of the view (the dermoscopic view's least lesion), and standing out at least as
#: much as the blob at the edge, overall, or in colour (``tint``) while standing out overall at least
#: ``CLEAR_LESION_SHARE`` as much (a pink patch beside a dark lesion slid out is more colourful than the
#: lesion's edge, not the lesion). The photographer aims at the lesion; what
#: lies along the edge (the background beyond the skin, a band of redder skin, a fold, a pen line) is not
#: what they aimed at, while a lesion slid out of the view stands out more than a freckle left in the middle.
#: Chosen on all of ISIC 2017 and the first 300 of BCN20000 at their own size (issue 24's tenth round).
CLEAR_LESION_CONTRAST, CLEAR_LESION_AREA, CLEAR_LESION_SHARE = 12.0, 0.005, 0.55


def masked_median(ch: np.ndarray, mask: np.ndarray, empty: float = 0.0) -> float:
    """Median of the uint8 image ``ch`` where the boolean ``mask`` is set (``empty`` if it is nowhere set)."""
    return masked_quantile(ch, mask, 0.5, empty)


def masked_quantile(ch: np.ndarray, mask: np.ndarray, q: float, empty: float = 0.0) -> float:
    """The ``q`` quantile (0..1) of the uint8 image ``ch`` where the boolean ``mask`` is set (``empty`` if it is
    nowhere set)."""
    hist = cv2.calcHist([ch], [0], mask.astype(np.uint8), [256], [0, 256]).ravel()
    total = hist.sum()
    return float(np.searchsorted(np.cumsum(hist), total * q)) if total else empty


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
    edge of the view, a clear lesion in the middle that stands out as much (``CLEAR_LESION_*``).

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
    if np.count_nonzero(plain) >= 0.6 * vals.size:
        vals = ch[plain]
    thr, _ = cv2.threshold(vals.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    cand = ((ch <= thr) & inside).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    cand = cv2.morphologyEx(cand, cv2.MORPH_OPEN, k)
    n, labels, stats, cents = cv2.connectedComponentsWithStats(cand, connectivity=8)
    if n <= 1:
        return empty
    d = np.hypot(cents[1:, 0] - w / 2, cents[1:, 1] - h / 2) / (s / 2)
    score = stats[1:, cv2.CC_STAT_AREA] / (1.0 + (d / 0.5) ** 2)
    # Vignetting darkens the rim of the field of view: a far-off blob lying mostly along the
    # rim is shading, not a lesion.
    band = cv2.erode(fov.inner, cv2.getStructuringElement(cv2.MORPH_RECT, (s // 10 | 1,) * 2)) == 0
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
            if _stands_out(region, lab, blob, depth):
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
        first = _clear_in_the_middle(first, central[:MAX_CANDIDATES], labels, lab, fov, inside)
    found = first or empty
    found.markers = markers
    return found


def _clear_in_the_middle(chosen: LesionRegion, central: list[int], labels: np.ndarray, lab: np.ndarray,
                         fov: FieldOfView, inside: np.ndarray) -> LesionRegion:
    """``chosen`` (off the middle of the view, touching its edge), or the first of the ``central`` blobs
    (label - 1, best-scoring first) that is a clear lesion (``CLEAR_LESION_CONTRAST``, ``CLEAR_LESION_AREA``)
    and neither sticker nor pen mark."""
    for k in central:
        blob = (labels == k + 1).view(np.uint8)
        if is_marker(lab, blob):
            continue
        region = describe(blob, lab, fov.mask, inside)
        if region.contrast >= CLEAR_LESION_CONTRAST and region.area >= CLEAR_LESION_AREA and (
                region.contrast >= chosen.contrast
                or region.tint >= chosen.tint and region.contrast >= CLEAR_LESION_SHARE * chosen.contrast):
            return region
    return chosen


def _stands_out(region: LesionRegion, lab: np.ndarray, blob: np.ndarray, depth: np.ndarray) -> bool:
    """Whether a blob along the rim of the view is a lesion cut by the edge rather than the optics'
    shading: distinct, coloured and reaching into the view (``RIM_LESION_CONTRAST``,
    ``RIM_LESION_CHROMA``, ``RIM_LESION_SPREAD``; ``depth``: each pixel's distance inside the view),
    and not coloured like a warm sticker (whose die-cut outline the rim may hide)."""
    if region.contrast < RIM_LESION_CONTRAST:
        return False
    lum, a, b, _ = cv2.mean(lab, mask=blob)
    a, b = a - 128.0, b - 128.0
    if float(np.hypot(a, b)) < RIM_LESION_CHROMA or warm_sticker_colour(lum * (100 / 255), a, b):
        return False
    _, reach, _, _ = cv2.minMaxLoc(depth, mask=blob)
    return cv2.countNonZero(blob) <= RIM_LESION_SPREAD * max(reach, 1.0) ** 2
