"""Which burnt-in text does the focus check find (``edge.quality.stamps``)? Other fonts, sizes, weights and words.

    nice -n 5 .venv/bin/python -m bench.quality_stamps [--n 20]

``bench.quality_robust`` writes one stamp in one font. Capture software writes others: here white text in five
Hershey fonts, three sizes (0.5, 0.8, 1.2 of the robustness bench's scale), three stroke weights (1-3 px at 600 px),
along the bottom or the top, four texts: a date and time, an identifier (digits and capitals, as stamps mostly
are), capitals and digits with lowercase words, and lowercase words alone. Each is written over ``--n`` strongly
defocused originals of PH2 and HAM10000-masks (every k-th), and the share in which ``text_mask`` finds a line is
printed per font, size, weight, place and text. Then the digit lines of normal size and weight (0.8-1.2, 1-2 px)
again in each of ``bench.quality_robust.INKS`` (yellow, orange, black, red, ...). The last line: found for white
digit lines at normal weight and size, for all white digit lines, for the white texts with lowercase words, and
for the digit lines of normal weight and size in the other inks.

Nothing is written: the stamped copies live in memory only (``../shared/data``'s rules).
"""

from __future__ import annotations

import argparse
import collections
import glob
import itertools
import time
from pathlib import Path

import cv2
import numpy as np

from bench.quality_robust import INKS, jpeg
from bench.quality_sources import DEFAULT_DATA
from edge.camera import synth
from edge.quality import QualitySettings
from edge.quality.analysis import decode
from edge.quality.stamps import text_mask

FONTS = {"simplex": cv2.FONT_HERSHEY_SIMPLEX, "plain": cv2.FONT_HERSHEY_PLAIN, "duplex": cv2.FONT_HERSHEY_DUPLEX,
         "complex": cv2.FONT_HERSHEY_COMPLEX, "triplex": cv2.FONT_HERSHEY_TRIPLEX}
SCALES = (0.5, 0.8, 1.2)
WEIGHTS = (1, 2, 3)
TEXTS = {"date": "2026-12-05 14:32", "id": "ID 4857773", "mixed": "Patient 123 R arm", "lower": "left shoulder"}
PLACES = ("bottom", "top")
DIGITS = ("date", "id")
WHITE = (255, 255, 255)


def written(img: np.ndarray, font: str, scale: float, weight: int, text: str, place: str,
            ink: tuple[int, int, int] = WHITE) -> np.ndarray:
    """``img`` with ``text`` in ``ink`` (BGR, white unless given), as capture software writes it (sizes relative
    to a 600-px-high frame; Hershey's plain font is drawn 1.6 times larger, as tall as the others)."""
    out = img.copy()
    h = out.shape[0]
    s = h / 600
    size = scale * s * (1.6 if font == "plain" else 1.0)
    thick = max(1, int(weight * s))
    (_, th), _ = cv2.getTextSize(text, FONTS[font], size, thick)
    y = h - int(12 * s) if place == "bottom" else int(12 * s) + th
    cv2.putText(out, text, (int(10 * s), y), FONTS[font], size, ink, thick, cv2.LINE_AA)
    return out


def found(img: np.ndarray, settings: QualitySettings = QualitySettings()) -> bool:
    """Whether the gate finds a line of text in ``img`` (JPEG-encoded and decoded at ``settings``' working
    sizes, as the gate reads a file)."""
    focus = decode(jpeg()(img), settings.work_size, settings.focus_size, settings.analysis_size).focus
    return text_mask(focus) is not None


def main(argv: list[str] | None = None) -> int:
    """Print the share of stamped copies whose text is found, per form, and a summary line; 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--n", type=int, default=20, help="originals (PH2 and HAM10000-masks, every k-th, half each)")
    args = ap.parse_args(argv)
    ph2 = sorted(glob.glob(str(args.data / "ph2" / "images" / "*.jpg")))
    ham = sorted(glob.glob(str(args.data / "ham10000-masks" / "*.jpg")))
    if not ph2 or not ham:
        raise SystemExit(f"no PH2 or HAM10000-masks images under {args.data}")
    half = max(1, args.n // 2)
    files = ph2[::max(1, len(ph2) // half)][:half] + ham[::max(1, len(ham) // half)][:half]
    cv2.setNumThreads(1)
    t0 = time.time()
    blurred = [synth.degrade_blur(cv2.imread(f, cv2.IMREAD_COLOR), 3.0) for f in files]
    share = {}
    for form in itertools.product(FONTS, SCALES, WEIGHTS, TEXTS, PLACES):
        font, scale, weight, key, place = form
        share[form] = float(np.mean([found(written(b, font, scale, weight, TEXTS[key], place)) for b in blurred]))
    print(f"{len(files)} strongly defocused originals (PH2, HAM10000-masks) x {len(share)} forms of white text; "
          "share in which a line is found")
    for i, dim in enumerate(("font", "size", "weight", "text", "place")):
        by = collections.defaultdict(list)
        for form, v in share.items():
            by[form[i]].append(v)
        print(f"  {dim:<7}" + "  ".join(f"{k}: {100 * np.mean(v):.1f}%" for k, v in by.items()))
    normal = [v for f, v in share.items() if f[3] in DIGITS and f[1] >= 0.8 and f[2] <= 2]
    digits = [v for f, v in share.items() if f[3] in DIGITS]
    words = [v for f, v in share.items() if f[3] not in DIGITS]
    by_ink = {}
    for ink, bgr in INKS.items():
        by_ink[ink] = float(np.mean([
            found(written(b, font, scale, weight, TEXTS[key], place, bgr)) for b in blurred
            for font, scale, weight, key, place in itertools.product(FONTS, SCALES[1:], WEIGHTS[:2], DIGITS, PLACES)]))
    print("digit lines of normal size and weight in other inks: "
          + "  ".join(f"{k}: {100 * v:.1f}%" for k, v in by_ink.items()))
    print(f"({time.time() - t0:.0f} s)")
    print(f"stamp_lines_found digits_normal={100 * np.mean(normal):.1f}% digits_all={100 * np.mean(digits):.1f}% "
          f"with_lowercase={100 * np.mean(words):.1f}% other_inks_normal={100 * np.mean(list(by_ink.values())):.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
