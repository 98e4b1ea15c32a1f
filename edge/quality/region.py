"""The lesion as the quality gate describes it: one chosen blob's size, contrast, position and cut.

``describe(blob, lab, fov_mask, inner)`` turns a candidate blob of ``segment.segment_lesion`` into a
``LesionRegion``: its holes filled, clipped to the field of view, its colour difference from the skin
around it (the lesion check's contrast), and how much of it the edge of the view cuts
(``one_sided``, the framing check's value).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class LesionRegion:
    """The segmented lesion at analysis size."""

    mask: np.ndarray  # uint8 0/255
    found: bool
    area: float  # fraction of the field of view
    contrast: float  # colour difference lesion vs skin, CIELAB delta E
    centre: tuple[float, float]  # x, y in pixels at analysis size
    offset: float  # centroid distance from the frame's centre / half the shorter side
    border: float  # outline along the frame's / field of view's edge over the equal-area disc's circumference
    cut: float = 0.0  # how much of the lesion is cut on one side (``one_sided``: the framing check's value)
    cut_edges: tuple[str, ...] = ()  # the edges of the view that cut it (``cut_edges``: "top", "left"), if any
    markers: np.ndarray | None = None  # uint8 0/255: blobs passed over as stickers or pen marks (neither lesion nor skin)
    tint: float = 0.0  # the colour difference in a* and b* alone (lightness left out): shading has next to none


def no_lesion(shape: tuple[int, int]) -> LesionRegion:
    """The region of a frame where no lesion was found."""
    h, w = shape
    return LesionRegion(np.zeros((h, w), np.uint8), False, 0.0, 0.0, (w / 2, h / 2), 0.0, 0.0)


#: ``mean_lab``'s scale from OpenCV's 8-bit CIELAB to L* 0-100 (a* and b* keep their units; their offset of 128
#: cancels in a difference).
LAB_SCALE = np.array([100.0 / 255.0, 1.0, 1.0])


def mean_lab(lab: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean (L*, a* + 128, b* + 128) of OpenCV's 8-bit CIELAB image ``lab`` over ``mask`` (uint8 nonzero or
    boolean), with L* on 0-100: the difference of two is a CIELAB delta E."""
    return np.array(cv2.mean(lab, mask=mask.view(np.uint8) if mask.dtype == bool else mask)[:3]) * LAB_SCALE


