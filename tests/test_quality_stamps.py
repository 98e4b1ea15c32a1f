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
    monkeypatch.setattr(quality, "text_mask", lambda gray: None)
    blurred = synth.degrade_blur(_large_lesion(0), 3.0)
    assert assess(synth.encode_jpeg(stamp(blurred)), "dermoscopic", QualitySettings()).checks["focus"].ok


@pytest.mark.parametrize("seed", [0, 1])
def test_a_sharp_photograph_with_a_stamp_keeps_its_verdict_and_sharpness(seed):
    img = _large_lesion(seed)
    plain = assess(synth.encode_jpeg(img), "dermoscopic", QualitySettings())
    stamped = assess(synth.encode_jpeg(stamp(img)), "dermoscopic", QualitySettings())
    assert plain.ok and stamped.ok
    assert stamped.checks["focus"].value == pytest.approx(plain.checks["focus"].value, rel=0.05)


@pytest.mark.parametrize("w,h", [(800, 600), (600, 450), (1600, 1200), (600, 800)])
def test_the_date_line_and_the_short_field_are_found_at_any_size(w, h):
    mask = text_mask(_gray(stamp(_large_lesion(3, w, h))))
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
    for k in range(20):  # a ruler: dark ticks and figures
        cv2.line(img, (100 + 15 * k, 560), (100 + 15 * k, 545 if k % 5 else 535), (20, 20, 20), 1)
    cv2.putText(img, "0 1 2 3 4 mm", (100, 590), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1, cv2.LINE_AA)
    # four white characters alone are not yet a line: what lines up by chance reaches four more often
    cv2.putText(img, "2026", (600, 580), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    assert text_mask(_gray(img)) is None
    assert text_mask(_gray(_large_lesion(5))) is None


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
    assert not found(blurred)
