"""Evaluate the quality gate on real dermoscopy degraded in known ways.

    .venv/bin/python -m bench.quality_eval [--n 300] [--data ../shared/data] [--seed 0]

HAM10000 images (224x224, squeezed from 600x450) are scaled up to 1600x1200 (a realistic
kiosk still), JPEG-encoded, and degraded: Gaussian and motion blur at several strengths,
under- and over-exposure, glare spots, colour casts and the lesion pushed out of frame.
For each check it prints the detection rate on degraded images (the check in charge fails)
and the false-reject rate on the originals. "Clear" strengths are the goal's "clearly
degraded" images (goal >= 95 % detected); "mild" ones are printed for information.
The segmentation behind the framing check is scored against the expert masks in
``ham10000-masks`` (IoU, centroid error). Nothing derived from the data is written to the repo
(per-image values go to ``bench/out/``, which git ignores).
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import random
import time
from pathlib import Path

import cv2
import numpy as np

from edge.camera import synth
from edge.quality import QualitySettings, assess
from edge.quality.analysis import decode, find_fov, segment_lesion

SIZE = (1600, 1200)

# name, check in charge, strength class, function(img, rng) -> img
DEGRADATIONS = [
    ("blur_s4", "focus", "mild", lambda im, r: synth.degrade_blur(im, 4)),
    ("blur_s8", "focus", "clear", lambda im, r: synth.degrade_blur(im, 8)),
    ("blur_s16", "focus", "clear", lambda im, r: synth.degrade_blur(im, 16)),
    ("motion_20", "focus", "mild", lambda im, r: synth.degrade_motion(im, 20, r.uniform(0, 180))),
    ("motion_40", "focus", "clear", lambda im, r: synth.degrade_motion(im, 40, r.uniform(0, 180))),
    ("motion_80", "focus", "clear", lambda im, r: synth.degrade_motion(im, 80, r.uniform(0, 180))),
    ("under_1", "exposure", "mild", lambda im, r: synth.degrade_exposure(im, -1)),
    ("under_2", "exposure", "clear", lambda im, r: synth.degrade_exposure(im, -2)),
    ("under_3", "exposure", "clear", lambda im, r: synth.degrade_exposure(im, -3)),
    ("over_1", "exposure+clipping", "mild", lambda im, r: synth.degrade_exposure(im, 1)),
    ("over_1.5", "exposure+clipping", "clear", lambda im, r: synth.degrade_exposure(im, 1.5)),
    ("over_2", "exposure+clipping", "clear", lambda im, r: synth.degrade_exposure(im, 2)),
    ("glare_few", "glare", "mild", lambda im, r: synth.degrade_glare(im, 4, 10, r.randrange(10**6))),
    ("glare_8", "glare", "clear", lambda im, r: synth.degrade_glare(im, 8, 16, r.randrange(10**6))),
    ("glare_20", "glare", "clear", lambda im, r: synth.degrade_glare(im, 20, 16, r.randrange(10**6))),
    ("cast_blue", "colour", "clear", lambda im, r: synth.degrade_cast(im, (1.35, 1.0, 0.75))),
    ("cast_green", "colour", "clear", lambda im, r: synth.degrade_cast(im, (0.85, 1.3, 0.8))),
    ("cast_red", "colour", "clear", lambda im, r: synth.degrade_cast(im, (0.8, 0.8, 1.3))),
    ("cast_yellow", "colour", "clear", lambda im, r: synth.degrade_cast(im, (0.7, 1.1, 1.15))),
    ("cast_mild", "colour", "mild", lambda im, r: synth.degrade_cast(im, (1.15, 1.0, 0.9))),
    ("offcentre", "framing+lesion", "clear", lambda im, r: synth.degrade_offcentre(im, 0.5, r.randrange(4))),
]
CHECK_NAMES = ("fov", "focus", "exposure", "clipping", "glare", "colour", "lesion", "framing")


def load_up(path: Path) -> np.ndarray:
    """A dataset image scaled up to the kiosk's still size."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.resize(img, SIZE, interpolation=cv2.INTER_CUBIC)


