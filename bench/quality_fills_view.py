"""A lesion larger than the dermatoscope's view: is its photograph refused for what it cannot show?

    .venv/bin/python -m bench.quality_fills_view [--part score] [--cover 0.93] [--sources ph2,ham10000-masks]

A lesion wider than the view (a large seborrhoeic keratosis, a lentigo maligna, a congenital naevus) fills the
dermoscopic photograph: there is no skin round it. The gate reads exposure and colour on the skin and looks for
the lesion's outline, so it took the lesion's paler parts for skin ("Image is too dark", a "cast") or found no
lesion, and the photographer could not fix any of it. Such photographs are made from the sources with expert
masks: per original, the largest 4:3 window round the lesion's centre that the expert mask covers by ``--cover``
or more (from 0.9 of the still's width down to 0.35; none where even that is not covered), brought back to a
kiosk-like still, as a dermatoscope with a narrower view would show the lesion. Each window is judged by the
uncalibrated gate (the built-in reference) without and with the photographer's mark (``assess(...,
fills_view=True)``), as are its copies under-exposed by 2 and 3 stops (``bench.quality_degrade``'s moderate and
strong grades), over-exposed by 1 and 1.75 stops (caught by the exposure or the clipping check) and with a strong
colour cast (towards red, blue, green and yellow in turn, e^0.4).

Printed per source: the windows refused (the whole gate, and the checks the mark changes: exposure, colour,
lesion, framing), and the copies caught, without -> with the mark; the enlargement of a window softens it, so
focus refusals are shown apart. Nothing is written (``../shared/data``'s rules).

The last line: ``fills_view_false_rejects before=A% after=B% under_moderate_caught=C%->D%
under_strong_caught=E%->F% over_moderate_caught=... over_strong_caught=... cast_strong_caught=G%->H%`` (every
source pooled; false rejects by the checks the mark changes).
"""

from __future__ import annotations

import argparse
import multiprocessing

import cv2
import numpy as np

from bench.quality_degrade import cast
from bench.quality_sources import DEFAULT_DATA, Item, load_source, mask, still
from edge.camera import synth
from edge.quality import assess

#: The checks the photographer's mark changes (``edge.quality.NOT_JUDGED`` and the exposure check's floor).
MARKED = ("exposure", "colour", "lesion", "framing")
#: The copies judged besides the window itself: name -> how it is made from the window (its index picks the
#: cast's direction, so that each direction is taken in turn).
COPIES = {
    "under_moderate": lambda img, i: synth.degrade_exposure(img, -2.0),
    "under_strong": lambda img, i: synth.degrade_exposure(img, -3.0),
    "over_moderate": lambda img, i: synth.degrade_exposure(img, 1.0),
    "over_strong": lambda img, i: synth.degrade_exposure(img, 1.75),
    "cast_strong": lambda img, i: cast(img, ("red", "blue", "green", "yellow")[i % 4], 0.4),
}
#: The detection a copy counts: the check in charge of it.
IN_CHARGE = {"under_moderate": ("exposure",), "under_strong": ("exposure",), "over_moderate": ("exposure", "clipping"),
             "over_strong": ("exposure", "clipping"), "cast_strong": ("colour",)}


def fill_window(img: np.ndarray, lesion: np.ndarray, cover: float) -> np.ndarray | None:
    """The largest 4:3 window round the centre of ``lesion`` (bool mask, ``img``'s size) that the lesion covers
    by ``cover`` or more, widths 0.9 down to 0.35 of ``img``'s, enlarged back to ``img``'s size; None if none."""
    h, w = lesion.shape
    ys, xs = np.nonzero(lesion)
    if xs.size == 0:
        return None
    cx, cy = float(xs.mean()), float(ys.mean())
    for frac in np.arange(0.9, 0.34, -0.05):
        cw, ch = int(w * frac), int(w * frac * 0.75)
        if ch > h:
            continue
        x0, y0 = int(np.clip(cx - cw / 2, 0, w - cw)), int(np.clip(cy - ch / 2, 0, h - ch))
        if lesion[y0:y0 + ch, x0:x0 + cw].mean() >= cover:
            return cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_CUBIC)
    return None


