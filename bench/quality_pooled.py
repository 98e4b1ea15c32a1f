"""Fit the uncalibrated kiosk's built-in colour reference, pooled over sources, on their fit halves.

    .venv/bin/python -m bench.quality_pooled [--n 600] [--sources ph2,isic2017,ham10000,bcn20000] [--leave-one-out]

A kiosk that has not been calibrated (``python -m edge calibrate``) judges colour against the
built-in ``KioskReference`` of ``wire/kioskconfig/quality.py``. This fits it as an equal-weight
mixture of the sources: each source's mean skin log-chromaticity (ln R/G, ln B/G, measured as the
gate measures it, ``edge.quality.calibrate.measure``, on the images as they are) and covariance;
the mixture's mean is the mean of the source means, its covariance the mean within-source
covariance plus the spread of the source means. Every source counts once however many images it
has, so one clinic's lighting does not become "normal" for all.

It prints the table to paste into the defaults, then, per source (fit half), the share of originals
whose distance exceeds ``colour_max`` and the share of the same skin colours shifted by a cast of
e^0.25 / e^0.4 towards red, blue, green and yellow that does (the cast moves the log-chromaticity
by its size), under the current default and the fitted one. That shift alone is an upper bound:
on real cast images (``python -m bench.quality_eval --uncalibrated``) fewer are caught, as a cast
also saturates channels and moves which pixels count as skin. Only fit halves are read (``bench.quality_sources.part_of``); nothing is written.

``--leave-one-out`` measures how the pooling generalises to a clinic it never saw: for each source, the
mixture of the *other* sources' fit halves judges this source's score half (false rejects of its
originals, and the shifted casts it still catches), beside the mixture of all of them. The sources are
four clinics: PH2 (Porto), ISIC 2017 (mostly New York), HAM10000 (Vienna, Queensland) and BCN20000
(Barcelona: 84-px squares, where colour is still measured); a source given only in ``HELD_OUT`` and not in
``--sources`` is judged against the mixture of all.
The last line: ``loso_colour_false_rejects SOURCE=X% ...``.
"""

from __future__ import annotations

import argparse

import numpy as np

from edge.quality import QualitySettings
from edge.quality.calibrate import measure

from .quality_sources import HELD_OUT, load_source

#: A cast towards each colour as a shift of (ln R/G, ln B/G) per unit of its log size.
CASTS = {"red": (1.0, 0.0), "blue": (0.0, 1.0), "green": (-1.0, -1.0), "yellow": (0.0, -1.0)}


def chroma_of(source: str, n: int, part: str = "fit") -> np.ndarray:
    """The skin log-chromaticity of up to ``n`` ``part``-half images of ``source`` (rows: ln R/G, ln B/G)."""
    settings = QualitySettings()
    rows = []
    for item in load_source(source, part, n, seed=0):
        got = measure(item.image.read_bytes(), settings)
        if not isinstance(got, str):
            rows.append(got[:2])
    return np.array(rows)


def mixture(samples: list[np.ndarray], spread: str = "predictive") -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the skin colour of a clinic like the sources: their equal-weight mean, and the
    mean within-source covariance plus the spread between clinics.

    ``spread="predictive"`` (the default, since 2026-12-05): the spread between the sources' means, taken
    the same in every direction (half the trace of their unbiased covariance per axis: three clinics do not
    say in which direction the next one differs) and widened by 1 + 1/k for the uncertainty of their mean,
    k the number of sources, so that it stands for a *new* clinic's lighting. Leaving one source out
    (``--leave-one-out``) showed the plug-in spread (``"plug-in"``: the sources' means' own covariance, the
    reference until then) to fit the sources it saw and refuse 13-20 % of a clinic it had not seen.
    """
    means = np.array([s.mean(axis=0) for s in samples])
    within = np.mean([np.cov(s.T) for s in samples], axis=0)
    k = len(means)
    if spread not in ("predictive", "plug-in"):
        raise ValueError(f"unknown spread {spread!r}: predictive or plug-in")
    if k < 2:
        between = np.zeros((2, 2))
    elif spread == "plug-in":
        between = np.cov(means.T, bias=True)
    else:
        between = np.eye(2) * np.trace(np.cov(means.T)) / 2 * (1 + 1 / k)
    return means.mean(axis=0), within + between


def distances(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of each row of ``x`` from the reference."""
    z = x - mean
    return np.sqrt(np.einsum("ij,jk,ik->i", z, np.linalg.inv(cov), z))


