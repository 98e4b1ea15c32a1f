"""A kiosk's colour drifting, seen over its recent photographs rather than in one (the centre's ``colour-drift`` alert).

    .venv/bin/python -m bench.quality_eval --out bench/out/quality_eval.csv ...   # first: per-image values
    .venv/bin/python -m bench.quality_drift [--csv bench/out/quality_eval.csv] [--images 20] [--limit 2.0]

One photograph's skin colour cannot tell a moderate cast from a patient whose skin is a little yellower or
bluer than most (README, "The quality gate": per image, the colour check catches 2-75 % of moderate casts).
A cast that comes from the kiosk (a failing or replaced light, a changed white balance) stays on every
photograph after it, so the median colour distance over a kiosk's last ``--images`` dermoscopic photographs
(the value each photograph's colour check already reports, sent to the centre with the case) moves even
where single photographs stay within the limit, while different patients' skins average out.

From ``bench.quality_eval``'s per-image values (the kiosk reference calibrated on the source's fit half, as
there), per source: the share of runs of ``--images`` photographs drawn from the originals whose median
distance exceeds ``--limit`` (false alarms), and the share of runs drawn from each cast's copies (every
photograph under the same cast, as a kiosk's fault would be) that exceed it (detection). 2,000 runs each,
drawn with replacement (fixed seed). The limit was chosen on the fit halves' values (``--part fit``).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

CASTS = ("cast_red", "cast_blue", "cast_green", "cast_yellow")


def read_colour(path: Path) -> dict[str, dict[str, list[float]]]:
    """``{source: {variant: [colour distance, ...]}}`` from a ``bench.quality_eval`` CSV (variant
    ``original`` or ``cast_<direction>_<grade>``); a photograph whose colour could not be read (no skin left
    unsaturated) counts as infinitely far, as it does at the centre."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["variant"] == "original" or row["variant"].startswith("cast_"):
                # no value: no skin left unsaturated to read (a strong cast burns out a channel), as far as can be
                out[row["source"]][row["variant"]].append(float(row["colour"]) if row["colour"] not in ("", "None")
                                                          else float("inf"))
    return out


def alarm_rate(values: list[float], images: int, limit: float, runs: int, rng: np.random.Generator) -> float:
    """Share of ``runs`` draws of ``images`` values (with replacement) whose median exceeds ``limit``."""
    v = np.asarray(values, float)
    draws = v[rng.integers(0, v.size, size=(runs, images))]
    return float(np.mean(np.median(draws, axis=1) > limit))


def main(argv: list[str] | None = None) -> int:
    """Print, per source, false alarms on originals and detection of each cast at both grades."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=Path(__file__).resolve().parent / "out" / "quality_eval.csv")
    ap.add_argument("--images", type=int, default=20, help="photographs in the window (default 20)")
    ap.add_argument("--limit", type=float, default=1.75, help="median colour distance that alerts (default 1.75, "
                                                              "the centre's colour_drift_median)")
    ap.add_argument("--runs", type=int, default=2000)
    args = ap.parse_args(argv)
    data = read_colour(args.csv)
    if not data:
        raise SystemExit(f"no colour values in {args.csv}: run bench.quality_eval first")
    rng = np.random.default_rng(0)
    print(f"median colour distance over {args.images} photographs > {args.limit} ({args.csv.name})")
    print(f"  {'source':<15} {'n':>4} {'false alarms':>12}  " + "  ".join(f"{c[5:]:>15}" for c in CASTS)
          + "   (moderate / strong)")
    for source, variants in data.items():
        orig = variants.get("original", [])
        if not orig:
            continue
        fa = alarm_rate(orig, args.images, args.limit, args.runs, rng)
        cells = []
        for cast in CASTS:
            got = [variants.get(f"{cast}_{g}") for g in ("moderate", "strong")]
            cells.append(" / ".join(f"{100 * alarm_rate(v, args.images, args.limit, args.runs, rng):5.1f}%"
                                    if v else "    -" for v in got))
        print(f"  {source:<15} {len(orig):>4} {100 * fa:11.1f}%  " + "  ".join(f"{c:>15}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
