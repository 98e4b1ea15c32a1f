"""What a grey patch on the dermatoscope's contact plate does for the colour check: the seed tables' stills with a
patch drawn where a plate would show it, against the same stills read by the skin alone.

    .venv/bin/python -m bench.quality_patch [--n 60] [--fit-n 40] [--seed 0] [--sources ph2,isic2017,...]
                                            [--jobs 2] [--data ../shared/data] [--light-jitter 0.01]

The skin's colour cannot tell a cast from a patient's skin (``docs/quality-gate.md``, "Where the targets are
missed"); a patch of known grey in every frame can (``wire.kioskconfig.quality.GreyPatch``). No source holds such a
patch, so this bench draws one into each still (``edge.camera.synth.grey_patch``): a grey disc inside the rim of the
still's own field of view, below its centre, under the light's colour jittered per photograph by ``LIGHT_JITTER`` in
each channel's log gain (an LED's drift between photographs, with the camera's gains fixed), with the sensor's grain
and the optics' blur at its edge. That is an
assumption about hardware nobody has built yet: what it cannot show is a real plate's reflections, the patch's
ageing, or a light whose colour varies across the view.

Per source (the seed tables' four, ``bench.quality_eval``'s fit and score halves): two kiosks calibrated on the same
``--fit-n`` fit-half stills, one reading the skin (as today, the stills without a patch) and one the patch; then on
``--n`` score-half stills, each kiosk's false rejects on the originals (whole gate and colour), how many of the other
checks' verdicts the patch changes, the colour casts of the seed tables (``bench.quality_degrade``, moderate and
strong, four directions) caught by the colour check, and the under- and over-exposures caught by the exposure check
(over-exposure: or clipping). The patch's grey is ``PATCH_LEVEL`` on every still, jittered by ``LEVEL_JITTER``: a
kiosk's exposure is fixed, so its normal photographs differ in the skin, not in the light. Last line, over every
source: ``patch_caught casts=M/S% exposure=M/S% (skin casts=M/S% exposure=M/S%) | originals_refused patch=N.N%
skin=N.N%`` (M moderate, S strong). Nothing is written.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import time
from pathlib import Path

import cv2
import numpy as np

from bench.quality_degrade import CAST_DIRS, cast, field_circle
from bench.quality_eval import calibrated
from bench.quality_sources import DEFAULT_DATA, SOURCES, Item, load_source, still
from edge.camera import synth
from edge.quality import CHECKS, QualitySettings, assess
from edge.quality.calibrate import fit_reference, measure
from wire.kioskconfig.quality import GreyPatch

#: The patch's grey level (0-255) on a kiosk's normal frames: a mid grey, so that over-exposure does not burn it out
#: before the skin.
PATCH_LEVEL = 140.0
#: Standard deviation of each channel's log gain on the patch between photographs (the light's colour drifting), and
#: of its brightness (the light's output drifting, with the camera's exposure fixed).
LIGHT_JITTER = 0.01
LEVEL_JITTER = 0.03
#: The patch's radius, as a share of the frame's shorter side, and how far out in the field's radius it sits.
PATCH_RADIUS = 0.04
PATCH_OUT = 0.8
GRADE_STRENGTH = {"moderate": 0.25, "strong": 0.4}
EXPOSURES = {"under_moderate": -2.0, "under_strong": -3.0, "over_moderate": 1.0, "over_strong": 1.75}


def with_patch(img: np.ndarray, rng: random.Random, light_jitter: float = LIGHT_JITTER) -> tuple[np.ndarray, GreyPatch]:
    """``img`` with a grey patch inside the rim of its field of view, below its centre (the light's colour on it
    jittered by ``light_jitter``), and where it lies."""
    h, w = img.shape[:2]
    field, (cx, cy), r = field_circle(img)
    y = min(cy + PATCH_OUT * r, h - 1 - (PATCH_RADIUS + 0.01) * min(h, w))  # inside the frame too
    patch = GreyPatch(x=round(cx / (w - 1), 4), y=round(y / (h - 1), 4), radius=PATCH_RADIUS)
    level = PATCH_LEVEL * float(np.exp(rng.gauss(0.0, LEVEL_JITTER)))
    gains = tuple(float(np.exp(rng.gauss(0.0, light_jitter))) for _ in range(3))
    return synth.grey_patch(img, patch.x, patch.y, patch.radius, level, gains, rng.randrange(10**6)), patch


def patch_reference(source: str, fit_n: int, seed: int, data: Path,
                    light_jitter: float = LIGHT_JITTER) -> tuple[object, int]:
    """The patch kiosk's reference: ``bench.quality_eval.calibrated``'s stills, each with its patch; and how many
    stills' patches could not be read."""
    samples, unread = [], 0
    for it in load_source(source, "fit", fit_n, seed, data):
        img, patch = with_patch(still(it), random.Random(f"fit:{seed}:{it.key}"), light_jitter)
        got = measure(synth.encode_jpeg(img), QualitySettings(grey_patch=patch))
        if isinstance(got, str):
            unread += "grey patch" in got
            continue
        samples.append(got)
    return fit_reference(samples, f"{source} fit half with a grey patch"), unread


