"""The graded degradations the quality gate is measured on (``bench.quality_eval``).

Each family makes a moderate and a strong copy of a good kiosk-like still: defocus and motion blur
(graded in the source image's own pixels), under- and over-exposure (in linear light), specular glare,
colour casts towards red, blue, green and yellow, the dermatoscope pushed to one side (``shifted``) or
tilted (``tilted``), and a lesion cut by the edge of the view (``cut``). ``DEGRADATIONS`` lists them
with the check(s) in charge of catching each. Nothing here writes images.
"""

from __future__ import annotations

import random

import cv2
import numpy as np

from bench.quality_sources import Item
from edge.camera import synth
from edge.quality.analysis import find_fov

CAST_DIRS = {"red": (0.0, 0.0, 1.0), "blue": (1.0, 0.0, 0.0), "green": (0.0, 0.7071, 0.0), "yellow": (-1.0, 0.0, 0.0)}
GRADES = ("moderate", "strong")


def cast(img: np.ndarray, direction: str, strength: float) -> np.ndarray:
    """A colour cast of ``strength`` in natural-log gain units towards ``direction`` (0.25: about 28 %)."""
    kb, kg, kr = CAST_DIRS[direction]
    return synth.degrade_cast(img, tuple(float(np.exp(strength * k)) for k in (kb, kg, kr)))


def cut(img: np.ndarray, lesion: np.ndarray | None, outside: float, rng: random.Random) -> np.ndarray | None:
    """Aim beside the lesion: the skin slides under the camera (the frame's content shifted towards a
    random side; the dermatoscope's dark vignette and the optics' fall-off stay where they were) until
    ``outside`` of the lesion's area lies beyond the frame or the field of view. None without a
    lesion, or where ``outside`` cannot be reached.

    Where the view now shows skin the still never held (the strip the shift uncovers, and where the
    still's own vignette or darkened rim slid inwards), it shows plain skin: the skin's median colour
    with a fine grain. Mirroring the margin into that strip, as this did before, brought the
    vignette, hairs, rulers and other spots into the middle of the view as mirrored shapes that no
    photograph shows, and the segmentation took them for the lesion.
    """
    if lesion is None or not lesion.any():
        return None
    h, w = img.shape[:2]
    small = cv2.resize(img, (400, round(400 * h / w)), interpolation=cv2.INTER_AREA)
    fov = cv2.resize(find_fov(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)).mask, (w, h),
                     interpolation=cv2.INTER_NEAREST) > 0
    ys, xs = np.nonzero(lesion[::4, ::4])
    ys, xs = ys * 4, xs * 4
    dx, dy = [(-1, 0), (1, 0), (0, -1), (0, 1)][rng.randrange(4)]
    skin = skin_colour(img, fov, lesion)
    if skin is None:
        return None  # the lesion fills the view: there is no skin to show beside it
    for t in range(0, max(w, h), 8):
        nx, ny = xs + dx * t, ys + dy * t
        inside = (nx >= 0) & (nx < w) & (ny >= 0) & (ny < h)
        inside[inside] = fov[ny[inside], nx[inside]]
        if 1.0 - inside.mean() >= outside:
            m = np.float32([[1, 0, dx * t], [0, 1, dy * t]])
            moved = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            moved = _plain_skin_where_unseen(moved, skin, fov, m, rng)
            moved[~fov] = img[~fov]
            return moved
    return None


def skin_colour(img: np.ndarray, fov: np.ndarray, lesion: np.ndarray) -> np.ndarray | None:
    """The median colour of the still's lit skin (inside the field of view, outside the lesion, brighter than
    half the view's 90th percentile: not the vignette's dark corners), or None where under 1 % of the frame is such
    skin (a lesion filling the view)."""
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    lit = gray > 0.5 * float(np.percentile(gray[fov], 90)) if fov.any() else gray > 0
    keep = fov & ~lesion & lit
    if np.count_nonzero(keep) < 0.01 * keep.size:
        return None
    return np.median(img[keep], axis=0).astype(np.float32)


