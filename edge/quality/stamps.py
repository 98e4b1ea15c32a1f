"""Text burnt into a photograph: a date, an identifier, a magnification written over the picture.

Capture software in some clinics writes such lines into the pixels. Their strokes are sharp however
blurred the photograph under them is, so the focus ratio (``measures.focus_ratio``) would count them as
the skin's detail and pass a defocused photograph (``bench.quality_robust``'s "date stamp"). The focus
check leaves the lines found here out of its region.

A line of text is told from what else is thin and bright in dermoscopy (the rims of air bubbles in the
contact fluid, reflections along hairs, a ruler's ticks, which are dark) by its shape: at least
``LINE_CHARS`` character-sized marks side by side on one baseline, of one font's heights (digits and
capitals, or lowercase letters' x-height beside their ascenders), the tall ones narrower than tall, with
gaps under a character's height. A character is found two ways, and lines are chained from each apart: white
strokes (bright in grey, and white at their brightest: ``_white_marks``), and strokes of any other ink (black,
yellow, orange, red, green, ...) that differ from the picture round them in some colour channel
(``_ink_marks``): a yellow stroke is no brighter than pale skin in grey, and a black one is darker. Structures
that reach the frame's edge (a ruler along it, the dermatoscope's rim) are not written text; a ruler's printed
figures elsewhere are found as text and left out too, which costs the focus check nothing (the skin beside
them is measured).
"""

from __future__ import annotations

import threading
from typing import NamedTuple

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
#: Text of any colour: a stroke differs from the picture round it (the median over a window twice ``CELL``
#: wide, which the strokes cannot fill) by at least ``INK_LIFT`` in some colour channel, and by at least half
#: the most that any pixel within ``CELL`` differs (a stroke's core, not its anti-aliased fringe nor JPEG's
#: smear between two characters, which would join them) ...
INK_LIFT = 30
#: ... and every character by ``INK_PEAK`` at its strongest (a date in a 1-pixel font over 40 PH2 and
#: HAM10000 photographs, JPEG-compressed: 5th percentile of its characters' 61-129 by colour, orange and black
#: lowest).
INK_PEAK = 60
#: At least this many characters in a row make a line. With 3, bubble rims and hair reflections lined
#: up by chance in 25 of 3,936 real photographs (PH2, ISIC 2017, HAM10000), and marks of other inks (hairs,
#: pigment, a ruler's figures, a scale's "MM") in 13, four in 2 (the round ends of a ruler's ticks, parted
#: from the ticks that reach the edge; hairs); with 5, none did, nor in 21,229 more (HAM10000 and
#: ``isic-more``). Once a frame has such a line, groups of two or more marks of its height
#: are text too (``text_mask``).
LINE_CHARS = 5


class Marks(NamedTuple):
    """What one way of finding characters found (``_characters``): ``chars``, the marks shaped like characters,
    and ``marks``, every mark no taller than one; rows (x, y, width, height) sorted by x."""

    chars: np.ndarray
    marks: np.ndarray


_NONE = Marks(np.zeros((0, 4), np.int32), np.zeros((0, 4), np.int32))


def _characters(marks: np.ndarray, strong: np.ndarray, side: int) -> Marks:
    """The connected marks of ``marks`` that hold a pixel of ``strong`` and are no taller than a character:
    those sized and shaped like one, and all of them (a dash, a colon, an "I", two characters run together,
    which a found line takes in: ``_along``)."""
    peaks = cv2.findNonZero(cv2.bitwise_and(marks, strong))  # (x, y) points
    # a line holds LINE_CHARS characters, each reaching the peak somewhere: without as many such pixels (the
    # kiosk's own frames without glare or text) there is no need to label the marks
    if peaks is None or len(peaks) < LINE_CHARS:
        return _NONE
    n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(marks, 8, cv2.CV_32S, cv2.CCL_GRANA)
    x, y, w, h, area = stats.T
    shaped = (h >= max(5.0, CHAR_LEAST * side)) & (h <= CHAR_MOST * side) & (w <= 1.6 * h) \
        & (area <= 0.75 * w * h)  # strokes, not a filled blob
    shaped[0] = False  # the background
    peaked = np.zeros(n, bool)  # the marks holding a pixel of ``strong``
    peaks = peaks.reshape(-1, 2)
    peaked[labels[peaks[:, 1], peaks[:, 0]]] = True
    peaked[0] = False
    chars, small = stats[shaped & peaked, :4], stats[peaked & (h <= CHAR_MOST * side), :4]
    return Marks(chars[np.argsort(chars[:, 0], kind="stable")], small[np.argsort(small[:, 0], kind="stable")])


