"""The issue's calibrated design at the files' own sizes: each source scored as a kiosk calibrated on others of its
files would score them, as `python -m edge quality --calibrate FOLDER FILE...` does.

    .venv/bin/python -m bench.quality_native [--seeds 0,1,2,3,4,5] [--fit-n 40] [--n 300] [--sources ph2,...]

Per source and seed: the reference fitted on ``--fit-n`` files of the source's fit half (``edge.quality.calibrate.
reference_from_files``, as ``--calibrate`` fits it), then up to ``--n`` files of its score half judged against it
(``edge.quality.assess``, dermoscopic), both drawn as ``bench.quality_eval`` draws them (``bench.quality_sources``).
The files are read as they are: PH2's 765-px frames, HAM10000-masks' 600-px ones, and ISIC 2017's and HAM10000's
256- and 224-px squares (which ``bench.quality_eval`` instead brings to 1600-px stills). Prints, per source and seed,
the line ``python -m edge quality`` ends with (``refusal_summary``) and the images refused; the last line is
``native_calibrated_false_rejects SOURCE=LOW-HIGH% ...`` over the seeds. Nothing is written.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.quality_sources import DEFAULT_DATA, SOURCES, load_source
from edge.quality import QualitySettings, assess, refusal_summary
from edge.quality.calibrate import reference_from_files


def score(source: str, seed: int, fit_n: int, n: int, data: Path) -> tuple[float, str, list[str]]:
    """(refused share, the summary line, the refused files' ids with their failing checks) for one source and seed."""
    fit = [str(it.image) for it in load_source(source, "fit", fit_n, seed, data)]
    settings = QualitySettings()
    ref = reference_from_files(fit, settings, lambda message: None)
    settings = settings.model_copy(update={"reference": ref})
    items = load_source(source, "score", n, seed, data)
    refused, named = [], []
    for it in items:
        q = assess(it.image.read_bytes(), "dermoscopic", settings)
        if not q.ok:
            failing = [k for k, c in q.checks.items() if not c.ok]
            refused.append(failing)
            named.append(f"{it.key}:{','.join(failing)}")
    return len(refused) / len(items), refusal_summary(refused, len(items)), named


def main(argv: list[str] | None = None) -> int:
    """Score every source and seed; print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seeds", default="0,1,2,3,4,5")
    ap.add_argument("--fit-n", type=int, default=40, help="fit-half files the reference is fitted on (default 40)")
    ap.add_argument("--n", type=int, default=300, help="score-half files judged, at most (default 300)")
    ap.add_argument("--sources", default=",".join(SOURCES))
    args = ap.parse_args(argv)
    t0 = time.time()
    ranges = {}
    for source in args.sources.split(","):
        got = []
        for seed in (int(s) for s in args.seeds.split(",")):
            share, line, named = score(source, seed, args.fit_n, args.n, args.data)
            got.append(share)
            print(f"{source} seed {seed}: {line}")
            print(f"  refused: {' '.join(named) if named else 'none'}", flush=True)
        ranges[source] = (min(got), max(got))
    print(f"({time.time() - t0:.0f} s)")
    print("native_calibrated_false_rejects " + " ".join(f"{s}={100 * lo:.1f}-{100 * hi:.1f}%"
                                                        for s, (lo, hi) in ranges.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
