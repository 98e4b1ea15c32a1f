"""Statistics the service report needs, on plain numbers: Wilson intervals, percentiles, working days, ROC."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np

from ..clock import bank_holidays

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float, float] | None:
    """The proportion ``successes / n`` with its Wilson score interval ``(p, low, high)``; None when ``n`` is 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation between order statistics (numpy's default)."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=float), q))


def working_days(starts: list[date], ends: list[date]) -> list[int]:
    """Working days in England after each start up to and including its end (as
    :func:`dashboard.clock.working_days_between`), for many pairs at once."""
    if not starts:
        return []
    return [int(x) for x in busdays(_days(starts), _days(ends))]


def busdays(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """:func:`working_days` on arrays of days since 1970-01-01 (integers or ``datetime64[D]``)."""
    a = np.asarray(starts).astype("datetime64[D]")
    b = np.asarray(ends).astype("datetime64[D]")
    if not len(a):
        return np.zeros(0, np.int64)
    lo, hi = a.min().astype(date), b.max().astype(date)
    hols = np.array(bank_holidays(lo, hi + timedelta(days=1)), dtype="datetime64[D]")
    a = a + 1
    b = b + 1
    return np.busday_count(a, np.maximum(a, b), holidays=hols).astype(np.int64)


_EPOCH = date(1970, 1, 1).toordinal()


def _days(days: list[date]) -> np.ndarray:
    """Dates as ``datetime64[D]`` through their ordinals (far quicker than numpy's parsing of date objects)."""
    return (np.fromiter((d.toordinal() for d in days), dtype=np.int64, count=len(days)) - _EPOCH).astype(
        "datetime64[D]")


def roc(scores: list[float], truths: list[bool]) -> dict | None:
    """The ROC curve (``fpr``, ``tpr`` lists, thresholds descending) and its AUC (ties handled as the
    Mann-Whitney statistic does); None without at least one positive and one negative."""
    s = np.asarray(scores, dtype=float)
    t = np.asarray(truths, dtype=bool)
    pos, neg = int(t.sum()), int((~t).sum())
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    distinct = np.r_[np.where(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(t)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / pos]
    fpr = np.r_[0.0, fps / neg]
    auc = float(np.trapezoid(tpr, fpr))
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": auc, "positives": pos, "negatives": neg}