def _fails(img: np.ndarray, fills_view: bool) -> set[str]:
    """The checks that refuse ``img`` (encoded as the kiosk's camera does), with or without the mark."""
    q = assess(synth.encode_jpeg(img), "dermoscopic", fills_view=fills_view)
    return {name for name, c in q.checks.items() if not c.ok}


def _judge(job: tuple[int, Item, float]) -> dict[str, tuple[set[str], set[str]]] | None:
    """Per copy (the window itself: "window"): the failing checks without and with the mark; None: no window."""
    i, item, cover = job
    lesion = mask(item)
    window = fill_window(still(item), lesion, cover) if lesion is not None else None
    if window is None:
        return None
    copies = {"window": window, **{name: make(window, i) for name, make in COPIES.items()}}
    return {name: (_fails(img, False), _fails(img, True)) for name, img in copies.items()}


def main(argv: list[str] | None = None) -> int:
    """Print, per source, the windows refused and the degraded copies caught without and with the mark."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", default="score", choices=("score", "fit", "all"))
    ap.add_argument("--cover", type=float, default=0.93, help="least share of the window the expert mask covers")
    ap.add_argument("--sources", default="ph2,ham10000-masks", help="sources with expert masks")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)  # before the pool forks: a child inheriting OpenCV's busy thread pool hangs
    pooled: dict[str, list[tuple[set[str], set[str]]]] = {name: [] for name in ("window", *COPIES)}
    print("windows the lesion fills, uncalibrated gate, without -> with the photographer's mark")
    for source in args.sources.split(","):
        items = load_source(source, args.part, None, 0, DEFAULT_DATA)
        with multiprocessing.Pool(args.jobs, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
            results = [r for r in pool.map(_judge, [(i, it, args.cover) for i, it in enumerate(items)], chunksize=2)
                       if r is not None]
        for name in pooled:
            pooled[name].extend(r[name] for r in results)
        win = [r["window"] for r in results]
        cells = [f"refused {_pct(win, 0, MARKED)} -> {_pct(win, 1, MARKED)} by {'/'.join(MARKED)}",
                 f"whole gate {_pct(win, 0)} -> {_pct(win, 1)}", f"focus {_pct(win, 1, ('focus',))}"]
        for name in COPIES:
            got = [r[name] for r in results]
            cells.append(f"{name} caught {_pct(got, 0, IN_CHARGE[name])} -> {_pct(got, 1, IN_CHARGE[name])}")
        print(f"  {source:15s} ({len(results)} windows of {len(items)}): " + ", ".join(cells))
        for name, why in _tally(win).items():
            print(f"    {name}: {why}")
    p = {name: (_pct(got, 0, MARKED if name == "window" else IN_CHARGE[name], ""),
                _pct(got, 1, MARKED if name == "window" else IN_CHARGE[name], "")) for name, got in pooled.items()}
    print(f"fills_view_false_rejects before={p['window'][0]}% after={p['window'][1]}% "
          f"under_moderate_caught={p['under_moderate'][0]}%->{p['under_moderate'][1]}% "
          f"under_strong_caught={p['under_strong'][0]}%->{p['under_strong'][1]}% "
          f"over_moderate_caught={p['over_moderate'][0]}%->{p['over_moderate'][1]}% "
          f"over_strong_caught={p['over_strong'][0]}%->{p['over_strong'][1]}% "
          f"cast_strong_caught={p['cast_strong'][0]}%->{p['cast_strong'][1]}%")
    return 0


def _pct(got: list[tuple[set[str], set[str]]], which: int, checks: tuple[str, ...] | None = None,
         unit: str = " %") -> str:
    """The share of ``got`` failing (without the mark: ``which`` 0; with it: 1) any of ``checks`` (None: any
    check), in per cent to one decimal."""
    hits = [bool(g[which] & set(checks)) if checks else bool(g[which]) for g in got]
    return f"{100 * np.mean(hits):.1f}{unit}" if got else "n/a"


def _tally(win: list[tuple[set[str], set[str]]]) -> dict[str, str]:
    """How many windows each check refuses, without and with the mark."""
    out = {}
    for k, label in ((0, "without the mark"), (1, "with it")):
        counts: dict[str, int] = {}
        for g in win:
            for name in g[k]:
                counts[name] = counts.get(name, 0) + 1
        out[label] = ", ".join(f"{n} {c}" for n, c in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"
    return out


if __name__ == "__main__":
    raise SystemExit(main())