def judge(job: tuple[Item, QualitySettings, object, int, float]) -> dict:
    """One still: the skin kiosk's and the patch kiosk's verdicts on the original, its casts and its exposures."""
    item, skin_settings, patch_ref, seed, light_jitter = job
    rng = random.Random(f"{seed}:{item.key}")
    plain = still(item)
    patched, patch = with_patch(plain, rng, light_jitter)
    patch_settings = skin_settings.model_copy(update={"reference": patch_ref, "grey_patch": patch})
    out = {"skin": {"original": assess(synth.encode_jpeg(plain), "dermoscopic", skin_settings)},
           "patch": {"original": assess(synth.encode_jpeg(patched), "dermoscopic", patch_settings)}}
    for d in CAST_DIRS:
        for grade, k in GRADE_STRENGTH.items():
            out["skin"][f"cast_{d}_{grade}"] = assess(synth.encode_jpeg(cast(plain, d, k)), "dermoscopic", skin_settings)
            out["patch"][f"cast_{d}_{grade}"] = assess(synth.encode_jpeg(cast(patched, d, k)), "dermoscopic",
                                                       patch_settings)
    for name, stops in EXPOSURES.items():
        out["skin"][name] = assess(synth.encode_jpeg(synth.degrade_exposure(plain, stops)), "dermoscopic",
                                   skin_settings)
        out["patch"][name] = assess(synth.encode_jpeg(synth.degrade_exposure(patched, stops)), "dermoscopic",
                                    patch_settings)
    return {kiosk: {k: (q.ok, {c: q.checks[c].ok for c in CHECKS}, q.checks["colour"].message)
                    for k, q in got.items()} for kiosk, got in out.items()}


def _caught(verdict: tuple, name: str) -> bool:
    """Caught by the check in charge: colour for a cast, exposure (or clipping, over-exposed) for an exposure."""
    checks = verdict[1]
    if name.startswith("cast_"):
        return not checks["colour"]
    return not checks["exposure"] or name.startswith("over") and not checks["clipping"]