def caught(q, in_charge: str) -> bool:
    """The degradation is detected if any of the checks in charge fails."""
    return any(not q.checks[c].ok for c in in_charge.split("+"))


def _one_image(job: tuple[Path, int]) -> tuple[list, dict, list]:
    """Assess one original and all its degradations: (original's checks, {degradation: qualities}, csv rows)."""
    path, seed = job
    rng = random.Random(seed)
    settings = QualitySettings()
    img = load_up(path)
    q = assess(synth.encode_jpeg(img), "dermoscopic", settings)
    rows = [[path.stem, "original"] + [q.checks[c].value for c in CHECK_NAMES]]
    orig = [q.ok] + [q.checks[c].ok for c in CHECK_NAMES]
    det = {}
    for name, in_charge, _, fn in DEGRADATIONS:
        qd = assess(synth.encode_jpeg(fn(img, rng)), "dermoscopic", settings)
        det[name] = (caught(qd, in_charge), not qd.ok)
        rows.append([path.stem, name] + [qd.checks[c].value for c in CHECK_NAMES])
    return orig, det, rows


def eval_degradations(images: list[Path], seed: int, out_csv: Path, jobs: int) -> None:
    """Assess originals and degraded copies; print false-reject and detection rates per check."""
    orig_fail = {c: 0 for c in CHECK_NAMES}
    orig_any = 0
    det = {d[0]: [0, 0] for d in DEGRADATIONS}  # caught, gate rejected (any check)
    rows = []
    t0 = time.time()
    work = [(p, seed * 100003 + i) for i, p in enumerate(images)]
    with multiprocessing.Pool(jobs, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
        for i, (orig, d, r) in enumerate(pool.imap(_one_image, work, chunksize=4)):
            orig_any += not orig[0]
            for c, ok in zip(CHECK_NAMES, orig[1:]):
                orig_fail[c] += not ok
            for name, (k, g) in d.items():
                det[name][0] += k
                det[name][1] += g
            rows.extend(r)
            if (i + 1) % 50 == 0:
                print(f"  {i + 1}/{len(images)} images, {time.time() - t0:.0f} s", flush=True)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "variant", *CHECK_NAMES])
        w.writerows(rows)
    n = len(images)
    print(f"\nFalse rejects on {n} originals (dermoscopic rules):")
    for c in CHECK_NAMES:
        print(f"  {c:<9} {100 * orig_fail[c] / n:5.1f} %")
    print(f"  {'any':<9} {100 * orig_any / n:5.1f} %  (the gate as a whole)")
    print("\nDetection of degraded images (check in charge fails; gate = any check fails):")
    print(f"  {'degradation':<12} {'class':<6} {'check':<18} {'detected':>9} {'gate':>7}")
    per_check: dict[str, list[int]] = {}
    for name, in_charge, cls, _ in DEGRADATIONS:
        print(f"  {name:<12} {cls:<6} {in_charge:<18} {100 * det[name][0] / n:8.1f}% {100 * det[name][1] / n:6.1f}%")
        if cls == "clear":
            acc = per_check.setdefault(in_charge, [0, 0])
            acc[0] += det[name][0]
            acc[1] += n
    print("\nPer check, clearly degraded images (goal >= 95 % detected, <= 5 % false rejects):")
    for in_charge, (k, m) in per_check.items():
        fr = max(orig_fail[c] for c in in_charge.split("+"))
        print(f"  {in_charge:<18} detected {100 * k / m:5.1f} %   false rejects {100 * fr / n:4.1f} %")
    print(f"\n(per-image values: {out_csv})")