def _plain_skin_where_unseen(moved: np.ndarray, skin: np.ndarray, fov: np.ndarray, m: np.ndarray,
                             rng: random.Random) -> np.ndarray:
    """``moved`` with plain skin (the colour ``skin``, fine grain; feathered seam) wherever its content did not
    come from well inside the still's field of view ``fov``: the uncovered strip, the vignette and the rim's
    fall-off that slid inwards."""
    h, w = moved.shape[:2]
    s = min(h, w)
    well_inside = cv2.erode(fov.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (s // 12 | 1,) * 2))
    seen = cv2.warpAffine(well_inside if not fov.all() else np.ones((h, w), np.uint8), m, (w, h),
                          flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    unseen = (seen == 0).astype(np.float32)
    if not unseen.any():
        return moved
    grain = np.random.default_rng(rng.randrange(10**6)).normal(0.0, 4.0, (h, w, 1)).astype(np.float32)
    plain = skin[None, None, :] + cv2.GaussianBlur(grain, (0, 0), 1.0)[..., None]
    # Feathered over the seen side only. Blurred across the seam, as it was before the eighteenth round, the
    # feather mixed in the black that the slide leaves where nothing was seen: a dark band along the seam.
    pad = max(3, w // 60)
    depth = cv2.distanceTransform((unseen == 0).astype(np.uint8), cv2.DIST_L2, 3)
    a = np.clip(1.0 - depth / pad, 0.0, 1.0)[..., None]
    return np.clip(moved * (1 - a) + plain * a, 0, 255).astype(np.uint8)


def field_circle(img: np.ndarray) -> tuple[np.ndarray, tuple[float, float], float]:
    """The still's field of view (bool, full size): its own vignette where it has one, else a centred
    circle as wide as the shorter side (a normal dermatoscope's, which the gate passes); and that
    circle's centre and radius in pixels."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (400, round(400 * h / w)), interpolation=cv2.INTER_AREA)
    fov = find_fov(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    circle = np.zeros((h, w), np.uint8)
    cv2.circle(circle, (w // 2, h // 2), min(h, w) // 2, 1, -1)
    own = cv2.resize(fov.mask, (w, h), interpolation=cv2.INTER_NEAREST) > 0
    field = own & (circle > 0) if not fov.present else own
    r = float(np.sqrt(np.count_nonzero(field) / np.pi))
    return field, ((w - 1) / 2, (h - 1) / 2), r


def _black(img: np.ndarray, keep: np.ndarray, rng: random.Random) -> np.ndarray:
    """``img`` with everything outside ``keep`` (float 0..1, feathered) the vignette's near-black."""
    dark = np.random.default_rng(rng.randrange(10**6)).integers(0, 8, img.shape, dtype=np.uint8)
    k = keep[..., None]
    return np.clip(img * k + dark * (1 - k), 0, 255).astype(np.uint8)


def shifted(img: np.ndarray, offset: float, rng: random.Random) -> np.ndarray:
    """The dermatoscope pushed to one side: its round field of view (the still's own, or a centred one as
    wide as the shorter side) moves ``offset`` of half the shorter side off the frame's centre in a random
    direction, with the skin it shows; the frame's edge cuts it where it reaches beyond."""
    h, w = img.shape[:2]
    field, _, _ = field_circle(img)
    a = rng.uniform(0, 2 * np.pi)
    d = offset * min(h, w) / 2
    m = np.float32([[1, 0, d * np.cos(a)], [0, 1, d * np.sin(a)]])
    moved = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    keep = cv2.warpAffine(field.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return _black(moved, cv2.GaussianBlur(keep, (0, 0), max(1.0, min(h, w) / 200)), rng)


def tilted(img: np.ndarray, depth: float, rng: random.Random) -> np.ndarray:
    """The dermatoscope tilted, not pressed flat: on a random side, a dark cap ``depth`` of the field of
    view's diameter deep (cut off by a straight chord, softened a little) covers its round field of view
    (the still's own, or a centred one as wide as the shorter side)."""
    h, w = img.shape[:2]
    field, (cx, cy), r = field_circle(img)
    a = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    along = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)  # distance from the centre towards the cap
    chord = r * (1 - 2 * depth)
    keep = np.clip((chord - along) / max(2.0, r / 20), 0, 1) * field
    return _black(img, cv2.GaussianBlur(keep.astype(np.float32), (0, 0), max(1.0, min(h, w) / 200)), rng)


def blur(img: np.ndarray, item: Item, native_px: float) -> np.ndarray:
    """Defocus of ``native_px`` pixels (Gaussian sigma) of the source image, at the still's scale."""
    return synth.degrade_blur(img, native_px * item.size[0] / item.native)


def motion(img: np.ndarray, item: Item, native_px: float, rng: random.Random) -> np.ndarray:
    """Camera shake ``native_px`` pixels of the source image long, in a random direction."""
    return synth.degrade_motion(img, max(2, round(native_px * item.size[0] / item.native)), rng.uniform(0, 180))


# family, check(s) in charge, {grade: function(img, item, lesion mask, rng) -> img or None}.
# Blur is graded in the source's own pixels (a blur below a 224-px image's pixel is no blur in it);
# everything else in the still's terms.
DEGRADATIONS = [
    ("defocus", "focus", {"moderate": lambda im, it, m, r: blur(im, it, 1.5),
                          "strong": lambda im, it, m, r: blur(im, it, 3.0)}),
    ("motion", "focus+shake", {"moderate": lambda im, it, m, r: motion(im, it, 8, r),
                               "strong": lambda im, it, m, r: motion(im, it, 16, r)}),
    ("under", "exposure", {"moderate": lambda im, it, m, r: synth.degrade_exposure(im, -2.0),
                           "strong": lambda im, it, m, r: synth.degrade_exposure(im, -3.0)}),
    ("over", "exposure+clipping", {"moderate": lambda im, it, m, r: synth.degrade_exposure(im, 1.0),
                                   "strong": lambda im, it, m, r: synth.degrade_exposure(im, 1.75)}),
    ("glare", "glare", {"moderate": lambda im, it, m, r: synth.degrade_glare(im, 12, 20 * it.glare_scale,
                                                                             r.randrange(10**6)),
                        "strong": lambda im, it, m, r: synth.degrade_glare(im, 20, 24 * it.glare_scale,
                                                                           r.randrange(10**6))}),
    *[(f"cast_{d}", "colour", {"moderate": lambda im, it, m, r, d=d: cast(im, d, 0.25),
                               "strong": lambda im, it, m, r, d=d: cast(im, d, 0.4)}) for d in CAST_DIRS],
    ("shifted", "fov", {"moderate": lambda im, it, m, r: shifted(im, 0.3, r),
                        "strong": lambda im, it, m, r: shifted(im, 0.5, r)}),
    ("tilted", "fov", {"moderate": lambda im, it, m, r: tilted(im, 0.2, r),
                       "strong": lambda im, it, m, r: tilted(im, 0.35, r)}),
    ("cut", "framing+lesion", {"moderate": lambda im, it, m, r: cut(im, m, 0.25, r),
                               "strong": lambda im, it, m, r: cut(im, m, 0.5, r)}),
]