def skin_round(mask: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The skin a lesion ``mask`` (uint8 0/255) is measured against: the view's interior ``inner`` (boolean) beyond
    a margin of an eighth of the shorter side round the lesion."""
    s = min(mask.shape)
    return (cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_RECT, (s // 8 | 1,) * 2)) == 0) & inner


def describe(blob: np.ndarray, lab: np.ndarray, fov_mask: np.ndarray, inner: np.ndarray) -> LesionRegion:
    """The ``LesionRegion`` of ``blob`` (uint8, nonzero inside) in the CIELAB image ``lab``, within the
    field of view ``fov_mask`` (uint8 0/255; ``inner``: its boolean interior, away from the rim)."""
    h, w = blob.shape
    s = min(h, w)
    mask = np.where(blob > 0, 255, 0).astype(np.uint8)
    # fill holes (regression structures, light blotches inside the lesion)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(mask, contours, -1, 255, -1)
    mask = cv2.bitwise_and(mask, fov_mask)
    n_px = int(np.count_nonzero(mask))
    fov_px = max(int(np.count_nonzero(fov_mask)), 1)
    if n_px == 0:
        return no_lesion((h, w))
    skin = skin_round(mask, inner)
    if np.count_nonzero(skin) < 50:
        skin = (mask == 0) & inner
    contrast = tint = 0.0
    if np.count_nonzero(skin) >= 50:
        in_lesion, in_skin = mean_lab(lab, mask), mean_lab(lab, skin)
        contrast = float(np.linalg.norm(in_lesion - in_skin))
        tint = float(np.linalg.norm(in_lesion[1:] - in_skin[1:]))
    m = cv2.moments(mask, binaryImage=True)
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    offset = float(np.hypot(cx - (w - 1) / 2, cy - (h - 1) / 2) / (s / 2))
    outline = mask > 0
    outline &= cv2.erode(mask, np.ones((3, 3), np.uint8)) == 0
    edge = cv2.dilate((~inner).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    # Length of outline along the edge over the circumference of a disc of the lesion's area: a
    # ragged outline (hairs, a faint margin) does not dilute it as it would a fraction of the outline.
    contact = outline & edge
    border = min(1.0, float(np.count_nonzero(contact)) / (2.0 * np.sqrt(np.pi * n_px)))
    cut = one_sided(contact, fov_mask, mask)
    edges = cut_edges(contact, fov_mask, mask) if cut > 0 else ()
    return LesionRegion(mask, True, n_px / fov_px, contrast, (cx, cy), offset, border, cut, edges, tint=tint)


def one_sided(contact: np.ndarray, fov_mask: np.ndarray, mask: np.ndarray) -> float:
    """How much of the lesion is cut on one side: 0 (untouched, or cut alike on opposite sides) .. 1.

    ``contact``: where the outline of the lesion ``mask`` runs along the edge of the field of view
    ``fov_mask``. The contact pixels are split into its four sides (by their angle from its centre). On each side, the contact's length (the rows, or columns, it spans) over
    the lesion's extent along that side (its bounding box's height, or width) is about 1 when the
    lesion is cut across its width, small when it only touches the edge. The value is the largest
    of (a side's fraction - the opposite side's): a lesion larger than the view, spanning it from
    one side to the other, has nothing to gain from re-aiming and scores about 0.
    """
    ys, xs = np.nonzero(contact)
    if xs.size == 0:
        return 0.0
    m = cv2.moments(fov_mask, binaryImage=True)
    h, w = contact.shape
    cx, cy = (m["m10"] / m["m00"], m["m01"] / m["m00"]) if m["m00"] else ((w - 1) / 2, (h - 1) / 2)
    _, _, bw, bh = cv2.boundingRect(mask)
    _, _, fw, fh = cv2.boundingRect(fov_mask)
    room = [float(np.clip((0.9 - bw / max(fw, 1)) / 0.4, 0.0, 1.0)), float(np.clip((0.9 - bh / max(fh, 1)) / 0.4, 0.0, 1.0))]
    ang = np.degrees(np.arctan2(ys - cy, xs - cx)) % 360.0
    side = ((ang + 45.0) // 90.0).astype(int) % 4  # 0 right, 1 bottom, 2 left, 3 top
    frac = _spans(ys, xs, side, (0, 0, bw, bh))
    # sides 0/2 (right/left) are re-aimed along x (room[0]), 1/3 (bottom/top) along y (room[1])
    return float(max(0.0, max(frac[k] * room[k % 2] - frac[(k + 2) % 4] for k in range(4))))


#: The sides of the view as the picture shows them, in the order ``cut_edges`` numbers them.
SIDES = ("right", "bottom", "left", "top")
#: A side beside the one that cuts the lesion most is named too where it cuts at least this share as much: a lesion
#: slid out across a corner ("the bottom and right edges").
CORNER_SHARE = 0.5


def cut_edges(contact: np.ndarray, fov_mask: np.ndarray, mask: np.ndarray) -> tuple[str, ...]:
    """The edges of the view that cut the lesion, for the photographer (``SIDES``; top or bottom first): the one that
    cuts it most, and a side beside it cutting at least ``CORNER_SHARE`` as much; none where no side cuts it more than
    the opposite one does.

    ``contact``, ``fov_mask``, ``mask``: as ``one_sided`` takes them. Each contact pixel belongs to the side of the
    view's bounding box it lies nearest (exact on a rectangular frame, where ``one_sided``'s quarters by angle give a
    corner to the longer sides; a quarter of the rim each on a round view), and a side cuts the lesion by its
    contact's span over the lesion's extent along it, less the opposite side's.
    """
    ys, xs = np.nonzero(contact)
    if xs.size == 0:
        return ()
    fx, fy, fw, fh = cv2.boundingRect(fov_mask)
    gaps = np.stack([fx + fw - 1 - xs, fy + fh - 1 - ys, xs - fx, ys - fy])  # to the right, bottom, left, top
    side = np.argmin(gaps, axis=0)
    frac = _spans(ys, xs, side, cv2.boundingRect(mask))
    cuts = [frac[k] - frac[(k + 2) % 4] for k in range(4)]
    worst = int(np.argmax(cuts))
    if cuts[worst] <= 0:
        return ()
    beside = max(((worst + 1) % 4, (worst + 3) % 4), key=lambda k: cuts[k])
    named = [worst, beside] if cuts[beside] >= CORNER_SHARE * cuts[worst] else [worst]
    return tuple(SIDES[k] for k in sorted(named, key=lambda k: k % 2 == 0))


def _spans(ys: np.ndarray, xs: np.ndarray, side: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Per side of the view (0 right, 1 bottom, 2 left, 3 top; ``side``: each contact pixel's), the rows (right, left)
    or columns (bottom, top) its contact pixels ``ys``, ``xs`` span over the lesion's extent along it (``box``: the
    lesion's bounding box), at most 1."""
    _, _, bw, bh = box
    frac = np.zeros(4)
    for k in range(4):
        sel = side == k
        if sel.any():
            along = ys[sel] if k in (0, 2) else xs[sel]
            frac[k] = min(1.0, np.unique(along).size / max(bh if k in (0, 2) else bw, 1))
    return frac