def _white_marks(gray: np.ndarray, side: int) -> Marks:
    """Characters written in white (``_characters`` rows): bright in ``gray`` (``TEXT_LEVEL``), above the
    picture round them (``TEXT_LIFT``) and white at their brightest (``TEXT_PEAK``)."""
    k = max(3, int(CELL * side)) | 1
    lift = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    bright = cv2.bitwise_and(cv2.inRange(gray, TEXT_LEVEL, 255), cv2.inRange(lift, TEXT_LIFT, 255))
    return _characters(bright, cv2.inRange(gray, TEXT_PEAK, 255), side)


def _across_channels(op, bgr: np.ndarray) -> np.ndarray:
    """Each pixel's largest (``op`` ``cv2.dilate``) or least (``cv2.erode``) of its three channels: ``op`` 1x3
    over the rows of channel values, read at each pixel's middle channel (a fifth of the cost of splitting the
    channels)."""
    h, w = bgr.shape[:2]
    return np.ascontiguousarray(op(bgr.reshape(h, w * 3), np.ones((1, 3), np.uint8))[:, 1::3])


def _ink_marks(bgr: np.ndarray, side: int) -> Marks:
    """Characters written in any colour (``_characters`` rows): strokes that differ from the picture round
    them (``INK_LIFT``, ``INK_PEAK``), at half their neighbourhood's strongest or more, and not part of a dark
    or coloured structure that reaches the frame's edge."""
    h, w = bgr.shape[:2]
    k = max(3, int(CELL * side)) | 1
    # the picture round each pixel: a median (which the strokes cannot pull) over about 2k + 1, taken 5x5 on
    # a copy reduced that many times over 5 (a median 7 or wider costs ten times as much)
    f = max(1, round((2 * k + 1) / 5))
    small = cv2.resize(bgr, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_LINEAR)
    round_it = cv2.resize(cv2.medianBlur(small, 5), (w, h), interpolation=cv2.INTER_LINEAR)
    differ = _across_channels(cv2.dilate, cv2.absdiff(bgr, round_it))  # the largest channel's difference
    # white is ``_white_marks``' to find: near-white pixels (each channel TEXT_LEVEL or more) are not taken
    # here. Their marks are the rims of glare spots as wide as the median's window, which it splits in two,
    # a row of "()" that would pass for characters.
    least = _across_channels(cv2.erode, bgr)
    ink = cv2.bitwise_and(cv2.inRange(differ, INK_LIFT, 255), cv2.inRange(least, 0, TEXT_LEVEL - 1))
    near = cv2.dilate(differ, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    core = cv2.compare(cv2.subtract(near, differ), differ, cv2.CMP_LE)  # differ >= near / 2
    marks = cv2.bitwise_and(ink, core)
    # what reaches the frame's edge is no written text (a ruler along it): marks joined to it are left out,
    # after the half-maximum has parted the characters, so that a hair from the edge across one character
    # takes that one only (taken before it, at INK_LIFT, one hair took a whole line)
    edge = cv2.copyMakeBorder(marks, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=255)
    cv2.floodFill(edge, None, (0, 0), 0, flags=8)
    marks = cv2.bitwise_and(marks, edge[1:-1, 1:-1])
    return _characters(marks, cv2.inRange(differ, INK_PEAK, 255), side)


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


def _a_line(chain: np.ndarray) -> np.ndarray | None:
    """``chain`` as a line of text (``LINE_CHARS`` or more characters of one font, ``_one_font``), or the
    longest part of it that is once up to two marks are taken off either end (what else lines up beside a
    line, such as the dermatoscope's dark rim where a date starts, joins it at an end); else None."""
    n = len(chain)
    for size in range(n, max(LINE_CHARS, n - 4) - 1, -1):
        for start in range(max(0, n - size - 2), min(2, n - size) + 1):
            part = chain[start:start + size]
            if _one_font(part):
                return part
    return None


def text_mask(bgr: np.ndarray, gray: np.ndarray | None = None) -> np.ndarray | None:
    """Where lines of burnt-in text lie in the whole frame ``bgr`` (its grey ``gray`` where the caller has it):
    uint8 0/255, each line's box grown by 40 % of its height; None where there are none (nearly every
    photograph). The whole frame, not a part: a line cut by a part's edge has characters cut shorter than the
    rest of its font's. White characters and those of other inks are chained into lines apart."""
    if gray is None:
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    side = min(gray.shape)
    found = [(f, _lines(f.chars)) for f in (_white_marks(gray, side), _ink_marks(bgr, side))]
    lines = [(line, f.marks) for f, chains in found for c in chains if (line := _a_line(c)) is not None]
    if not lines:
        return None
    # The same software writes its other fields (a magnification, "x20") in the same font: once a line has
    # shown the frame carries text, shorter groups of characters as tall as the line's are text too, and so
    # are groups of any marks of that height (in a small bold field a "0" can fill its box).
    tall = float(np.median([c[:, 3].max() for c, _ in lines]))  # the font's full height (digits, capitals)
    for f, chains in found:
        high = f.marks[(f.marks[:, 3] >= 0.8 * tall) & (f.marks[:, 3] <= 1.25 * tall)]
        lines += [(c, f.marks) for c in chains + _lines(high)
                  if len(c) < LINE_CHARS and 0.8 * tall <= c[:, 3].max() <= 1.25 * tall]
    mask = np.zeros(gray.shape, np.uint8)
    for chars, marks in lines:
        x0, y0, x1, y1 = _along(chars, marks)
        pad = int(0.4 * chars[:, 3].max()) + 3
        mask[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad] = 255
    return mask


def _along(chars: np.ndarray, marks: np.ndarray) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1) of a line of ``chars``, widened over the ``marks`` beside it on its band (no
    wider than four of its characters' height, half their height or the line's within its rows, gaps under
    ``1.2`` of its height): what the character rules left out of it, a dash, a colon, an "I", two characters
    run together, a character a hair crosses."""
    x0, y0 = int(chars[:, 0].min()), int(chars[:, 1].min())
    x1, y1 = int((chars[:, 0] + chars[:, 2]).max()), int((chars[:, 1] + chars[:, 3]).max())
    tall = float(chars[:, 3].max())
    mx0, my0, mw, mh = marks.T
    band = (mw <= 4 * tall) & (np.minimum(my0 + mh, y1) - np.maximum(my0, y0) >= 0.5 * np.minimum(mh, tall))
    while True:
        beside = band & (mx0 + mw >= x0 - 1.2 * tall) & (mx0 <= x1 + 1.2 * tall)
        if not beside.any():
            return x0, y0, x1, y1
        wider = min(x0, int(mx0[beside].min())), max(x1, int((mx0 + mw)[beside].max()))
        if wider == (x0, x1):
            return x0, y0, x1, y1
        x0, x1 = wider


class TextSearch:
    """``text_mask`` of one frame, run on a thread of its own from the moment the frame is decoded, beside the
    lesion's segmentation (OpenCV leaves Python's lock while it works): ``result()`` waits for it and gives its
    mask, or raises what it raised. About a tenth of the gate's time on a 12 MP frame (``bench.quality_speed``)."""

    def __init__(self, bgr: np.ndarray, gray: np.ndarray) -> None:
        self._mask: np.ndarray | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._search, args=(bgr, gray), name="quality-text", daemon=True)
        self._thread.start()

    def _search(self, bgr: np.ndarray, gray: np.ndarray) -> None:
        try:
            self._mask = text_mask(bgr, gray)
        except BaseException as exc:  # handed to whoever asks for the result
            self._error = exc

    def result(self) -> np.ndarray | None:
        """The frame's text mask (``text_mask``), once the search has finished."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._mask
