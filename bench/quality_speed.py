"""Time the quality gate on a 12 MP frame, beside a full decode of the same JPEG.

    .venv/bin/python -m bench.quality_speed [--runs 30] [--width 4056 --height 3040]

Goal: the whole gate (DCT-reduced decode + every dermoscopic check) in <= 60 ms.
Uses a generated lesion image (no data needed); prints medians and 90th percentiles.
"""

from __future__ import annotations

import argparse
import statistics

import cv2
import numpy as np

from edge.camera import synth
from edge.quality import QualitySettings, assess
from bench.timing import median_p90, timed
from edge.quality.analysis import decode


def _fmt(name: str, ms: list[float]) -> str:
    med, p90 = median_p90(ms)
    return f"  {name:<38} median {med:6.1f} ms   p90 {p90:6.1f} ms"


def main(argv: list[str] | None = None) -> int:
    """Print the gate's time on a 12 MP JPEG and a full decode's, in the same run."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--width", type=int, default=4056)
    ap.add_argument("--height", type=int, default=3040)
    ap.add_argument("--quality", type=int, default=92, help="JPEG quality of the test frame")
    args = ap.parse_args(argv)
    img = synth.lesion_image(args.width, args.height, seed=1)
    data = synth.encode_jpeg(img, args.quality)
    buf = np.frombuffer(data, np.uint8)
    s = QualitySettings()
    print(f"Quality gate speed: {args.width}x{args.height} JPEG q{args.quality} ({len(data) / 1e6:.1f} MB), "
          f"{args.runs} runs, OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads")
    full = timed(lambda: cv2.imdecode(buf, cv2.IMREAD_COLOR), args.runs)
    red = timed(lambda: decode(data, s.work_size, s.focus_size, s.analysis_size), args.runs)
    gate = {v: timed(lambda v=v: assess(data, v, s), args.runs) for v in ("dermoscopic", "close-up", "regional")}
    w = decode(data, s.work_size, s.focus_size, s.analysis_size)
    print(_fmt("full decode (cv2.IMREAD_COLOR)", full))
    print(_fmt(f"gate decode path (1/{w.reduction} DCT + resize)", red))
    for v, ms in gate.items():
        print(_fmt(f"whole gate, {v}", ms))
    ok = statistics.median(gate["dermoscopic"]) <= 60
    print(f"  goal <= 60 ms for the whole gate: {'met' if ok else 'NOT met'}; "
          f"full decode alone is {statistics.median(full) / statistics.median(red):.1f}x the gate's decode path")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
