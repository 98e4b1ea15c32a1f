"""A kiosk's colour, sharpness or brightness drifting, seen over its recent photographs rather than in one (the
centre's ``colour-drift``, ``focus-drift`` and ``exposure-drift`` alerts).

    .venv/bin/python -m bench.quality_eval --out bench/out/quality_eval.csv ...   # first: per-image values
    .venv/bin/python -m bench.quality_drift [--csv bench/out/quality_eval.csv] [--check colour|focus|exposure]
                                            [--images 20] [--limit L]

One photograph's skin colour cannot tell a moderate cast from a patient whose skin is a little yellower or
bluer than most (README, "The quality gate": per image, the colour check catches 2-75 % of moderate casts).
A cast that comes from the kiosk (a failing or replaced light, a changed white balance) stays on every
photograph after it, so the median colour distance over a kiosk's last ``--images`` dermoscopic photographs
(the value each photograph's colour check already reports, sent to the centre with the case) moves even
where single photographs stay within the limit, while different patients' skins average out. Likewise a
dermatoscope out of focus, or a smeared lens or contact plate, softens every photograph: the median of the focus
check's value (sharpness as a share of the kiosk's calibrated normal) falls below ``--limit`` (``--check focus``).
And a brighter light, or a changed exposure or gain, brightens every photograph, while one photograph a stop
brighter passes as a paler patient's: the median of the exposure check's value (the skin's brightness) rises by
over ``--limit`` grey levels above its median over the days before (``--check exposure``: a baseline of
``--baseline`` photographs drawn from the originals, the centre's 14 days of a kiosk taking 20 a week).

From ``bench.quality_eval``'s per-image values (the kiosk reference calibrated on the source's fit half, as
there), per source: the share of runs of ``--images`` photographs drawn from the originals whose median
is beyond ``--limit`` (over it for colour, under it for focus: false alarms), and the share of runs drawn from
each degradation's copies (every photograph under the same cast, or the same blur, as a kiosk's fault would be)
that are beyond it (detection). 2,000 runs each, drawn with replacement (fixed seed). The limits were chosen on
the fit halves' values (``bench.quality_eval --part fit``). The last line sums the run up.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

#: Per check: the degradation families whose copies stand for a kiosk's own fault, and the default limit (the
#: centre's ``colour_drift_median`` and ``focus_drift_median``).
FAMILIES = {"colour": ("cast_red", "cast_blue", "cast_green", "cast_yellow"), "focus": ("defocus", "motion"),
            "exposure": ("over", "under")}
LIMITS = {"colour": 1.75, "focus": 0.5, "exposure": 25.0}


def read_values(path: Path, check: str = "colour") -> dict[str, dict[str, list[float]]]:
    """``{source: {variant: [value, ...]}}`` of ``check`` from a ``bench.quality_eval`` CSV (variant ``original`` or
    ``<family>_<grade>`` of the check's families). A colour that could not be read (no skin left unsaturated)
    counts as infinitely far, as it does at the centre; a focus value missing (an unreadable file) is left out."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            variant = row["variant"]
            if variant != "original" and variant.rsplit("_", 1)[0] not in FAMILIES[check]:
                continue
            raw = row[check]
            if raw not in ("", "None"):
                out[row["source"]][variant].append(float(raw))
            elif check == "colour":
                out[row["source"]][variant].append(float("inf"))
    return out


def alarm_rate(values: list[float], images: int, limit: float, runs: int, rng: np.random.Generator,
               below: bool = False, baseline: tuple[list[float], int] | None = None) -> float:
    """Share of ``runs`` draws of ``images`` values (with replacement) whose median exceeds ``limit`` (or, with
    ``below``, falls under it); with a ``baseline`` (values, how many), the median's rise over the median of that
    many baseline values drawn alike."""
    v = np.asarray(values, float)
    medians = np.median(v[rng.integers(0, v.size, size=(runs, images))], axis=1)
    if baseline is not None:
        b = np.asarray(baseline[0], float)
        medians = medians - np.median(b[rng.integers(0, b.size, size=(runs, baseline[1]))], axis=1)
    return float(np.mean(medians < limit if below else medians > limit))


def main(argv: list[str] | None = None) -> int:
    """Print, per source, false alarms on originals and detection of each degradation at both grades."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=Path(__file__).resolve().parent / "out" / "quality_eval.csv")
    ap.add_argument("--check", choices=sorted(FAMILIES), default="colour")
    ap.add_argument("--images", type=int, default=20, help="photographs in the window (default 20)")
    ap.add_argument("--limit", type=float, default=None, help="the median that alerts (default: the centre's, "
                                                              "colour 1.75, focus 0.5, exposure a rise of 25)")
    ap.add_argument("--baseline", type=int, default=40, help="exposure: photographs in the days before (40: two "
                                                               "weeks of a kiosk taking 20 a week)")
    ap.add_argument("--runs", type=int, default=2000)
    args = ap.parse_args(argv)
    limit = LIMITS[args.check] if args.limit is None else args.limit
    below = args.check == "focus"
    data = read_values(args.csv, args.check)
    if not data:
        raise SystemExit(f"no {args.check} values in {args.csv}: run bench.quality_eval first")
    rng = np.random.default_rng(0)
    families = FAMILIES[args.check]
    rise = args.check == "exposure"
    what = {"colour": "median colour distance", "focus": "median sharpness (share of the normal)",
            "exposure": "rise of the median skin brightness"}[args.check]
    against = f", against the median of {args.baseline} before," if rise else ""
    print(f"{what} over {args.images} photographs{against} {'<' if below else '>'} {limit} ({args.csv.name})")
    print(f"  {'source':<15} {'n':>4} {'false alarms':>12}  "
          + "  ".join(f"{f.removeprefix('cast_'):>15}" for f in families) + "   (moderate / strong)")
    alarms, caught = [], {g: [] for g in ("moderate", "strong")}
    for source, variants in data.items():
        orig = variants.get("original", [])
        if not orig:
            continue
        base = (orig, args.baseline) if rise else None
        fa = alarm_rate(orig, args.images, limit, args.runs, rng, below, base)
        alarms.append(fa)
        cells = []
        for family in families:
            got = {g: variants.get(f"{family}_{g}") for g in ("moderate", "strong")}
            rates = {g: alarm_rate(v, args.images, limit, args.runs, rng, below, base) for g, v in got.items() if v}
            for g, r in rates.items():
                if family != "under":  # shown, not counted: the centre alerts on a brighter kiosk only
                    caught[g].append(r)
            cells.append(" / ".join(f"{100 * rates[g]:5.1f}%" if g in rates else "    -" for g in got))
        print(f"  {source:<15} {len(orig):>4} {100 * fa:11.1f}%  " + "  ".join(f"{c:>15}" for c in cells))
    if alarms and caught["moderate"]:
        print(f"drift_{args.check} false_alarms_max={100 * max(alarms):.1f}% moderate_caught_min="
              f"{100 * min(caught['moderate']):.1f}% strong_caught_min="
              f"{100 * min(caught['strong'] or [float('nan')]):.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
