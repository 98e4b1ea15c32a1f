"""The quality gate's one fixed decode path and its working images (the lesion: ``segment``; focus and glare:
``measures``).

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
    focus_side: int | None = None  # the focus size asked for (``focus`` is smaller where the frame is)


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
    return Working(focus=focus, small=small, full_size=size, reduction=factor, decoded=img, focus_side=focus_size)


#: A frame is enlarged (``enlarge``) only by at least this factor: a bicubic resample by a few per cent smooths the
#: frame by up to half a pixel and correlates its noise, more than it corrects the scale. PH2's 765-px files, 4.6 %
#: under the focus size, so enlarged passed four more of 350 noisy, strongly defocused copies (one fewer elsewhere).
ENLARGE_LEAST = 1.1


def enlarge(img: np.ndarray, side: int) -> np.ndarray:
    """Scale up (bicubic) until the frame's ``nominal_side`` is ``side`` pixels; a frame within ``ENLARGE_LEAST`` of it
    (or larger) as it is. For the focus ratio of a camera's file smaller than the focus size (``focus_value``).

    The ratio's two scales are fixed in pixels of the image it reads, and a camera's normal sharpness is that of its
    frames at the focus size. Read at its own size, a 600-px file's pixels are a third coarser than the normal's,
    so the ratio reads another band of the skin's detail, and a blur of 1.5 of its pixels (2 at the focus size)
    lies nearer the ratio's fine scale than the same blur of a larger frame: HAM10000-masks' moderately defocused
    copies were caught 65 % (calibrated on the same files), 97 % so enlarged (``bench.quality_native_degraded``).
    Enlarging adds no detail; it only sets the file's view at the scale every other frame is measured at."""
    return _enlarged_by(img, side / nominal_side(*img.shape[:2]))


def _enlarged_by(img: np.ndarray, f: float) -> np.ndarray:
    """``img`` scaled up ``f`` times (bicubic), or as it is where ``f`` is under ``ENLARGE_LEAST``."""
    if f < ENLARGE_LEAST:
        return img
    return cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)), interpolation=cv2.INTER_CUBIC)


#: A field of view whose box spans less than this share of the frame's shorter side (a round view with black
#: round it, on a sensor larger than the dermatoscope's view) is measured for focus at its own scale (``field_crop``).
FIELD_SCALED = 0.85


def field_crop(work: Working, fov_mask: np.ndarray,
               enlarged: bool = False) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The focus image of a small field of view: its box cut from the decoded frame and scaled as a view as high as
    a 4:3 frame is at the focus size (three quarters of that frame's ``nominal_side``), and the box in ``small``'s
    pixels (x, y, w, h). Never up, unless ``enlarged`` (a camera's file, ``enlarge``) and the frame was decoded whole
    (not DCT-reduced: the crop holds every pixel the file has). None for a field spanning ``FIELD_SCALED`` of the
    shorter side or more, and for a frame the focus image was not reduced from (it already holds every decoded pixel).

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
    elif enlarged and work.reduction == 1:  # as a camera's small file is (``enlarge``)
        crop = _enlarged_by(crop, f)
    return crop, (x, y, bw, bh)


def masked_median(ch: np.ndarray, mask: np.ndarray, empty: float = 0.0) -> float:
    """Median of the uint8 image ``ch`` where the boolean ``mask`` is set (``empty`` if it is nowhere set)."""
    return masked_quantile(ch, mask, 0.5, empty)


def masked_quantile(ch: np.ndarray, mask: np.ndarray, q: float, empty: float = 0.0) -> float:
    """The ``q`` quantile (0..1) of the uint8 image ``ch`` where the boolean ``mask`` is set (``empty`` if it is
    nowhere set)."""
    hist = cv2.calcHist([ch], [0], mask.astype(np.uint8), [256], [0, 256]).ravel()
    total = hist.sum()
    return float(np.searchsorted(np.cumsum(hist), total * q)) if total else empty
