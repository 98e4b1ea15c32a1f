"""The focus ratio weighed by energy and evenly: which one reads the skin, and not its few strongest edges?

    .venv/bin/python -m bench.quality_focus_even [--n N] [--sources ph2,ham10000-masks] [--part all]

A calibration of today reads the focus check's ratio with every pixel of the region evenly weighed
(``KioskReference.focus_even``); the built-in normal and calibrations from before weigh each pixel by its own
gradient energy. On each original of the sources with expert masks, at the file's own size (as ``python -m edge
quality`` reads it), both measures (``edge.quality.focus_values``: ``worst`` and ``even_worst``) are read:

- on the original, by the share of the frame the expert's lesion covers (under 10 %, 10-35 %, over 35 %): a
  lesion filling the view should read as sharp as one with skin round it;
- on a copy with 14 specular glare spots (``synth.degrade_glare``, radius 20 px of a 1,600-px still, scaled to the
  file), as the detail left against the original's (r - 1 over r - 1): what glare hides is the glare check's
  business, and the spots' rims should not sway the focus reading either way.

The last line: ``focus_even glare_kept energy=A-B even=C-D | large_over_small SOURCE=E/F ...`` (the 5th-95th
percentile of the glare copies' detail kept, every source pooled; per source, the median ratio of the originals whose
lesion covers over 35 % of the frame over that of those under 10 %, weighed by energy / evenly). Nothing is written.
"""

from __future__ import annotations

import argparse
import multiprocessing
from pathlib import Path

import cv2
import numpy as np

from bench.quality_sources import DEFAULT_DATA, Item, load_source, mask
from edge.camera import synth
from edge.quality import QualitySettings, focus_values
from edge.quality.scene import scene

SETTINGS = QualitySettings()
#: The lesion's share of the frame, in bands: (lowest, highest, label).
BANDS = ((0.0, 0.10, "lesion < 10 %"), (0.10, 0.35, "10-35 %"), (0.35, 1.01, "> 35 %"))


def _read(jpeg: bytes) -> tuple[float, float]:
    """The energy-weighed and the even focus ratio of ``jpeg`` in the worst direction."""
    r = focus_values(scene(jpeg, SETTINGS, SETTINGS.dermoscopic))
    return r.worst, r.even_worst


def measure(item: Item) -> tuple[float, float, float, float, float]:
    """(lesion share, energy ratio, even ratio, glare copy's energy detail kept, its even detail kept) of ``item``
    at its own size."""
    img = cv2.imread(str(item.image), cv2.IMREAD_COLOR)
    m = mask(item)
    share = float(m.mean()) if m is not None else float("nan")
    energy, even = _read(synth.encode_jpeg(img))
    radius = 20 * max(img.shape[:2]) / 1600
    g_energy, g_even = _read(synth.encode_jpeg(synth.degrade_glare(img, 14, radius, seed=3)))
    return share, energy, even, _kept(g_energy, energy), _kept(g_even, even)


def _kept(after: float, before: float) -> float:
    """The detail a copy keeps of its original's (r - 1 over r - 1); NaN where the original holds almost none."""
    return (after - 1) / (before - 1) if before > 1.01 else float("nan")


def _glare_kept(rows: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The glare copies' detail kept, weighed by energy and evenly, over the ``measure`` rows whose original held
    detail."""
    return [(name, rows[:, col][np.isfinite(rows[:, col])]) for col, name in ((3, "energy"), (4, "even"))]


def main(argv: list[str] | None = None) -> int:
    """Print both measures per source and band, and the glare copies' detail kept; the last line as above."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sources", default="ph2,ham10000-masks")
    ap.add_argument("--part", default="all", choices=("fit", "score", "all"))
    ap.add_argument("--n", type=int, default=None, help="originals per source (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    pooled, big = [], []
    with multiprocessing.Pool(args.jobs) as pool:
        for source in args.sources.split(","):
            items = load_source(source, args.part, args.n, args.seed, args.data)
            rows = np.array(pool.map(measure, items, chunksize=2))
            pooled.append(rows)
            small, large = rows[:, 0] < 0.10, rows[:, 0] >= 0.35
            if small.any() and large.any():
                big.append(f"{source}=" + "/".join(f"{np.median(rows[large, c]) / np.median(rows[small, c]):.2f}"
                                                   for c in (1, 2)))
            print(f"{source}: {len(rows)} originals at their own size")
            for lo, hi, label in BANDS:
                k = (rows[:, 0] >= lo) & (rows[:, 0] < hi)
                if k.any():
                    print(f"  {label:14s} n={k.sum():3d}  median ratio energy {np.median(rows[k, 1]):.2f}  "
                          f"even {np.median(rows[k, 2]):.2f}")
            for name, v in _glare_kept(rows):
                print(f"  glare copies, detail kept ({name}): 5th {np.percentile(v, 5):.2f}  median "
                      f"{np.median(v):.2f}  95th {np.percentile(v, 95):.2f}")
    spans = {name: f"{np.percentile(v, 5):.2f}-{np.percentile(v, 95):.2f}"
             for name, v in _glare_kept(np.vstack(pooled))}
    print(f"focus_even glare_kept energy={spans['energy']} even={spans['even']} | "
          f"large_over_small {' '.join(big) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
