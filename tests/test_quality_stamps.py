"""Text burnt into a photograph (edge.quality.stamps): found, and left out of the focus check's region.

The stamp is the robustness bench's (``bench.quality_robust.stamp``: a date and identifier along the
bottom, "x20" at the top right); the photographs are generated, with a lesion large enough that the
focus check's region round it reaches the frame's edges, where the text is.
"""

import cv2
import numpy as np
import pytest

import edge.quality as quality
from bench.quality_robust import stamp
from edge.camera import synth
from edge.quality import QualitySettings, assess
from edge.quality import stamps
from edge.quality.stamps import text_mask


def _large_lesion(seed: int, w: int = 800, h: int = 600) -> np.ndarray:
    return synth.lesion_image(w, h, seed, size=0.4, vignette=False)


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_defocused_photograph_with_a_date_stamp_is_refused_for_focus(seed):
    blurred = synth.degrade_blur(_large_lesion(seed), 3.0)
    plain = assess(synth.encode_jpeg(blurred), "dermoscopic", QualitySettings()).checks["focus"]
    stamped = assess(synth.encode_jpeg(stamp(blurred)), "dermoscopic", QualitySettings()).checks["focus"]
    assert not plain.ok and not stamped.ok
    assert stamped.value == pytest.approx(plain.value, abs=0.05)  # the text's sharp strokes are not counted


def test_without_the_text_left_out_the_stamp_would_pass_the_blur(monkeypatch):
    """What the rule is for: the strokes alone lift a strongly blurred frame's sharpness over the limit."""
    monkeypatch.setattr(stamps, "text_mask", lambda bgr, gray=None: None)
    blurred = synth.degrade_blur(_large_lesion(0), 3.0)
    assert assess(synth.encode_jpeg(stamp(blurred)), "dermoscopic", QualitySettings()).checks["focus"].ok


@pytest.mark.parametrize("seed", [0, 1])
def test_a_sharp_photograph_with_a_stamp_keeps_its_verdict_and_sharpness(seed):
    img = _large_lesion(seed)
    plain = assess(synth.encode_jpeg(img), "dermoscopic", QualitySettings())
    stamped = assess(synth.encode_jpeg(stamp(img)), "dermoscopic", QualitySettings())
    assert plain.ok and stamped.ok
    assert stamped.checks["focus"].value == pytest.approx(plain.checks["focus"].value, rel=0.05)


def test_the_search_beside_the_segmentation_finds_what_a_direct_search_finds(monkeypatch):
    """``scene`` starts the text search on a thread of its own as soon as the frame is decoded; what it hands the
    focus check is the direct search's mask, and an error in it reaches the caller."""
    img = stamp(_large_lesion(3))
    got = stamps.TextSearch(img, _gray(img)).result()
    assert got is not None and np.array_equal(got, text_mask(img, _gray(img)))
    assert stamps.TextSearch(_large_lesion(5), _gray(_large_lesion(5))).result() is None
    sc = quality.scene(synth.encode_jpeg(img), QualitySettings(), QualitySettings().dermoscopic)
    assert sc.text.result() is not None and sc.focus_gray.shape == sc.work.focus.shape[:2]
    # without the search (a calibration's still), the focus check searches itself: the same sharpness
    unsearched = quality.scene(synth.encode_jpeg(img), QualitySettings(), QualitySettings().dermoscopic, text=False)
    assert unsearched.text is None and quality.focus_value(unsearched) == quality.focus_value(sc)

    def broken(bgr, gray=None):
        raise ValueError("the search failed")
    monkeypatch.setattr(stamps, "text_mask", broken)
    with pytest.raises(ValueError, match="the search failed"):
        stamps.TextSearch(img, _gray(img)).result()


@pytest.mark.parametrize("w,h", [(800, 600), (600, 450), (1600, 1200), (600, 800)])
def test_the_date_line_and_the_short_field_are_found_at_any_size(w, h):
    mask = text_mask(stamp(_large_lesion(3, w, h)))
    assert mask is not None
    date_line = mask[int(0.93 * h):, :int(0.3 * w)]
    x20 = mask[:int(0.07 * h), int(0.9 * w):]
    assert date_line.mean() > 0.3 * 255 and x20.mean() > 0.2 * 255
    assert (mask > 0).mean() < 0.08  # the lines' boxes, not the picture


