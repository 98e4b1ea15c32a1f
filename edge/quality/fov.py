"""The dermatoscope's field of view: where it lies in the frame (``find_fov``) and how well it covers
the middle of the picture (``fov_coverage``, the fov check's value). Split from ``analysis.py``, which
re-exports both.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


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


def without(fov: FieldOfView, hide: np.ndarray) -> FieldOfView:
    """``fov`` with ``hide`` (uint8 0/255, same size) left out of what the checks read (``inner``): something in
    the field that is not the skin, such as the contact plate's grey patch. ``mask`` stays the field's, so the
    field's coverage and its scale are as before."""
    inner = cv2.bitwise_and(fov.inner, cv2.bitwise_not(hide))
    return FieldOfView(fov.mask, inner, fov.present, fov.area, fov.offset)


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
