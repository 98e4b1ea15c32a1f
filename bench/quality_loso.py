"""Leave one source out for the quality gate's thresholds: what a source none of them was fitted on would meet.

    nice -n 10 .venv/bin/python -m bench.quality_eval --part fit --n 100 --skip-masks --out bench/out/fit.csv
    nice -n 10 .venv/bin/python -m bench.quality_eval --n 60 --skip-masks --out bench/out/score.csv
    .venv/bin/python -m bench.quality_loso --fit bench/out/fit.csv --score bench/out/score.csv [--keep 0.99]

The thresholds (``wire.kioskconfig.quality.ViewRules``) were set by hand at the extremes of the readable
originals of every source's fit half. To see how far that generalises, a fixed rule stands in for the hand:
each check's limit is the value that passes ``--keep`` of the originals, every source weighing the same.
Per source, the rule is applied to the *other* sources' fit halves (leave one out) and to all of them; the
left-out source's score half is then judged at each: the false rejects of its originals and the detection
of the degradations that check is in charge of (its value alone), beside the shipped limit. A limit that
moves far when one source is left out, or a left-out source refused far more than the others, is where an
unseen clinic would find the gate badly fitted. Colour is each source's distance from its own calibration.
The last line: ``loso_thresholds worst_false_rejects=X% (check, source)``.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from wire.kioskconfig.quality import ViewRules

#: (check, side, the ViewRules field, the degradations the check is in charge of).
LIMITS = [
    ("fov", "min", "fov_min", ("shifted", "tilted")),
    ("focus", "min", "focus_min", ("defocus", "motion")),
    ("shake", "min", "shake_min", ("motion",)),
    ("exposure", "min", "exposure_min", ("under",)),
    ("exposure", "max", "exposure_max", ("over",)),
    ("clipping", "max", "clipping_max", ("over",)),
    ("glare", "max", "glare_max", ("glare",)),
    ("colour", "max", "colour_max", ("cast_red", "cast_blue", "cast_green", "cast_yellow")),
    ("lesion", "min", "lesion_min_area", ("cut",)),
    ("framing", "max", "framing_max", ("cut",)),
]


def read(path: Path) -> dict[str, dict[str, list[dict]]]:
    """{source: {variant family ('original', 'defocus_strong', ...): [row, ...]}} of a quality_eval CSV."""
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in csv.DictReader(path.open()):
        out[row["source"]][row["variant"]].append(row)
    return out


def values(rows: list[dict], check: str) -> np.ndarray:
    """The check's values (missing ones left out)."""
    return np.array([float(r[check]) for r in rows if r[check] not in ("", "None")])


def fitted_limit(groups: list[np.ndarray], side: str, keep: float) -> float:
    """The limit that passes ``keep`` of the originals, each group (source) weighing the same."""
    weights = np.concatenate([np.full(len(g), 1.0 / len(g)) for g in groups])
    x = np.concatenate(groups)
    order = np.argsort(x if side == "min" else -x)
    cum = np.cumsum(weights[order]) / weights.sum()
    return float(x[order][np.searchsorted(cum, 1 - keep)])


def refused(x: np.ndarray, side: str, limit: float) -> float:
    """Share of ``x`` the limit refuses (min: below it; max: above it)."""
    return float(np.mean(x < limit if side == "min" else x > limit)) if len(x) else float("nan")


def main(argv: list[str] | None = None) -> int:
    """Print each check's limits fitted with and without each source, and what the left-out source meets."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", type=Path, required=True, help="a quality_eval CSV of the fit halves")
    ap.add_argument("--score", type=Path, required=True, help="a quality_eval CSV of the score halves")
    ap.add_argument("--keep", type=float, default=0.99, help="share of the originals a fitted limit passes")
    args = ap.parse_args(argv)
    fit, score = read(args.fit), read(args.score)
    sources = [s for s in fit if s in score]
    rules = ViewRules()
    print(f"Limits passing {100 * args.keep:g} % of the fit halves' originals (sources weighing the same); the left-out "
          "source's score half judged at them.\n  false rejects of its originals / detection of the degradations in "
          "charge (moderate and strong, by this check alone)")
    worst = (0.0, "", "")
    for check, side, field, families in LIMITS:
        shipped = getattr(rules, field)
        every = fitted_limit([values(fit[s]["original"], check) for s in sources], side, args.keep)
        print(f"\n{check} {side}: shipped {shipped:g}, fitted on all {every:.4g}")
        for s in sources:
            left = fitted_limit([values(fit[o]["original"], check) for o in sources if o != s], side, args.keep)
            orig = values(score[s]["original"], check)
            degraded = np.concatenate([values(score[s][f"{f}_{g}"], check) for f in families
                                       for g in ("moderate", "strong") if f"{f}_{g}" in score[s]] or [np.array([])])
            cells = []
            for name, lim in (("left out", left), ("all", every), ("shipped", shipped)):
                fr = refused(orig, side, lim)
                det = refused(degraded, side, lim) if len(degraded) else float("nan")  # detected: refused
                cells.append(f"{name} {lim:.4g}: {100 * fr:4.1f} % / {100 * det:5.1f} %")
                if name == "left out" and fr > worst[0]:
                    worst = (fr, check, s)
            print(f"  {s:<15} " + "   ".join(cells))
    print(f"\nloso_thresholds worst_false_rejects={100 * worst[0]:.1f}% ({worst[1]}, {worst[2]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