def test_nothing_is_found_where_there_is_no_text():
    """What else is thin and bright, or lined up, in dermoscopy: air bubbles' rims, hairs' reflections, a
    ring light's reflections, a row of glare spots, a ruler's dark ticks and figures, four white characters. Each
    kind in its own part of the frame, so that none hides another."""
    img = _large_lesion(4)
    rng = np.random.default_rng(4)
    for _ in range(12):  # bubbles: bright rims of many sizes, along the top
        c = (int(rng.integers(40, 760)), int(rng.integers(30, 140)))
        cv2.circle(img, c, int(rng.integers(4, 25)), (250, 250, 250), 1, cv2.LINE_AA)
    x = 420
    for r in (6, 9, 5, 10, 7, 9, 6, 10):  # a row of bubbles side by side, of unlike sizes
        cv2.circle(img, (x + r, 200), r, (250, 250, 250), 2, cv2.LINE_AA)
        x += 2 * r + 8
    for k in range(4):  # four like bubbles in a row: fewer than a line's characters
        cv2.circle(img, (560 + 22 * k, 480), 8, (250, 250, 250), 2, cv2.LINE_AA)
    for k in range(6):  # reflections along hairs, at the left
        x = int(rng.integers(0, 60))
        cv2.line(img, (x, 170 + 50 * k), (x + 90, 200 + 50 * k), (255, 255, 255), 1, cv2.LINE_AA)
    for a in np.linspace(0, 2 * np.pi, 16, endpoint=False):  # a ring light's LEDs reflected
        cv2.circle(img, (int(330 + 90 * np.cos(a)), int(330 + 90 * np.sin(a))), 4, (255, 255, 255), -1, cv2.LINE_AA)
    for k in range(7):  # glare spots in a row
        cv2.circle(img, (560 + 18 * k, 300), 5, (255, 255, 255), -1, cv2.LINE_AA)
    for k in range(20):  # a ruler's dark ticks (its printed figures are text: test_a_ruler_...)
        cv2.line(img, (100 + 15 * k, 560), (100 + 15 * k, 545 if k % 5 else 535), (20, 20, 20), 1)
    for k in range(8):  # a row of dark dots, as pigment globules can lie
        cv2.circle(img, (140 + 16 * k, 420), 5, (40, 50, 90), -1, cv2.LINE_AA)
    # four white characters alone are not yet a line: what lines up by chance reaches four more often
    cv2.putText(img, "2026", (600, 580), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    assert text_mask(img) is None
    assert text_mask(_large_lesion(5)) is None


@pytest.mark.parametrize("ink,passed_before", [("yellow", True), ("black", True), ("red", True), ("blue", True),
                                               ("orange", False), ("green", False)])
def test_a_date_stamp_in_another_ink_no_longer_passes_a_defocused_photograph(ink, passed_before, monkeypatch):
    """Capture software writes in other colours than white (a camera's orange date, black, yellow): such strokes
    are no brighter than pale skin in grey, and were not looked for. Found now, and left out of the focus check:
    the stamped frame measures as the plain one. Without the search for other inks (``_ink_marks`` finding
    nothing) the stamp lifted this frame's sharpness over the limit in four of the inks (orange and green differ
    less from its pink skin)."""
    from bench.quality_robust import INKS

    blurred = synth.degrade_blur(_large_lesion(7), 3.0)
    stamped = synth.encode_jpeg(stamp(blurred, INKS[ink]))
    plain = assess(synth.encode_jpeg(blurred), "dermoscopic", QualitySettings()).checks["focus"]
    focus = assess(stamped, "dermoscopic", QualitySettings()).checks["focus"]
    assert not focus.ok and focus.value == pytest.approx(plain.value, abs=0.01)
    monkeypatch.setattr(stamps, "_ink_marks", lambda bgr, side: stamps._NONE)
    before = assess(stamped, "dermoscopic", QualitySettings()).checks["focus"]
    assert before.ok == passed_before and before.value > plain.value + 0.01


def test_a_line_crossed_by_a_hair_from_the_edge_is_still_found():
    """A hair that reaches the frame's edge across one character of a black date takes that character only (left
    out as what reaches the edge), not the line; the line's box takes the character back in (``_along``)."""
    img = synth.degrade_blur(_large_lesion(10), 3.0)
    cv2.putText(img, "2026-12-05 14:32  ID 4857773", (12, 570), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2,
                cv2.LINE_AA)
    cv2.line(img, (250, 599), (262, 540), (40, 30, 30), 2, cv2.LINE_AA)  # a hair from the bottom edge
    mask = text_mask(img)
    assert mask is not None and mask[556:572, 12:330].mean() > 0.97 * 255


def test_a_mark_joining_a_line_at_its_end_is_left_off():
    """What lines up beside a line joins it at an end: in a real frame the dermatoscope's dark rim where a black
    date starts, over 1.7 times the digits' height, made the whole chain fail the one-font rule. Up to two marks are
    taken off either end; a chain that is no line however it is cut stays none."""
    digits = np.array([[20 + 12 * i, 100, 9, 14] for i in range(8)])
    rim = np.array([[5, 90, 6, 24]])
    line = stamps._a_line(np.vstack([rim, digits]))
    assert line is not None and (line == digits).all()
    assert stamps._a_line(np.vstack([rim, digits, rim + [120, 0, 0, 0]])) is not None
    bubbles = np.array([[20 + 30 * i, 100, 24, 24] for i in range(8)])  # as wide as tall: no font's
    assert stamps._a_line(bubbles) is None


def test_a_ruler_along_the_frame_edge_is_not_text_and_its_printed_figures_are():
    """A ruler laid along the frame's edge: its alternating black and white blocks, reaching the edge, line up
    like characters of one height and are not text. Its printed figures, away from the edge, are a line of dark
    characters: left out of the focus check as text, which costs it nothing (the skin beside them is measured)."""
    img = _large_lesion(8)
    for k in range(40):  # blocks 10 px wide, 14 high, every other one black, cut by the bottom edge
        if k % 2:
            cv2.rectangle(img, (20 * k, 586), (20 * k + 9, 599), (10, 10, 10), -1)
        else:
            cv2.rectangle(img, (20 * k, 586), (20 * k + 9, 599), (245, 245, 245), -1)
    assert text_mask(img) is None
    cv2.putText(img, "0 1 2 3 4 mm", (100, 570), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1, cv2.LINE_AA)
    mask = text_mask(img)
    assert mask is not None and mask[555:575, 100:200].mean() > 0.8 * 255 and mask[586:, 300:].max() == 0
    sharp = assess(synth.encode_jpeg(img), "dermoscopic", QualitySettings())
    assert sharp.checks["focus"].ok


def test_white_is_left_to_the_white_search_and_other_inks_to_theirs():
    """Near-white marks are not taken as another ink's characters: in a real glare copy (HAM10000, the bench's
    strong glare) the rims of spots as wide as the ink search's median window, split in two by it, made a row of
    "()" that passed for a line. White text is still found, by the white search; yellow only by the ink search."""
    img = _large_lesion(9)
    cv2.putText(img, "2026-12-05 14:32", (20, 580), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(img, "2026-12-05 14:32", (20, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 255), 2, cv2.LINE_AA)
    side = min(img.shape[:2])
    white = stamps._white_marks(_gray(img), side).chars
    ink = stamps._ink_marks(img, side).chars
    assert len(white[white[:, 1] > 500]) >= 10 and len(white[white[:, 1] < 100]) == 0
    assert len(ink[ink[:, 1] > 500]) == 0 and len(ink[ink[:, 1] < 100]) >= 10
    mask = text_mask(img)
    assert mask[565:585, 20:200].all() and mask[15:35, 20:200].all()


def test_the_font_bench_writes_what_it_says_and_digit_lines_are_found_in_other_fonts():
    """``bench.quality_stamps``' own pieces: its stamps land where it says, and what it measures holds on a
    generated frame: a line of digits is found in every font at normal weight, and lowercase words (an x-height
    beside ascenders) in the plainest font."""
    from bench.quality_stamps import FONTS, found, written

    blurred = synth.degrade_blur(_large_lesion(6), 3.0)
    for font in FONTS:
        for place in ("bottom", "top"):
            img = written(blurred, font, 0.8, 1, "2026-12-05 14:32", place)
            changed = np.any(img != blurred, axis=2)
            rows = np.flatnonzero(changed.any(axis=1))
            assert (rows.min() > 540) if place == "bottom" else (rows.max() < 60)
            assert found(img), (font, place)
    assert found(written(blurred, "simplex", 0.8, 1, "left shoulder", "bottom"))
    assert found(written(blurred, "duplex", 0.8, 2, "ID 4857773", "top", (0, 140, 255)))  # orange
    assert not found(blurred)
