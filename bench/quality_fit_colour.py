"""Fit the quality gate's kiosk reference (colour, sharpness) on a folder, and show how its stills score.

    .venv/bin/python -m bench.quality_fit_colour [FOLDER] [--n 200] [--seed 7]

For study, not for installation: a kiosk is calibrated with ``python -m edge calibrate --config
FILE STILL...`` (edge/quality/calibrate.py), which measures and fits exactly as this does and
writes the result into the kiosk's config. This prints the ``[quality.reference]`` table fitted
on FOLDER's images (default: ../shared/data/ph2/images; small dataset images are scaled up to a
1600-px still first) and the percentiles of their colour distance and relative sharpness under
it, to choose ``colour_max`` and ``focus_min`` from. Nothing derived from the images is written.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import cv2
import numpy as np

from edge.quality import QualitySettings, cast_distance
from edge.quality.calibrate import fit_reference, measure, toml_block


def main(argv: list[str] | None = None) -> int:
    """Print the reference fitted on a folder of good images and the distance / sharpness percentiles."""
    root = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ph2" / "images"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, default=root)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    files = random.Random(args.seed).sample(files, min(args.n, len(files)))
    s = QualitySettings()
    samples, left_out = [], 0
    for p in files:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            continue
        h, w = img.shape[:2]
        if w < s.work_size:  # small dataset images: scale up as the evaluation does
            img = cv2.resize(img, (1600, round(1600 * h / w)), interpolation=cv2.INTER_CUBIC)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        got = measure(buf.tobytes(), s) if ok else "not encoded"
        if isinstance(got, str):
            left_out += 1
        else:
            samples.append(got)
    ref = fit_reference(samples, f"{len(samples)} images of {args.folder.name}")
    print(f"{len(samples)} images from {args.folder} ({left_out} left out)")
    print(toml_block(ref), end="")
    dist = np.array([cast_distance((s.r, s.b, s.lightness), ref)[0] for s in samples])
    sharp = np.array([(s.focus - 1.0) / (ref.focus - 1.0) for s in samples])
    print("colour distance percentiles 90/95/97/99: " + ", ".join(f"{x:.2f}" for x in np.percentile(dist, [90, 95, 97, 99])))
    print("relative sharpness percentiles 1/3/5/10: " + ", ".join(f"{x:.2f}" for x in np.percentile(sharp, [1, 3, 5, 10])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
