"""Benchmark: int8 lesion-classifier latency on this machine (run on demand, prints figures).

    .venv/bin/python bench/classifier_speed.py [--threads 2] [--runs 200]

Measures, in one run: bare ``invoke()`` on a prepared input, the kiosk's full
``classify()`` (preprocess + invoke + softmax + tier) on a 1000-px frame, the
4-flip test-time augmentation, and the lesion-centred crop alone (the quality
gate's segmentation at 400 px wide; part of ``classify()`` when the manifest's
``input.crop`` is ``lesion-square``). Reports median and p90 in milliseconds,
and the ratios, which are what to compare across these noisy machines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import median_p90, timed  # noqa: E402
from edge.classifier import DEFAULT_MODEL_DIR, Classifier, lesion_square  # noqa: E402


def main() -> None:
    """Print the figures."""
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=200)
    a = p.parse_args()
    clf = Classifier(DEFAULT_MODEL_DIR, threads=a.threads)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (750, 1000, 3), dtype=np.uint8)
    lesion = np.empty((750, 1000, 3), np.uint8)
    lesion[:] = (150, 170, 215)
    yy, xx = np.mgrid[0:750, 0:1000]
    lesion[(yy - 330) ** 2 + (xx - 560) ** 2 < 110 ** 2] = (60, 70, 110)
    lesion = np.clip(lesion + rng.normal(0, 5, lesion.shape), 0, 255).astype(np.uint8)
    tensor = clf.preprocess(frame)
    rows = {
        "invoke (int8, bare)": timed(lambda: clf.invoke(tensor), a.runs, warmup=10),
        "classify (preprocess+invoke+tier)": timed(lambda: clf.classify(frame), a.runs, warmup=10),
        "classify with 4-flip TTA": timed(lambda: clf.classify(frame, tta=True), max(20, a.runs // 4), warmup=10),
        "lesion-square crop alone": timed(lambda: lesion_square(lesion), a.runs, warmup=10),
    }
    size = (DEFAULT_MODEL_DIR / "model.tflite").stat().st_size
    print(f"model {clf.version}  {size / 1e6:.2f} MB  threads={a.threads}  crop={clf.manifest.input.crop}")
    base = statistics.median(rows["invoke (int8, bare)"])
    for name, ms in rows.items():
        med, p90 = median_p90(ms)
        print(f"{name:36s} median {med:7.2f} ms   p90 {p90:7.2f} ms   x{med / base:.2f} of bare invoke")


if __name__ == "__main__":
    main()