def score_source(source: str, args) -> dict:
    """Print one source's table; return its counts for the summary."""
    t0 = time.time()
    skin_settings = calibrated(source, args.fit_n, args.seed, args.data)
    patch_ref, unread = patch_reference(source, args.fit_n, args.seed, args.data, args.light_jitter)
    items = load_source(source, "score", args.n, args.seed, args.data)
    with multiprocessing.get_context("spawn").Pool(args.jobs, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
        results = pool.map(judge, [(it, skin_settings, patch_ref, args.seed, args.light_jitter) for it in items],
                           chunksize=2)
    n = len(results)
    pc = lambda k: f"{100 * k / n:5.1f} %"  # noqa: E731
    gate = {kiosk: sum(not r[kiosk]["original"][0] for r in results) for kiosk in ("skin", "patch")}
    by = {check: {kiosk: sum(not r[kiosk]["original"][1][check] for r in results) for kiosk in ("skin", "patch")}
          for check in ("colour", "exposure")}
    others = sum(any(r["skin"]["original"][1][c] != r["patch"]["original"][1][c] for c in CHECKS
                     if c not in ("colour", "exposure")) for r in results)
    print(f"\n== {source}: {n} score-half stills (seed {args.seed}); both kiosks calibrated on {args.fit_n} fit-half "
          f"stills ({unread} fit stills' patches unreadable); patch normal ({patch_ref.patch_chroma[0]:.3f}, "
          f"{patch_ref.patch_chroma[1]:.3f})")
    print(f"  originals refused, whole gate: skin {pc(gate['skin'])}, patch {pc(gate['patch'])}; "
          + "; ".join(f"by {check}: skin {pc(k['skin'])}, patch {pc(k['patch'])}" for check, k in by.items())
          + f"; the other checks' verdicts the patch changed: {others} of {n}")
    print(f"  {'degradation':<15} {'skin moderate / strong':>24} {'patch moderate / strong':>25}")
    counts = {"n": n, "refused": gate, "caught": {}}
    for family in [f"cast_{d}" for d in CAST_DIRS] + ["under", "over"]:
        row = []
        for kiosk in ("skin", "patch"):
            got = [sum(_caught(r[kiosk][f"{family}_{g}"], family) for r in results) for g in GRADE_STRENGTH]
            for g, k in zip(GRADE_STRENGTH, got):
                counts["caught"][(kiosk, family, g)] = k
            row.append(f"{100 * got[0] / n:5.1f} / {100 * got[1] / n:5.1f} %")
        print(f"  {family:<15} {row[0]:>24} {row[1]:>25}")
    burnt = sum(r["patch"]["over_strong"][2].startswith("The dermatoscope's grey patch cannot") for r in results)
    print(f"  patch burnt out at +1.75 stops: {pc(burnt)}")
    print(f"  ({time.time() - t0:.0f} s)")
    return counts


def summary(all_counts: list[dict]) -> str:
    """The last line, over every source: casts caught by colour and exposures by exposure, with the patch and with
    the skin (moderate / strong), and the originals refused by the whole gate."""
    n = sum(c["n"] for c in all_counts)

    def rate(kiosk: str, families: list[str], grade: str) -> str:
        caught = sum(c["caught"][(kiosk, f, grade)] for c in all_counts for f in families)
        return f"{100 * caught / (n * len(families)):.1f}"

    casts, exposures = [f"cast_{d}" for d in CAST_DIRS], ["under", "over"]
    parts = {kiosk: f"casts={rate(kiosk, casts, 'moderate')}/{rate(kiosk, casts, 'strong')}% exposure="
                    f"{rate(kiosk, exposures, 'moderate')}/{rate(kiosk, exposures, 'strong')}%"
             for kiosk in ("patch", "skin")}
    refused = {k: 100 * sum(c["refused"][k] for c in all_counts) / n for k in ("patch", "skin")}
    return (f"patch_caught {parts['patch']} (skin {parts['skin']}) | originals_refused patch={refused['patch']:.1f}% "
            f"skin={refused['skin']:.1f}%")


def main(argv: list[str] | None = None) -> int:
    """Score each source with and without the patch; print the tables and the summary line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--n", type=int, default=60, help="score-half stills a source")
    ap.add_argument("--fit-n", type=int, default=40, help="fit-half stills each kiosk is calibrated on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--light-jitter", type=float, default=LIGHT_JITTER,
                    help="sd of each channel's log gain on the patch between photographs (an unsteady light)")
    args = ap.parse_args(argv)
    t0 = time.time()
    counts = [score_source(source, args) for source in args.sources.split(",")]
    print(f"({time.time() - t0:.0f} s)")
    print(summary(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