def report(name: str, mean: np.ndarray, cov: np.ndarray, by_source: dict[str, np.ndarray], limit: float) -> None:
    """Print false rejects and simulated cast detection per source under one reference."""
    print(f"{name}: chroma {np.round(mean, 3).tolist()} cov {np.round(cov, 4).tolist()}")
    for source, x in by_source.items():
        fr = 100 * float(np.mean(distances(x, mean, cov) > limit))
        det = {size: [100 * float(np.mean(distances(x + size * np.array(v), mean, cov) > limit))
                      for v in CASTS.values()] for size in (0.25, 0.4)}
        print(f"  {source:9s} n={len(x):3d} mean {np.round(x.mean(axis=0), 3).tolist()} false rejects {fr:4.1f} %   cast red/blue/green/yellow "
              f"moderate {'/'.join(f'{d:.0f}' for d in det[0.25])}  strong {'/'.join(f'{d:.0f}' for d in det[0.4])}")


def rates(x: np.ndarray, mean: np.ndarray, cov: np.ndarray, limit: float) -> tuple[float, float, float]:
    """(false rejects, moderate casts caught, strong casts caught) in %, casts as shifts of ``x`` (all four)."""
    fr = 100 * float(np.mean(distances(x, mean, cov) > limit))
    caught = {size: 100 * float(np.mean([np.mean(distances(x + size * np.array(v), mean, cov) > limit)
                                         for v in CASTS.values()])) for size in (0.25, 0.4)}
    return fr, caught[0.25], caught[0.4]


def leave_one_out(sources: list[str], n: int, limit: float) -> dict[str, float]:
    """Per source: the mixture fitted on the *other* sources' fit halves judges this source's score half (a
    clinic the built-in reference never saw), beside the mixture of all of them; a ``HELD_OUT`` source not
    among ``sources`` against the mixture of all. Both spreads (``mixture``). Returns the predictive spread's
    false rejects of each source left out."""
    fit = {s: chroma_of(s, n, "fit") for s in sources}
    scored = {s: chroma_of(s, n, "score") for s in dict.fromkeys((*sources, *HELD_OUT))}
    print(f"\nLeave one source out: the built-in colour reference pooled without a source judges that source's "
          f"score half (limit {limit});\ncasts as shifts of its skin colours, mean over red/blue/green/yellow; "
          "'all': the reference pooled over every source, as shipped")
    print(f"  {'spread':<11} {'source':<10} {'n':>4}   {'left out: false rejects, casts moderate / strong':<50} "
          f"{'all: false rejects, casts moderate / strong'}")
    out = {}
    for spread in ("plug-in", "predictive"):
        every = mixture(list(fit.values()), spread)
        for s, x in scored.items():
            left = rates(x, *mixture([fit[o] for o in sources if o != s], spread), limit) if s in fit else None
            fr, mod, strong = rates(x, *every, limit)
            shown = f"{left[0]:5.1f} %, {left[1]:5.1f} / {left[2]:5.1f} %" if left else "(never fitted on)"
            print(f"  {spread:<11} {s:<10} {len(x):>4}   {shown:<50} {fr:5.1f} %, {mod:5.1f} / {strong:5.1f} %")
            if spread == "predictive":
                out[s] = left[0] if left else fr
    return out


def main(argv: list[str] | None = None) -> int:
    """Fit and print the pooled reference and how it scores the fit halves against the current one."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600, help="fit-half images per source (default 600)")
    ap.add_argument("--sources", default="ph2,isic2017,ham10000,bcn20000")
    ap.add_argument("--leave-one-out", action="store_true",
                    help="instead: how the pooled reference judges a clinic it was not fitted on (score halves)")
    args = ap.parse_args(argv)
    if args.leave_one_out:
        got = leave_one_out(args.sources.split(","), args.n, QualitySettings().dermoscopic.colour_max)
        print("loso_colour_false_rejects " + " ".join(f"{s}={v:.1f}%" for s, v in got.items()))
        return 0
    by_source = {s: chroma_of(s, args.n) for s in args.sources.split(",")}
    mean, cov = mixture(list(by_source.values()))
    settings = QualitySettings()
    limit = settings.dermoscopic.colour_max
    ref = settings.reference
    report("current default", np.array(ref.chroma), np.array(ref.cov), by_source, limit)
    report("fitted mixture", mean, cov, by_source, limit)
    print(f"chroma = [{mean[0]:.3f}, {mean[1]:.3f}]")
    print(f"cov = [[{cov[0, 0]:.4f}, {cov[0, 1]:.4f}], [{cov[1, 0]:.4f}, {cov[1, 1]:.4f}]]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
