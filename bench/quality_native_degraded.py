"""The gate as another clinic's files meet it: each source's files at their own size, and degraded copies made at
that size, judged by a kiosk that was never calibrated (``python -m edge quality``), or with ``--calibrated`` by one
calibrated on the source's fit half at the files' own size (``python -m edge quality --calibrate``).

    .venv/bin/python -m bench.quality_native_degraded [--sources ph2,ham10000-masks] [--n N] [--seed 0]
                                                      [--calibrated] [--jobs 2]

``bench.quality_eval`` brings every source to a 1600-px kiosk still and scores it calibrated; this bench leaves the
files as they are, which is how the issue scores a held-out set of another clinic's originals: PH2's 765-px frames
and HAM10000-masks' 600-px ones by default (the camera-sized sources; ISIC 2017's and HAM10000's squares can be named
too), and any clinic's photographs with ``--sources folder:PATH`` (``bench.quality_sources.folder_items``). The
degradations are ``bench.quality_degrade``'s, graded as there (blur in the file's own pixels, which are now the
still's; a folder's file wider than PH2's as if brought to PH2's width, its glare spots as large in the view:
``bench.quality_sources.as_file``), the lesion cut by its expert mask where there is one. Printed per source: the originals refused,
then per degradation and grade the copies caught by the check in charge and refused by the gate at all. The last
line: per source the lowest strong detection by the check in charge other than the colour casts, with its
degradation, and the range of the strong casts' (``native_strong_caught uncalibrated SOURCE=NN.N%:DEGRADATION ... |
casts SOURCE=LOW-HIGH% ...``). Nothing is written.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import time
from pathlib import Path

import cv2

from bench.quality_degrade import DEGRADATIONS, GRADES
from bench.quality_eval import caught, lesion_for_cut
from bench.quality_sources import DEFAULT_DATA, Item, as_file, load_source, mask
from edge.camera import synth
from edge.quality import QualitySettings, assess
from edge.quality.calibrate import reference_from_files

CAMERA_SIZED = ("ph2", "ham10000-masks")


def judge(job: tuple[Item, QualitySettings, int]) -> tuple[bool, dict[str, tuple[bool, bool]]]:
    """(the original passes, {"family_grade": (caught by the check in charge, refused at all)}) for one file."""
    item, settings, seed = job
    img = cv2.imread(str(item.image), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read {item.image}")
    h, w = img.shape[:2]
    own = as_file(item, w, h)
    lesion = mask(own)
    if lesion is None:
        lesion = lesion_for_cut(own, img, settings)
    rng = random.Random(f"{seed}:{item.source}:{item.key}")
    ok = assess(item.image.read_bytes(), "dermoscopic", settings).ok
    got = {}
    for family, in_charge, grades in DEGRADATIONS:
        for grade in GRADES:
            copy = grades[grade](img, own, lesion, rng)
            if copy is None:
                continue
            q = assess(synth.encode_jpeg(copy), "dermoscopic", settings)
            got[f"{family}_{grade}"] = (caught(q, in_charge), not q.ok)
    return ok, got


def settings_for(source: str, calibrated: bool, fit_n: int, seed: int, data: Path) -> QualitySettings:
    """The built-in settings, or with the reference fitted on ``fit_n`` of the source's fit-half files as they are."""
    settings = QualitySettings()
    if not calibrated:
        return settings
    fit = [str(it.image) for it in load_source(source, "fit", fit_n, seed, data)]
    try:
        ref = reference_from_files(fit, settings, lambda message: None)
    except ValueError as exc:
        raise SystemExit(f"{source}: no kiosk reference can be fitted on its fit half ({exc}): give it more files "
                         "(--fit-n, or a larger folder), or leave out --calibrated") from None
    return settings.model_copy(update={"reference": ref})


def score_source(source: str, args) -> tuple[float, dict[str, tuple[float, float, int]]]:
    """(share of the originals refused, {"family_grade": (caught, refused at all, copies)}); prints the table."""
    items = load_source(source, "score" if args.calibrated else "all", args.n, args.seed, args.data)
    settings = settings_for(source, args.calibrated, args.fit_n, args.seed, args.data)
    # spawned, not forked: a process forked after OpenCV's threads have run in it can hang in them
    with multiprocessing.get_context("spawn").Pool(args.jobs, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
        results = pool.map(judge, [(it, settings, args.seed) for it in items], chunksize=2)
    refused = sum(not ok for ok, _ in results) / len(results)
    how = "calibrated on its fit half" if args.calibrated else "uncalibrated"
    print(f"== {source}: {len(results)} files as they are, {how}: originals refused {100 * refused:.1f} %")
    print(f"  {'degradation':<20} {'n':>4} {'caught':>7} {'refused':>8}")
    table = {}
    for family, _, _ in DEGRADATIONS:
        for grade in GRADES:
            key = f"{family}_{grade}"
            got = [deg[key] for _, deg in results if key in deg]
            if not got:
                continue
            table[key] = (sum(c for c, _ in got) / len(got), sum(r for _, r in got) / len(got), len(got))
            print(f"  {key:<20} {len(got):>4} {100 * table[key][0]:6.1f}% {100 * table[key][1]:7.1f}%", flush=True)
    return refused, table


def summary(tables: dict[str, dict[str, tuple[float, float, int]]], calibrated: bool) -> str:
    """The last line: per source the lowest strong detection other than the casts, and the strong casts' range."""
    low, casts = [], []
    for source, table in tables.items():
        strong = {k: v[0] for k, v in table.items() if k.endswith("_strong")}
        plain = {k: v for k, v in strong.items() if not k.startswith("cast_")}
        worst = min(plain, key=plain.get)
        low.append(f"{source}={100 * plain[worst]:.1f}%:{worst.removesuffix('_strong')}")
        cast = [v for k, v in strong.items() if k.startswith("cast_")]
        casts.append(f"{source}={100 * min(cast):.1f}-{100 * max(cast):.1f}%")
    how = "calibrated" if calibrated else "uncalibrated"
    return f"native_strong_caught {how} {' '.join(low)} | casts {' '.join(casts)}"


def main(argv: list[str] | None = None) -> int:
    """Score each source; print the tables and the summary line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sources", default=",".join(CAMERA_SIZED))
    ap.add_argument("--n", type=int, default=None, help="files a source, at most (default: all; with --calibrated "
                                                         "all of the score half)")
    ap.add_argument("--seed", type=int, default=0, help="draws the sample (with --n) and the degradations' randomness")
    ap.add_argument("--calibrated", action="store_true", help="a kiosk calibrated on the fit half's files as they are")
    ap.add_argument("--fit-n", type=int, default=40)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    t0 = time.time()
    tables = {}
    for source in args.sources.split(","):
        _, tables[source] = score_source(source, args)
    print(f"({time.time() - t0:.0f} s)")
    print(summary(tables, args.calibrated))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
