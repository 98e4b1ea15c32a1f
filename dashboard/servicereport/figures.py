"""The figures of a service report: counts with their distinct patients (:class:`Cell`), 2x2 tables
(:class:`Binary`), one group's figures (:class:`Group`), the whole :class:`Report`, and :class:`Counter`, which
counts per group code with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np

from wire.outcome import MANAGEMENT

from . import stats

PAIRS = {"classifier_reader": ("Classifier", "Dermatologist"), "classifier_histology": ("Classifier", "Histology"),
         "reader_histology": ("Dermatologist", "Histology"), "first_second": ("First reader", "Second reader")}
#: Below this many patients a count is a small cell (:mod:`.export` suppresses it): patients are counted exactly there.
EXACT_BELOW = 5


@dataclass
class Cell:
    """A count and the number of distinct patients behind it (for suppression)."""

    n: int = 0
    p: int = 0


@dataclass
class Binary:
    """A 2x2 table, malignancy positive: test against reference; ``pos``/``neg``: the reference's positives and
    negatives (the denominators of sensitivity and specificity)."""

    tp: Cell = field(default_factory=Cell)
    fp: Cell = field(default_factory=Cell)
    fn: Cell = field(default_factory=Cell)
    tn: Cell = field(default_factory=Cell)
    pos: Cell = field(default_factory=Cell)
    neg: Cell = field(default_factory=Cell)

    def sensitivity(self):
        """``(p, low, high)`` or None."""
        return stats.wilson(self.tp.n, self.tp.n + self.fn.n)

    def specificity(self):
        """``(p, low, high)`` or None."""
        return stats.wilson(self.tn.n, self.tn.n + self.fp.n)


@dataclass
class Group:
    """The figures of one group (or of the whole period)."""

    name: str
    referrals: Cell = field(default_factory=Cell)
    lesions: Cell = field(default_factory=Cell)
    images: int = 0
    override_images: Cell = field(default_factory=Cell)
    finals: Cell = field(default_factory=Cell)
    outcomes: dict = field(default_factory=lambda: {m: Cell() for m in MANAGEMENT})
    decided: Cell = field(default_factory=Cell)
    within: Cell = field(default_factory=Cell)
    late: Cell = field(default_factory=Cell)
    working_days: list = field(default_factory=list)
    binary: dict = field(default_factory=lambda: {p: Binary() for p in PAIRS})

    @property
    def patients(self) -> int:
        """Distinct patients in the group."""
        return self.lesions.p

    @property
    def reimage(self) -> Cell:
        """Lesions whose final read is re-image."""
        return self.outcomes["re-image"]

    def median(self):
        """Median working days to decision."""
        return stats.percentile(self.working_days, 50)

    def p90(self):
        """90th percentile of working days to decision."""
        return stats.percentile(self.working_days, 90)


@dataclass
class Report:
    """A whole report: overall, per dimension, the tables, the breaches, the ROC curves (``roc``: by curve name;
    ``roc_by_model``: by model version, then curve name)."""

    start: date
    end: date
    as_of: date
    overall: Group
    groups: dict[str, list[Group]]
    tables: dict[str, dict[tuple[str, str], Cell]]
    breaches: list[dict]
    roc: dict[str, dict | None]
    roc_by_model: dict[str, dict[str, dict | None]] = field(default_factory=dict)


class Counter:
    """Counts and distinct patients per group code, for one set of codes (one dimension).

    The distinct patients of a count are worked out exactly only where they could be fewer than
    :data:`EXACT_BELOW` (the suppression threshold): elsewhere ``p`` is the lower bound ``ceil(n / most)``,
    ``most`` being the most items any one patient has here, which already shows it is not a small cell."""

    def __init__(self, codes: np.ndarray, patients: np.ndarray, size: int):
        self.codes, self.patients, self.size = codes, patients, size
        self.width = int(patients.max()) + 1 if len(patients) else 1
        self.most = int(np.bincount(patients).max()) if len(patients) else 1

    def cells(self, mask: np.ndarray | None = None, weights: np.ndarray | None = None) -> list[Cell]:
        """Per group: how many items ``mask`` keeps (or the sum of ``weights``) and their distinct patients."""
        codes, pats = self.codes, self.patients
        if mask is not None:
            codes, pats = codes[mask], pats[mask]
            weights = weights[mask] if weights is not None else None
        if weights is not None:
            keep = weights > 0
            n = np.bincount(codes, weights=weights, minlength=self.size)
            codes, pats = codes[keep], pats[keep]
        else:
            n = None
        items = np.bincount(codes, minlength=self.size)
        n = items if n is None else n
        p = -(-items // self.most)
        exact = items < EXACT_BELOW * self.most
        if exact.any():
            sel = exact[codes]
            pairs = np.unique(codes[sel].astype(np.int64) * self.width + pats[sel])
            p = np.where(exact, np.bincount(pairs // self.width, minlength=self.size), p)
        return [Cell(int(a), int(b)) for a, b in zip(n, p)]
