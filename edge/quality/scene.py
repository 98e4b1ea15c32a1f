"""What every check looks at, measured once per frame: the working images, field of view, lesion and skin.

``scene(jpeg, settings, rules)`` decodes the frame on the fixed path (``analysis.decode``), finds
the dermatoscope's field of view and the lesion, and the skin around the lesion (the colour and
exposure checks measure the skin, not the lesion). The calibration of the colour reference
(``edge.quality.calibrate``) measures its stills through this same function, so that the
reference and the check see the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from wire.kioskconfig.quality import GreyPatch, QualitySettings, ViewRules

from .analysis import Working, decode
from .region import LesionRegion
from .segment import segment_lesion
from .fov import FieldOfView, find_fov, without
from .markers import MARKED_SKIN_SHARE, skin_marks
from .measures import SATURATED
from .patch import hidden
from .stamps import TextSearch
from .words import reaches


@dataclass
class Scene:
    """One frame's working images and regions (analysis size unless noted)."""

    work: Working
    gray: np.ndarray
    lab: np.ndarray
    fov: FieldOfView
    lesion: LesionRegion
    present: bool  # a lesion with enough contrast against the skin
    skin: np.ndarray  # bool: the field of view without the lesion and a thin ring round it
    focus_gray: np.ndarray  # the focus image (``work.focus``) in grey
    text: TextSearch | None  # lines of burnt-in text in the focus image, searched for beside the rest (None: not asked)
    patch: GreyPatch | None = None  # the contact plate's grey patch in this view (left out of ``fov.inner``)
    #: measures more than one check reads, taken once (the focus ratios: ``focus`` and ``shake``)
    memo: dict = field(default_factory=dict)


def find_lesion(small: np.ndarray, rules: ViewRules | None = None, gray: np.ndarray | None = None,
                lab: np.ndarray | None = None, patch: GreyPatch | None = None
                ) -> tuple[FieldOfView, LesionRegion, np.ndarray, bool]:
    """The gate's lesion in a BGR image at the analysis size: (field of view, lesion, the sticker- and
    pen-coloured pixels, whether the lesion stands out from the skin by ``rules.lesion_min_contrast``).
    ``patch``: the contact plate's grey patch, left out of the field of view's ``inner`` (``patch.hidden``).

    The one segmentation the checks, the bench's masks comparison and the classifier's crop all use.
    """
    rules = rules or ViewRules()
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if gray is None else gray
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2Lab) if lab is None else lab
    fov = find_fov(gray)
    if patch is not None:
        fov = without(fov, hidden(small.shape, patch))
    sticker_coloured = skin_marks(lab)
    lesion = segment_lesion(small, fov, lab, rules.lesion_min_contrast, sticker_coloured)
    # by the lesion check's own rule where the contrast falls short (``words.reaches``)
    return fov, lesion, sticker_coloured, lesion.found and reaches(lesion.contrast, rules.lesion_min_contrast)


def scene(jpeg: bytes, settings: QualitySettings, rules: ViewRules, text: bool = True,
          patch: GreyPatch | None = None) -> Scene:
    """Decode ``jpeg`` and measure its regions; raises ``analysis.DecodeError`` if it is not an image. ``text``: search
    the frame for burnt-in text (``Scene.text``, for the focus check) on a thread of its own meanwhile. ``patch``: the
    contact plate's grey patch, seen in this view (``settings.grey_patch`` for the dermoscopic view), which no
    region includes."""
    work = decode(jpeg, settings.work_size, settings.focus_size, settings.analysis_size)
    focus_gray = cv2.cvtColor(work.focus, cv2.COLOR_BGR2GRAY)
    search = TextSearch(work.focus, focus_gray) if text else None  # on its own thread while the regions are found
    small = work.small
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2Lab)
    fov, lesion, sticker_coloured, present = find_lesion(small, rules, gray, lab, patch)
    inside = fov.inner > 0
    # Not skin: a colour-calibration sticker or pen mark (CIELAB b* below -15 or chroma over 60), as
    # long as it is under 40 % of the view (``MARKED_SKIN_SHARE``; most of it so coloured is the skin under a cast; a
    # calibration sticker can cover over a quarter of a frame).
    marks = inside & sticker_coloured
    if np.count_nonzero(marks) < MARKED_SKIN_SHARE * np.count_nonzero(inside):
        inside = inside & ~marks
    if lesion.markers is not None:  # the stickers the segmentation passed over, with their soft edge
        inside = inside & (cv2.dilate(lesion.markers, np.ones((5, 5), np.uint8)) == 0)
    skin = inside
    if present:
        ring = cv2.dilate(lesion.mask, np.ones((5, 5), np.uint8))
        skin = inside & (ring == 0)
        if np.count_nonzero(skin) < 0.05 * np.count_nonzero(inside):
            skin = inside
    return Scene(work, gray, lab, fov, lesion, present, skin, focus_gray, search, patch)


def skin_colour(sc: Scene) -> tuple[float, float, float] | None:
    """The skin's mean log-chromaticity (ln R/G, ln B/G) and log-lightness (its mean ln G) of ``sc``;
    None without skin to measure.

    A colour cast (channel gains g_R, g_G, g_B) adds (ln g_R/g_G, ln g_B/g_G) to the chromaticity,
    whatever the skin's own colour, so the distance from a reference measures the cast itself. The
    lightness says how dark the skin is (darker skin is redder: ``KioskReference.expected``); it is read
    in green, which a red, blue or yellow cast leaves alone, over every skin pixel whose green is not
    saturated, so that a cast clipping red does not change which pixels it is read on.
    """
    small = sc.work.small
    skin = sc.skin.view(np.uint8)
    # Chromaticity only over pixels with no saturated channel: a saturated channel hides the pixel's colour
    # (a red cast on fair skin clips red first), so the cast is read where it can still be seen.
    keep = cv2.bitwise_and(cv2.inRange(small, (0, 0, 0), (SATURATED - 1,) * 3), skin)
    n = cv2.countNonZero(keep)
    if n < 50:
        return None
    # mean(ln R - ln G) = mean(ln R) - mean(ln G): each channel's histogram over the kept pixels
    b, g, r = (float(cv2.calcHist([small], [c], keep, [256], [0, 256]).ravel().astype(np.float64) @ _LOG) / n
               for c in range(3))
    green = cv2.calcHist([small], [1], skin, [256], [0, 256]).ravel().astype(np.float64)[:SATURATED]
    return r - g, b - g, float(green @ _LOG[:SATURATED] / green.sum())


_LOG = np.log(np.arange(256, dtype=np.float64) + 1.0)


def around_lesion(sc: Scene, least: float = 0.0) -> np.ndarray:
    """The lesion's bounding box grown by a quarter of its size on each side (uint8 0/255), and to at
    least ``least`` of the frame's shorter side each way, centred on the lesion."""
    x, y, bw, bh = cv2.boundingRect(sc.lesion.mask)
    pad_x, pad_y = bw // 4 + 2, bh // 4 + 2
    side = int(least * min(sc.fov.inner.shape))
    pad_x, pad_y = max(pad_x, (side - bw + 1) // 2), max(pad_y, (side - bh + 1) // 2)
    box = np.zeros_like(sc.fov.inner)
    box[max(0, y - pad_y):y + bh + pad_y, max(0, x - pad_x):x + bw + pad_x] = 255
    return box
