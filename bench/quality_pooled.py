"""Fit the uncalibrated kiosk's built-in colour reference, pooled over sources, on their fit halves.

    .venv/bin/python -m bench.quality_pooled [--n 600] [--sources ph2,isic2017,ham10000]

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
"""

from __future__ import annotations

import argparse

import numpy as np

from edge.quality import QualitySettings
from edge.quality.calibrate import measure

from .quality_sources import load_source

#: A cast towards each colour as a shift of (ln R/G, ln B/G) per unit of its log size.
CASTS = {"red": (1.0, 0.0), "blue": (0.0, 1.0), "green": (-1.0, -1.0), "yellow": (0.0, -1.0)}


def chroma_of(source: str, n: int) -> np.ndarray:
    """The skin log-chromaticity of up to ``n`` fit-half images of ``source`` (rows: ln R/G, ln B/G)."""
    settings = QualitySettings()
    rows = []
    for item in load_source(source, "fit", n, seed=0):
        got = measure(item.image.read_bytes(), settings)
        if not isinstance(got, str):
            rows.append(got[:2])
    return np.array(rows)


def mixture(samples: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the equal-weight mixture of the sources' skin colours."""
    means = np.array([s.mean(axis=0) for s in samples])
    within = np.mean([np.cov(s.T) for s in samples], axis=0)
    return means.mean(axis=0), within + np.cov(means.T, bias=True)


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


def main(argv: list[str] | None = None) -> int:
    """Fit and print the pooled reference and how it scores the fit halves against the current one."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600, help="fit-half images per source (default 600)")
    ap.add_argument("--sources", default="ph2,isic2017,ham10000")
    args = ap.parse_args(argv)
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
