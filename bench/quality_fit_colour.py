"""Fit the colour check's reference skin colour (mean and covariance of CIELAB a*, b*).

    .venv/bin/python -m bench.quality_fit_colour [FOLDER] [--n 400] [--exclude-eval-sample]

Reads good dermoscopic images (default: ../shared/data/ham10000/images; on a deployed kiosk,
a folder of its own accepted stills, taken with its fixed colour gains), measures the mean skin
colour around the lesion exactly as the gate does, and prints the ``colour_ref`` and
``colour_cov`` lines for the kiosk TOML's ``[quality.dermoscopic]`` table, with the distance
percentiles to choose ``colour_max`` from
(and the skin chroma percentiles for ``colour_max_chroma``). ``--exclude-eval-sample`` leaves out the images
``bench/quality_eval.py`` scores, so that its figures stay out-of-sample.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import cv2
import numpy as np

from edge.quality import QualitySettings
from edge.quality.analysis import decode, find_fov, segment_lesion


def skin_ab(data: bytes, s: QualitySettings) -> tuple[float, float] | None:
    """Mean (a*, b*) of the skin around the lesion, measured as ``edge.quality.assess`` does."""
    try:
        w = decode(data, s.work_size, s.focus_size, s.analysis_size)
    except ValueError:
        return None
    lab = cv2.cvtColor(w.small, cv2.COLOR_BGR2Lab)
    fov = find_fov(cv2.cvtColor(w.small, cv2.COLOR_BGR2GRAY))
    les = segment_lesion(w.small, fov, lab)
    inside = fov.inner > 0
    skin = inside
    if les.found and les.contrast >= s.dermoscopic.lesion_min_contrast:
        skin = inside & (cv2.dilate(les.mask, np.ones((5, 5), np.uint8)) == 0)
    if not skin.any():
        return None
    _, a, b, _ = cv2.mean(lab, mask=skin.astype(np.uint8))
    return a - 128.0, b - 128.0


def main(argv: list[str] | None = None) -> int:
    """Print colour_ref / colour_cov fitted on a folder of good images."""
    root = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ham10000" / "images"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, default=root)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--exclude-eval-sample", action="store_true",
                    help="leave out bench.quality_eval's default sample (300 images, seed 0)")
    args = ap.parse_args(argv)
    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if args.exclude_eval_sample:
        held = set(random.Random(0).sample(files, min(300, len(files))))
        files = [p for p in files if p not in held]
    files = random.Random(args.seed).sample(files, min(args.n, len(files)))
    s = QualitySettings()
    ab = []
    for p in files:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            continue
        if max(img.shape[:2]) < s.work_size:  # small dataset images: scale up as the eval does
            img = cv2.resize(img, (1600, 1200), interpolation=cv2.INTER_CUBIC)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        v = skin_ab(buf.tobytes(), s) if ok else None
        if v is not None:
            ab.append(v)
    arr = np.array(ab)
    mu, cov = arr.mean(axis=0), np.cov(arr.T)
    d = arr - mu
    dist = np.sqrt(np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d))
    print(f"{len(arr)} images from {args.folder}")
    print(f"colour_ref = [{mu[0]:.1f}, {mu[1]:.1f}]")
    print(f"colour_cov = [[{cov[0, 0]:.1f}, {cov[0, 1]:.1f}], [{cov[1, 0]:.1f}, {cov[1, 1]:.1f}]]")
    print("distance percentiles 90/95/97/99: " + ", ".join(f"{x:.2f}" for x in np.percentile(dist, [90, 95, 97, 99])))
    chroma = np.hypot(arr[:, 0], arr[:, 1])
    print("chroma percentiles 90/95/97/99 (for colour_max_chroma): "
          + ", ".join(f"{x:.1f}" for x in np.percentile(chroma, [90, 95, 97, 99])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
