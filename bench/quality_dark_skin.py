"""Is a darker patient's photograph refused as under-exposed? The exposure check on darker skin and on under-exposure.

    .venv/bin/python -m bench.quality_dark_skin [--n 60] [--fit-n 40] [--seed 0] [--sources ph2,...]

A kiosk's exposure is fixed (``[camera]``), so a darker-skinned patient's skin is dimmer in every channel than
the skin the kiosk was set up on, red too, though less than green and blue. The sources hold few darker-skinned
patients, so they are made: per source, ``--n`` originals of the score half, brought to kiosk-like stills, are
darkened as more pigment would darken them (``edge.camera.synth.darker_skin``: 0.4, 0.6, 0.8 and 1.0 units; one
unit takes about 40 % from red, pale skin towards the darkest under the same light) and judged as the desk would
record such a patient (Fitzpatrick V). For comparison, the originals under-exposed by 2 and 3 stops
(``bench.quality_degrade``'s moderate and strong grades), judged as recorded (type II: the sources' patients are
mostly pale), and the darker patients of 0.8 units under-exposed as much, judged as type V. Each copy is judged by a
kiosk calibrated on ``--fit-n`` stills of the source's fit half (as ``bench.quality_eval``) and by the built-in
reference of an uncalibrated kiosk.

Printed per source and kiosk: the share of each kind of copy the exposure check refuses, with the flat limit
(``exposure_min``, the rule before) and now (``edge.quality.exposure_floor``): for the darker patients a false
reject, for the under-exposed copies a detection. Nothing is written.

The last line: ``dark_skin_exposure_false_rejects u0.8=A%->B% u1.0=C%->D% darker_under_moderate_caught=E%->F%
darker_under_strong_caught=G%->H%`` (every source and both kiosks pooled, before -> now).
"""

from __future__ import annotations

import argparse
import multiprocessing

import cv2
import numpy as np

from bench.quality_eval import calibrated
from bench.quality_sources import DEFAULT_DATA, SOURCES, Item, load_source, still
from edge.camera import synth
from edge.quality import QualitySettings, assess

#: Units of pigment added (``synth.darker_skin``) ...
UNITS = (0.4, 0.6, 0.8, 1.0)
#: ... and stops taken off (``synth.degrade_exposure``), with the names they are printed under.
UNDER = (("under_moderate", -2.0), ("under_strong", -3.0))
#: The darker patients under-exposed are this dark.
DARKER_UNDER = 0.8


def copies(img: np.ndarray) -> dict[str, tuple[np.ndarray, str]]:
    """The darker patients', the under-exposed and the darker under-exposed copies of one still, by name, each
    with the skin type the desk would record."""
    out = {f"u{u}": (synth.darker_skin(img, u), "V") for u in UNITS}
    for name, stops in UNDER:
        out[name] = (synth.degrade_exposure(img, stops), "II")
        out[f"darker_{name}"] = (synth.degrade_exposure(synth.darker_skin(img, DARKER_UNDER), stops), "V")
    return out


def _judge(job: tuple[Item, list[QualitySettings]]) -> dict[str, list[tuple[bool, bool]]]:
    """Per copy and kiosk: (refused with the flat limit, refused now) by the exposure check."""
    item, kiosks = job
    out: dict[str, list[tuple[bool, bool]]] = {}
    for name, (img, skin_type) in copies(still(item)).items():
        jpeg = synth.encode_jpeg(img)
        out[name] = []
        for settings in kiosks:
            check = assess(jpeg, "dermoscopic", settings, skin_type).checks["exposure"]
            rules = settings.dermoscopic
            flat = check.value is None or not rules.exposure_min <= check.value <= rules.exposure_max
            out[name].append((flat, not check.ok))
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the exposure check's refusals of darker patients and of under-exposed copies, before and now."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=60, help="score-half originals per source")
    ap.add_argument("--fit-n", type=int, default=40, help="fit-half stills the calibration takes")
    ap.add_argument("--seed", type=int, default=0, help="draws the sample and the calibration's stills")
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)  # before the pool forks: a child inheriting OpenCV's busy thread pool hangs
    names = [f"u{u}" for u in UNITS] + [pre + name for name, _ in UNDER for pre in ("", "darker_")]
    pooled: dict[str, list[tuple[bool, bool]]] = {name: [] for name in names}
    print("exposure check refusals, flat limit (before) -> now; darker patients (u: units of pigment, recorded "
          f"type V): false rejects; under-exposed (type II) and darker under-exposed ({DARKER_UNDER} units, type V): "
          "caught")
    for source in args.sources.split(","):
        kiosks = [calibrated(source, args.fit_n, args.seed, DEFAULT_DATA), QualitySettings()]
        items = load_source(source, "score", args.n, args.seed, DEFAULT_DATA)
        with multiprocessing.Pool(args.jobs, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
            results = pool.map(_judge, [(it, kiosks) for it in items], chunksize=2)
        for k, kiosk in enumerate(("calibrated", "built-in")):
            cells = []
            for name in names:
                got = [r[name][k] for r in results]
                pooled[name].extend(got)
                cells.append(f"{name} {_pct(got, 0)} -> {_pct(got, 1)}")
            print(f"  {source:15s} {kiosk:10s} ({len(results)}): " + ", ".join(cells))
    p = {name: (_pct(got, 0, ""), _pct(got, 1, "")) for name, got in pooled.items()}
    print(f"dark_skin_exposure_false_rejects u0.8={p['u0.8'][0]}%->{p['u0.8'][1]}% u1.0={p['u1.0'][0]}%->"
          f"{p['u1.0'][1]}% darker_under_moderate_caught={p['darker_under_moderate'][0]}%->"
          f"{p['darker_under_moderate'][1]}% darker_under_strong_caught={p['darker_under_strong'][0]}%->"
          f"{p['darker_under_strong'][1]}%")
    return 0


def _pct(got: list[tuple[bool, bool]], which: int, unit: str = " %") -> str:
    """The share of ``got`` refused before (``which`` 0) or now (1), in per cent to one decimal."""
    return f"{100 * np.mean([g[which] for g in got]):.1f}{unit}" if got else "n/a"


if __name__ == "__main__":
    raise SystemExit(main())
