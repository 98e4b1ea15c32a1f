"""Image measurements behind the quality gate, on one fixed decode path (focus and glare: ``measures``).

``decode()`` turns the JPEG into three working images: the DCT-reduced decode (libjpeg's
1/2, 1/4 or 1/8 scaling, about twice as fast as a full decode of a 12 MP frame), a
``focus_size``-wide copy for focus and glare, and an ``analysis_size``-wide copy for the field
of view, the lesion, exposure and colour. Every measurement is taken at these fixed sizes, so
thresholds do not depend on the sensor's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.camera.replay import jpeg_size

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

    focus: np.ndarray  # BGR, focus_size wide (or smaller if the frame is)
    small: np.ndarray  # BGR, analysis_size wide
    full_size: tuple[int, int]  # width, height of the original frame
    reduction: int  # DCT reduction used (1, 2, 4 or 8)


_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def _shrink(img: np.ndarray, width: int) -> np.ndarray:
    """Scale down to ``width`` (never up): area averaging from 2x down, bilinear above (faster)."""
    h, w = img.shape[:2]
    if w <= width:
        return img
    interp = cv2.INTER_AREA if w >= 2 * width else cv2.INTER_LINEAR
    return cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=interp)


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
        long_side = max(size)
        for f in (8, 4, 2):
            if long_side // f >= work_size:
                factor = f
                break
    img = cv2.imdecode(buf, _REDUCED[factor] if factor > 1 else cv2.IMREAD_COLOR) if len(buf) else None
    if img is None or img.ndim != 3:
        raise DecodeError("not a readable image")
    if size is None:
        size = (img.shape[1], img.shape[0])
    focus = _shrink(img, focus_size)
    small = _shrink(focus, analysis_size)
    if min(focus.shape[:2]) < MIN_SIDE or min(small.shape[:2]) < MIN_SIDE:
        raise DecodeError("too small or narrow to judge", size)
    return Working(focus=focus, small=small, full_size=size, reduction=factor)


# --- field of view ---------------------------------------------------------------------------------

@dataclass
class FieldOfView:
    """The dermatoscope's circular field of view (or the whole frame when there is no vignette)."""

    mask: np.ndarray  # uint8 0/255 at analysis size
    inner: np.ndarray  # mask eroded away from its edge (analysis uses this)
    present: bool  # a vignette was found
    area: float  # fraction of the frame inside the field of view
    offset: float  # distance of the circle's centre from the frame's centre / half the shorter side


def find_fov(gray: np.ndarray) -> FieldOfView:
    """Find a dark circular vignette: dark regions connected to the frame's edge are outside."""
    h, w = gray.shape
    s = min(h, w)
    centre = gray[h // 4:3 * h // 4, w // 4:3 * w // 4]
    lit = centre[centre > 15]  # a small field leaves the vignette's black in the middle half too
    thr = float(min(40.0, 0.35 * np.median(lit if lit.size > centre.size // 10 else centre)))
    cs = max(2, s // 25)
    corners = [gray[:cs, :cs], gray[:cs, -cs:], gray[-cs:, :cs], gray[-cs:, -cs:]]
    dark_corners = sum(float(c.mean()) < thr for c in corners)
    full = np.full((h, w), 255, np.uint8)
    margin = max(1, s // 100)
    inner_full = np.zeros_like(full)
    inner_full[margin:-margin, margin:-margin] = 255
    if dark_corners < 2:
        return FieldOfView(full, inner_full, False, 1.0, 0.0)
    dark = (gray < thr).astype(np.uint8)
    dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels = cv2.connectedComponents(dark, connectivity=8)
    touches_edge = np.zeros(n, bool)
    touches_edge[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    touches_edge[0] = False
    mask = np.where(touches_edge, 0, 255).astype(np.uint8)[labels]
    area = float(np.count_nonzero(mask)) / mask.size
    if area < 0.05:
        return FieldOfView(mask, mask, True, area, 1.0)
    m = cv2.moments(mask, binaryImage=True)
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    # The centroid of a circle cut by the frame is biased inwards; fit the circle's own outline.
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pts = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    keep = (pts[:, 0] > 1) & (pts[:, 0] < w - 2) & (pts[:, 1] > 1) & (pts[:, 1] < h - 2)
    if keep.sum() >= 20:
        x, y = pts[keep, 0], pts[keep, 1]
        a = np.column_stack([x, y, np.ones_like(x)])
        sol, *_ = np.linalg.lstsq(a, x * x + y * y, rcond=None)
        fx, fy = sol[0] / 2, sol[1] / 2
        if 0 <= fx < w and 0 <= fy < h:
            cx, cy = fx, fy
    offset = float(np.hypot(cx - (w - 1) / 2, cy - (h - 1) / 2) / (s / 2))
    inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1,) * 2))
    inner = cv2.bitwise_and(inner, inner_full)
    return FieldOfView(mask, inner, True, area, offset)


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
    """CIELAB smoothed over the pigment network (Gaussian, sigma 1/150 of the width), all channels at once."""
    return cv2.GaussianBlur(lab, (0, 0), max(1.0, lab.shape[1] / 150))


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


def masked_median(ch: np.ndarray, mask: np.ndarray, empty: float = 0.0) -> float:
    """Median of the uint8 image ``ch`` where the boolean ``mask`` is set (``empty`` if it is nowhere set)."""
    hist = cv2.calcHist([ch], [0], mask.astype(np.uint8), [256], [0, 256]).ravel()
    total = hist.sum()
    return float(np.searchsorted(np.cumsum(hist), total / 2.0)) if total else empty


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
    best-placed blob near the middle that does.

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
    for k in np.argsort(-score, kind="stable"):
        if score[k] <= 0 or tried == MAX_CANDIDATES:
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
            first = region
            break
        first = first or region
    if held is not None and (first is None or first.contrast < min_contrast):
        first = held
    found = first or empty
    found.markers = markers
    return found


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


def fov_coverage(fov: FieldOfView, disc: float = 0.9, smallest: float = 0.6) -> float:
    """Fraction of a disc centred on the frame inside the field of view; the disc is ``disc`` times the field's size.

    The field's size is the diameter of a circle of its area, as a fraction of the frame's shorter
    side, clipped to ``smallest``..1. A round field of view centred on the frame passes at any
    normal size (1.0, as does a frame without a vignette); one pushed to a side, or cut by a dark
    chord (a dermatoscope tilted, not pressed flat), leaves part of the centred disc outside; a
    field under about 0.85 x ``smallest`` of the shorter side (too small to read) cannot cover
    the disc of the smallest size.
    """
    h, w = fov.mask.shape
    s = min(h, w)
    inside = cv2.countNonZero(fov.mask)
    size = float(np.clip(2.0 * np.sqrt(inside / np.pi) / s, smallest, 1.0))
    centre = np.zeros_like(fov.mask)
    cv2.circle(centre, (w // 2, h // 2), max(1, int(disc * size * s / 2)), 255, -1)
    n = cv2.countNonZero(centre)
    return float(cv2.countNonZero(cv2.bitwise_and(centre, fov.mask))) / max(n, 1)