def eval_masks(folder: Path, settings: QualitySettings) -> None:
    """Score the lesion segmentation and the framing verdict against the expert masks."""
    masks = sorted(folder.glob("*_expert.png"))
    ious, cerrs, agree, truth_cut, ours_cut = [], [], 0, 0, 0
    for mpath in masks:
        ipath = mpath.with_name(mpath.name.replace("_expert.png", ".jpg"))
        img = cv2.imread(str(ipath), cv2.IMREAD_COLOR)
        gt = cv2.imread(str(mpath), cv2.IMREAD_GRAYSCALE)
        if img is None or gt is None:
            continue
        h, w = gt.shape
        up = cv2.resize(img, SIZE, interpolation=cv2.INTER_CUBIC)
        work = decode(synth.encode_jpeg(up), settings.work_size, settings.focus_size, settings.analysis_size)
        fov = find_fov(cv2.cvtColor(work.small, cv2.COLOR_BGR2GRAY))
        les = segment_lesion(work.small, fov)
        ours = cv2.resize(les.mask, (w, h), interpolation=cv2.INTER_NEAREST) > 0
        g = gt > 127
        union = np.count_nonzero(ours | g)
        ious.append(np.count_nonzero(ours & g) / union if union else 1.0)
        if ours.any() and g.any():
            oy, ox = np.argwhere(ours).mean(axis=0)
            gy, gx = np.argwhere(g).mean(axis=0)
            cerrs.append(np.hypot(ox - gx, oy - gy) / np.hypot(w, h))
        # framing truth, the gate's rule applied to the expert's mask: the length of its outline
        # along the frame's edge over the circumference of a disc of its area is above
        # framing_max_border (unless it fills the view: framing_fill_area, framing_fill_offset) ...
        rules = settings.dermoscopic
        t_cut = False
        if g.any():
            contact = sum(np.count_nonzero(e) for e in (g[0], g[-1], g[:, 0], g[:, -1]))
            border = contact / (2.0 * np.sqrt(np.pi * np.count_nonzero(g)))
            gy, gx = np.argwhere(g).mean(axis=0)
            off = np.hypot(gx - (w - 1) / 2, gy - (h - 1) / 2) / (min(w, h) / 2)
            fills = np.count_nonzero(g) / g.size >= rules.framing_fill_area and off <= rules.framing_fill_offset
            # ... or its centre is further off than framing_max_offset allows
            t_cut = (border > rules.framing_max_border and not fills) or off > rules.framing_max_offset
        q = assess(synth.encode_jpeg(up), "dermoscopic", settings)
        o_cut = not q.checks["framing"].ok
        truth_cut += t_cut
        ours_cut += o_cut
        agree += t_cut == o_cut
    n = len(ious)
    ious_a, cerr_a = np.array(ious), np.array(cerrs)
    print(f"\nSegmentation vs expert masks ({n} images, {folder.name}):")
    print(f"  IoU median {np.median(ious_a):.3f}, mean {ious_a.mean():.3f}, >= 0.5 in "
          f"{100 * np.mean(ious_a >= 0.5):.1f} %")
    print(f"  centroid error (fraction of the image diagonal) median {np.median(cerr_a):.3f}, "
          f"90th percentile {np.percentile(cerr_a, 90):.3f}")
    print(f"  framing: badly framed by the expert mask (cut or off-centre) {truth_cut}/{n}; "
          f"framing check fails {ours_cut}/{n}; verdicts agree {100 * agree / n:.1f} %")


def main(argv: list[str] | None = None) -> int:
    """Run the degradation evaluation and the mask comparison; print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    ap.add_argument("--n", type=int, default=300, help="images sampled from ham10000 (default 300)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-masks", action="store_true")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "quality_eval.csv")
    args = ap.parse_args(argv)
    settings = QualitySettings()
    images = sorted((args.data / "ham10000" / "images").glob("*.jpg"))
    if not images:
        raise SystemExit(f"no images under {args.data / 'ham10000' / 'images'}")
    sample = random.Random(args.seed).sample(images, min(args.n, len(images)))
    cv2.setNumThreads(1)
    t0 = time.time()
    print(f"Quality gate evaluation: {len(sample)} HAM10000 images scaled to {SIZE[0]}x{SIZE[1]}, "
          f"{len(DEGRADATIONS)} degradations each")
    eval_degradations(sample, args.seed, args.out, args.jobs)
    if not args.skip_masks:
        eval_masks(args.data / "ham10000-masks", settings)
    print(f"\n{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
