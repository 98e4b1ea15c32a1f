"""Text burnt into a photograph: a date, an identifier, a magnification written over the picture.

Capture software in some clinics writes such lines into the pixels. Their strokes are sharp however
blurred the photograph under them is, so the focus ratio (``measures.focus_ratio``) would count them as
the skin's detail and pass a defocused photograph (``bench.quality_robust``'s "date stamp"). The focus
check leaves the lines found here out of its region.

A line of text is told from what else is thin and bright in dermoscopy (the rims of air bubbles in the
contact fluid, reflections along hairs, a ruler's ticks, which are dark) by its shape: at least
``LINE_CHARS`` character-sized marks side by side on one baseline, of one font's heights (digits and
capitals, or lowercase letters' x-height beside their ascenders), the tall ones narrower than tall, with
gaps under a character's height, and each white at its brightest. White text only, as the stamps
seen are: yellow or dark text is not looked for (a yellow stroke is no brighter than pale skin in grey).
"""

from __future__ import annotations

import cv2
import numpy as np

#: A stroke's grey level at least this, and this much above the picture round it (a white top-hat over
#: ``CELL`` of the shorter side): anti-aliased, JPEG-compressed white on pale skin still reaches both ...
TEXT_LEVEL, TEXT_LIFT = 200, 15
#: ... and every character white at its brightest (the stamps measured peak at 244-255; the pale skin's
#: honeycomb of PH2, whose cells can line up like characters, at 216-223).
TEXT_PEAK = 240
#: The top-hat's window, as a share of the frame's shorter side: wider than a character's strokes.
CELL = 0.02
#: A character's height as a share of the frame's shorter side: from this ...
CHAR_LEAST = 0.012
#: ... to this (a heading-sized date is under 5 %).
CHAR_MOST = 0.08
#: Characters in one line: bottoms level within this share of their height, and tops too, or one of them an
#: x-height beside an ascender's ...
LINE_ALIGN = 0.2
#: ... and the line's tall characters at most this wide for their height (median).
TALL_WIDTH = 0.9
#: At least this many characters in a row make a line. With 3, bubble rims and hair reflections lined
#: up by chance in 25 of 3,936 real photographs (PH2, ISIC 2017, HAM10000); with 5, none did. Once a frame
#: has such a line, groups of two or more characters of its height are text too (``text_mask``).
LINE_CHARS = 5


def _characters(bright: np.ndarray, gray: np.ndarray, side: int) -> np.ndarray:
    """The connected marks of ``bright`` sized and shaped like characters, and white at their brightest
    (``TEXT_PEAK`` in ``gray``): rows (x, y, width, height), sorted by x."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    x, y, w, h, area = stats[1:].T
    keep = np.flatnonzero((h >= max(5.0, CHAR_LEAST * side)) & (h <= CHAR_MOST * side) & (w <= 1.6 * h)
                          & (area <= 0.75 * w * h))  # strokes, not a filled blob
    white = [k for k in keep
             if gray[y[k]:y[k] + h[k], x[k]:x[k] + w[k]][labels[y[k]:y[k] + h[k], x[k]:x[k] + w[k]] == k + 1].max()
             >= TEXT_PEAK]
    rows = np.column_stack([x, y, w, h])[white].reshape(-1, 4)
    return rows[np.argsort(rows[:, 0], kind="stable")]


def _lines(chars: np.ndarray) -> list[np.ndarray]:
    """Chains of ``chars`` (sorted by x) side by side on one baseline: each the next to the right with a gap
    under ``1.2`` times the taller's height, its bottom within ``LINE_ALIGN`` of that height of the last one's,
    and its top too (a font's digits and capitals are one height) unless one is 1.25-1.7 times the other's
    height (a lowercase letter beside an ascender). Returns every chain of two or more."""
    used = np.zeros(len(chars), bool)
    found = []
    for k in range(len(chars)):
        if used[k]:
            continue
        chain = [k]
        last = chars[k]
        for j in range(k + 1, len(chars)):
            if used[j]:
                continue
            c = chars[j]
            tall = max(last[3], c[3])
            gap = c[0] - (last[0] + last[2])
            if gap > 3 * tall:  # sorted by x: every later mark lies further right still
                break
            short = min(last[3], c[3])
            level_top = abs(c[1] - last[1]) <= LINE_ALIGN * tall
            two_heights = 1.25 * short <= tall <= 1.7 * short  # x-height beside an ascender
            if (-0.2 * tall <= gap <= 1.2 * tall and abs(c[1] + c[3] - last[1] - last[3]) <= LINE_ALIGN * tall
                    and (level_top or two_heights)):
                chain.append(j)
                used[j] = True
                last = c
        if len(chain) >= 2:
            found.append(chars[chain])
    return found


def _one_font(chars: np.ndarray) -> bool:
    """Whether ``chars`` are a line of one font: every one within ``LINE_ALIGN`` of the tallest's height or of
    the x-height (1.25-1.7 times lower), and the tall ones narrower than tall (digits, capitals, ascenders; the
    rims of a row of bubbles are as wide as tall)."""
    h = chars[:, 3].astype(float)
    top = np.max(h)
    tall = np.abs(h - top) <= LINE_ALIGN * top
    if np.median(chars[tall, 2] / h[tall]) > TALL_WIDTH:
        return False
    low = h[h < (1 - LINE_ALIGN) * top]
    if low.size == 0:
        return True
    x = float(np.median(low))
    if not 1.25 * x <= top <= 1.7 * x:
        return False
    return bool(np.all((np.abs(h - top) <= LINE_ALIGN * top) | (np.abs(h - x) <= LINE_ALIGN * x)))


def text_mask(gray: np.ndarray) -> np.ndarray | None:
    """Where lines of white burnt-in text lie in the whole frame ``gray`` (uint8 0/255, each line's box grown
    by 40 % of its height), or None where there are none (nearly every photograph). The whole frame, not a
    part: a line cut by a part's edge has characters cut shorter than the rest of its font's."""
    side = min(gray.shape)
    k = max(3, int(CELL * side)) | 1
    lift = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    bright = cv2.bitwise_and(cv2.inRange(gray, TEXT_LEVEL, 255), cv2.inRange(lift, TEXT_LIFT, 255))
    # a line holds LINE_CHARS characters, each white somewhere: without as many white pixels (half the
    # photographs, and the kiosk's own without glare) there is no need to label the marks (1.5 ms at 800 px)
    if cv2.countNonZero(cv2.bitwise_and(bright, cv2.inRange(gray, TEXT_PEAK, 255))) < LINE_CHARS:
        return None
    chains = _lines(_characters(bright, gray, side))
    lines = [c for c in chains if len(c) >= LINE_CHARS and _one_font(c)]
    if not lines:
        return None
    # The same software writes its other fields (a magnification, "x20") in the same font: once a line has
    # shown the frame carries text, shorter groups of characters as tall as the line's are text too.
    tall = float(np.median([c[:, 3].max() for c in lines]))  # the font's full height (digits, capitals)
    lines += [c for c in chains if len(c) < LINE_CHARS and 0.8 * tall <= c[:, 3].max() <= 1.25 * tall]
    mask = np.zeros(gray.shape, np.uint8)
    for chars in lines:
        x0, y0 = chars[:, 0].min(), chars[:, 1].min()
        x1, y1 = (chars[:, 0] + chars[:, 2]).max(), (chars[:, 1] + chars[:, 3]).max()
        pad = int(0.4 * chars[:, 3].max()) + 3
        mask[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad] = 255
    return mask
