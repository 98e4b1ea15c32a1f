"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time


def timed(fn, runs: int, warmup: int = 1) -> list[float]:
    """Milliseconds of ``runs`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def median_p90(ms: list[float]) -> tuple[float, float]:
    """The median and the 90th percentile (nearest rank) of ``ms``."""
    return statistics.median(ms), sorted(ms)[max(0, int(round(0.9 * len(ms))) - 1)]
