"""Does the colour check refuse darker skin more often than paler skin? Colour false rejects by lightness.

    .venv/bin/python -m bench.quality_skin_tone [--n 300] [--fit-n 40] [--seeds 0,1,2,3,4] [--sources ph2,...]

The colour check compares the skin's mean log-chromaticity with the kiosk's reference. Darker skin is
redder (melanin and blood absorb green and blue more than red), so a reference that ignores lightness
takes a darker patient's skin for a red cast. Since 2026-12-05 a calibration also fits how the colour
moves with the skin's lightness (``KioskReference.expected``), and follows that slope for skin darker
than its stills'.

Per source, up to ``--n`` originals of the score half are brought to kiosk-like stills and measured once
(``edge.quality.calibrate.measure``: the skin's colour and lightness, as the gate measures them). Per
seed, a kiosk is calibrated on ``--fit-n`` stills of the fit half (as ``bench.quality_eval``), and every
scored still is judged by that reference twice: as fitted, and with its lightness slope removed (the rule
before). Printed per source: the colour check's false rejects over all the scored originals, over the
darkest tenth of their skin and over the rest, mean over the seeds. Cast detection is
``bench.quality_eval``'s (``--only cast_red,cast_blue,cast_green,cast_yellow``). Nothing is written.

The last line: ``skin_tone_colour_false_rejects darkest_tenth=A%->B% rest=C%->D%`` (all sources pooled,
before -> after).
"""

from __future__ import annotations

import argparse
import multiprocessing

import numpy as np

from bench.quality_eval import calibrated
from bench.quality_sources import DEFAULT_DATA, SOURCES, Item, load_source, still
from edge.camera import synth
from edge.quality import QualitySettings, cast_distance
from edge.quality.calibrate import Still, measure


def _measure(item: Item) -> Still | None:
    got = measure(synth.encode_jpeg(still(item)), QualitySettings())
    return None if isinstance(got, str) else got


def refusals(samples: list[Still], settings: QualitySettings) -> tuple[np.ndarray, np.ndarray]:
    """Per still, whether the colour check refuses it under ``settings``' reference as fitted, and with the
    reference's lightness slope removed (the rule before it)."""
    ref = settings.reference
    flat = ref.model_copy(update={"lightness": None, "slope": (0.0, 0.0)})
    limit = settings.dermoscopic.colour_max
    now = np.array([cast_distance((s.r, s.b, s.lightness), ref)[0] > limit for s in samples])
    before = np.array([cast_distance((s.r, s.b, s.lightness), flat)[0] > limit for s in samples])
    return before, now


def main(argv: list[str] | None = None) -> int:
    """Print the colour check's false rejects by skin lightness, per source, before and after the slope."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300, help="score-half originals per source")
    ap.add_argument("--fit-n", type=int, default=40, help="fit-half stills each calibration takes")
    ap.add_argument("--seeds", default="0,1,2,3,4", help="one calibration per seed")
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    pooled = {"dark": [[], []], "rest": [[], []]}
    print(f"colour false rejects of score-half originals, mean of {len(seeds)} calibrations of {args.fit_n} "
          "fit-half stills: before (no lightness slope) -> after")
    for source in args.sources.split(","):
        items = load_source(source, "score", args.n, 0, DEFAULT_DATA)
        with multiprocessing.Pool(args.jobs) as pool:
            samples = [s for s in pool.map(_measure, items) if s is not None]
        lum = np.array([s.lightness for s in samples])
        dark = lum <= np.quantile(lum, 0.1)
        rows = {"all": [[], []], "dark": [[], []], "rest": [[], []]}
        for seed in seeds:
            before, now = refusals(samples, calibrated(source, args.fit_n, seed, DEFAULT_DATA))
            for name, sel in (("all", slice(None)), ("dark", dark), ("rest", ~dark)):
                rows[name][0].append(before[sel].mean())
                rows[name][1].append(now[sel].mean())
                if name in pooled:
                    pooled[name][0].append(before[sel].mean())
                    pooled[name][1].append(now[sel].mean())
        cell = {k: f"{100 * np.mean(b):.1f} -> {100 * np.mean(a):.1f} %" for k, (b, a) in rows.items()}
        print(f"  {source:15s} {len(samples):4d} originals: all {cell['all']}; darkest tenth ({dark.sum()}) "
              f"{cell['dark']}; the rest {cell['rest']}")
    d, r = pooled["dark"], pooled["rest"]
    print(f"skin_tone_colour_false_rejects darkest_tenth={100 * np.mean(d[0]):.1f}%->{100 * np.mean(d[1]):.1f}% "
          f"rest={100 * np.mean(r[0]):.1f}%->{100 * np.mean(r[1]):.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
