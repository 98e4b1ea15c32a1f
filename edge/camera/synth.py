"""Synthetic, lesion-like dermoscopy images and the ways a real photograph goes wrong.

``lesion_image()`` draws a skin-toned background with shading and fine skin texture, an
irregular pigmented lesion (lobed border, darker blotches, a reticular pigment network) and,
optionally, the dark circular vignette of a contact dermatoscope. The same seed always gives
the same image. The ``degrade_*`` functions apply the faults the quality gate must catch
(blur, motion blur, exposure, glare spots, colour casts, off-centre framing); tests and
``bench/quality_eval.py`` use them on generated and on real images alike.

These are test pictures, not clinical images: nothing here is meant to look like a diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Skin tones under a dermatoscope's light (BGR), light to medium-dark: CIELAB L* 76..57,
#: a* about 20, b* 6..12, within the spread of HAM10000's skin colours.
SKIN_TONES = ((179, 176, 227), (166, 160, 222), (142, 142, 200), (116, 125, 174))
#: Lesion pigment (BGR): brown to dark brown.
LESION_TONES = ((59, 72, 112), (48, 58, 89), (62, 82, 131), (59, 58, 102))


@dataclass(frozen=True)
class Lesion:
    """Where the lesion was drawn: centre (pixels) and mean radius (pixels)."""

    cx: float
    cy: float
    radius: float


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Band-limited noise in about [-1, 1]: random values on a coarse grid, upsampled bicubically."""
    h, w = shape
    small = rng.standard_normal((max(cells[1], 2), max(cells[0], 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) / 1.5


def lesion_image(
    width: int = 1600,
    height: int = 1200,
    seed: int = 0,
    *,
    vignette: bool = True,
    vignette_radius: float = 0.82,
    vignette_centre: tuple[float, float] = (0.5, 0.5),
    centre: tuple[float, float] = (0.5, 0.5),
    size: float | None = None,
    hairs: int = 0,
    noise: float = 2.0,
) -> np.ndarray:
    """A synthetic dermoscopy image as a BGR uint8 array (``height`` x ``width`` x 3).

    ``centre`` is the lesion centre as fractions of width and height; ``size`` its mean
    radius as a fraction of the shorter side (default: drawn from 0.13 to 0.2 by the seed).
    ``vignette_radius`` is the radius of the dermatoscope's field of view as a fraction of
    half the image diagonal (0.82: the corners are dark, the sides just cut), centred at
    ``vignette_centre`` (fractions; move it to mimic a dermatoscope held askew).
    """
    img, _ = lesion_image_and_truth(width, height, seed, vignette=vignette, vignette_radius=vignette_radius,
                                    vignette_centre=vignette_centre, centre=centre, size=size, hairs=hairs,
                                    noise=noise)
    return img


def lesion_image_and_truth(
    width: int = 1600,
    height: int = 1200,
    seed: int = 0,
    *,
    vignette: bool = True,
    vignette_radius: float = 0.82,
    vignette_centre: tuple[float, float] = (0.5, 0.5),
    centre: tuple[float, float] = (0.5, 0.5),
    size: float | None = None,
    hairs: int = 0,
    noise: float = 2.0,
) -> tuple[np.ndarray, Lesion]:
    """Like ``lesion_image`` but also returns where the lesion is (for tests of segmentation)."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    s = min(w, h)
    skin = np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))], np.float32)
    pig = np.array(LESION_TONES[rng.integers(len(LESION_TONES))], np.float32)

    # Skin: broad shading, then fine texture (pores, furrows) at about 1/250 of the frame.
    shade = 1.0 + 0.06 * _smooth_noise(rng, (h, w), (4, 3))
    fine = _smooth_noise(rng, (h, w), (w * 3 // s * 90, h * 3 // s * 90))
    out = skin[None, None, :] * (shade * (1.0 + 0.035 * fine))[..., None]

    # Lesion: lobed border r(theta), soft edge, blotches and a pigment network.
    radius = (size if size is not None else rng.uniform(0.13, 0.2)) * s
    cx = (centre[0] + rng.uniform(-0.02, 0.02)) * w
    cy = (centre[1] + rng.uniform(-0.02, 0.02)) * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    theta = np.arctan2(dy, dx)
    rt = np.ones_like(theta)
    for k in range(2, 7):
        rt += rng.uniform(0.02, 0.12) / np.sqrt(k - 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    d = np.sqrt(dx * dx + dy * dy) / (radius * rt)
    del xx, yy, dx, dy, theta, rt
    alpha = np.clip((1.0 - d) / 0.12, 0.0, 1.0)
    alpha = alpha * alpha * (3 - 2 * alpha)  # smoothstep
    cells = max(int(w / (radius / 9)), 4)
    net = _smooth_noise(rng, (h, w), (cells, cells * h // w))
    network = np.exp(-((net / 0.18) ** 2))  # zero-crossings of smooth noise: a reticular net
    blotch = 1.0 - 0.25 * np.clip(_smooth_noise(rng, (h, w), (6, 5)), 0, 1) - 0.15 * np.clip(1 - d, 0, 1)
    lesion = pig[None, None, :] * (blotch * (1.0 - 0.45 * network))[..., None]
    out = out * (1 - alpha[..., None]) + lesion * alpha[..., None]
    del net, network, blotch, lesion, alpha, d

    for _ in range(hairs):
        pts = np.cumsum(rng.normal(0, s / 40, (8, 2)), axis=0) + rng.uniform(0, 1, 2) * (w, h)
        cv2.polylines(out, [pts.astype(np.int32)], False, (25, 30, 40), max(1, s // 500), cv2.LINE_AA)

    if noise > 0:
        out += rng.normal(0, noise, ((h + 1) // 2, (w + 1) // 2, 1)).astype(np.float32).repeat(2, 0).repeat(2, 1)[:h, :w]
    if vignette:
        out *= _vignette_mask(h, w, vignette_radius, vignette_centre)[..., None]
        out += 6.0
    return np.clip(out, 0, 255).astype(np.uint8), Lesion(cx, cy, radius)


def _vignette_mask(h: int, w: int, radius_frac: float, centre: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """1 inside the dermatoscope's circular field of view, falling to 0 outside."""
    r = radius_frac * 0.5 * float(np.hypot(w, h))
    yy, xx = np.ogrid[0:h, 0:w]
    dist = np.sqrt((xx - centre[0] * (w - 1)) ** 2 + (yy - centre[1] * (h - 1)) ** 2)
    m = np.clip((r - dist) / (0.015 * r), 0.0, 1.0)
    return (0.15 + 0.85 * np.clip((r - dist) / (0.35 * r), 0, 1) ** 0.3) * m


# --- degradations ---------------------------------------------------------------------------

def degrade_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Out-of-focus blur: Gaussian with standard deviation ``sigma`` pixels."""
    return cv2.GaussianBlur(img, (0, 0), sigma)


def degrade_motion(img: np.ndarray, length: int, angle_deg: float = 30.0) -> np.ndarray:
    """Camera shake: a straight motion blur ``length`` pixels long at ``angle_deg``."""
    length = max(int(length), 1)
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle_deg, 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    return cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))


def degrade_exposure(img: np.ndarray, stops: float) -> np.ndarray:
    """Under- (negative) or over-exposure (positive) by ``stops`` f-stops, in linear light."""
    lin = (np.arange(256, dtype=np.float64) / 255.0) ** 2.2 * (2.0 ** stops)
    lut = np.clip(np.clip(lin, 0, 1) ** (1 / 2.2) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut)


def degrade_glare(img: np.ndarray, spots: int, radius: float, seed: int = 0,
                  region: tuple[float, float, float, float] = (0.25, 0.25, 0.75, 0.75)) -> np.ndarray:
    """Specular reflections: ``spots`` saturated white blobs of about ``radius`` pixels.

    The spots fall inside ``region`` (x0, y0, x1, y1 as fractions), by default the centre of
    the frame where the lesion is, as reflections from a dry or air-bubbled contact plate do.
    """
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    layer = np.zeros((h, w), np.float32)
    for _ in range(spots):
        c = (int(rng.uniform(region[0], region[2]) * w), int(rng.uniform(region[1], region[3]) * h))
        ax = (max(1, int(radius * rng.uniform(0.6, 1.4))), max(1, int(radius * rng.uniform(0.4, 1.0))))
        cv2.ellipse(layer, c, ax, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
    layer = cv2.GaussianBlur(layer, (0, 0), max(radius / 6, 0.5))
    a = np.clip(layer * 1.6, 0, 1)[..., None]
    return np.clip(img.astype(np.float32) * (1 - a) + 255.0 * a, 0, 255).astype(np.uint8)


def degrade_cast(img: np.ndarray, gains_bgr: tuple[float, float, float]) -> np.ndarray:
    """A colour cast: per-channel gains (blue, green, red), e.g. wrong white balance."""
    ramp = np.arange(256, dtype=np.float64)
    luts = [np.clip(ramp * g + 0.5, 0, 255).astype(np.uint8) for g in gains_bgr]
    return cv2.merge([cv2.LUT(c, lut) for c, lut in zip(cv2.split(img), luts)])


#: Darker skin as melanin makes it: ln gain per unit of pigment in blue, green and red (8-bit values). Green and
#: blue are absorbed more than red, so darker skin is also redder: ln R/G rises 0.35 per unit while ln G falls
#: 0.85 (0.41 per unit of ln G; the sources' own skins show 0.27-0.82). One unit takes about 40 % from red: pale
#: skin towards the darkest (Fitzpatrick VI) under the same light.
MELANIN = (-1.0, -0.85, -0.5)


def darker_skin(img: np.ndarray, melanin: float) -> np.ndarray:
    """The same photograph of a patient with ``melanin`` units more pigment (``MELANIN``), under the same light."""
    return degrade_cast(img, tuple(float(np.exp(e * melanin)) for e in MELANIN))


def degrade_offcentre(img: np.ndarray, keep: float = 0.55, corner: int = 0) -> np.ndarray:
    """Lesion out of frame: keep a ``keep``-sized window in one corner (0..3), scaled back up.

    A centred lesion ends up near the window's edge, as when the camera is aimed beside it.
    """
    h, w = img.shape[:2]
    cw, ch = int(w * keep), int(h * keep)
    x0 = 0 if corner in (0, 3) else w - cw
    y0 = 0 if corner in (0, 1) else h - ch
    return cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)


def grey_patch(img: np.ndarray, x: float, y: float, radius: float, level: float,
               gains_bgr: tuple[float, float, float] = (1.0, 1.0, 1.0), seed: int = 0) -> np.ndarray:
    """``img`` with a neutral grey patch drawn where a contact plate's patch would show (``GreyPatch``: centre at
    ``x``, ``y`` fractions of the width and height, ``radius`` a fraction of the shorter side), ``level`` grey
    (0-255) under the light's own colour (``gains_bgr``), shaded a little across (the light falls off towards the
    rim of the view), its edge softened as the optics soften it, with the sensor's grain."""
    h, w = img.shape[:2]
    rng = np.random.default_rng(seed)
    r = radius * min(h, w)
    cx, cy = x * (w - 1), y * (h - 1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.hypot(xx - cx, yy - cy)
    alpha = np.clip(r + 0.5 - dist, 0.0, 1.0)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.5, min(h, w) / 1500))[..., None]
    shade = 1.0 - 0.06 * (yy - cy) / max(r, 1.0)  # a few per cent darker towards the rim below it
    grey = level * shade[..., None] * np.asarray(gains_bgr, np.float32)
    grey = grey + rng.normal(0.0, 1.5, (h, w, 1)).astype(np.float32)
    out = img.astype(np.float32) * (1.0 - alpha) + grey * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def encode_jpeg(img: np.ndarray, quality: int = 92) -> bytes:
    """Encode a BGR array as JPEG bytes (raises ValueError if OpenCV cannot)."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
