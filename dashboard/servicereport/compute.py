"""Every figure of the service report, from the lesion rows of :mod:`.data`.

Definitions (the report's own page repeats them):

- **volumes**: referrals, lesions and images of the referrals dated in the period; images sent with a quality
  override (the photographer's reason), and their share of the images.
- **final read** of a lesion: the third read if any, else the first once no second read is owed or the second
  agreed (as :func:`dashboard.reports.final_read`). **Re-image rate**: lesions whose final read is re-image over
  lesions with a final read. **Outcome mix**: final reads by management.
- **timeliness** (per referral whose reading is final): working days in England from the referral date to the
  day (Europe/London) its last lesion was signed (median and 90th percentile, numpy's linear interpolation);
  within the Faster Diagnosis Standard when that took at most ``fds_days`` (28) calendar days. **Breaches**:
  those decided later, and those still open more than ``fds_days`` after their referral date on ``as_of``.
- **concordance**, malignancy as the positive: the classifier positive for the cancer tier, a reader for a
  diagnosis in the hierarchy's Malignant branch, histology when ``malignant`` (indeterminate histology is
  left out of sensitivity and specificity). Pairs: classifier vs final read, classifier vs histology, final read
  vs histology, first read vs second read (the second as the reference). Sensitivity and specificity with Wilson
  95 % intervals. **ROC** where histology exists: malignancy (the summed probability of the cancer-tier classes)
  and melanoma (the ``mel`` probability; truth: the hierarchy's melanoma branch).
- groups: month of the referral date, hub, model version, Fitzpatrick group (I-II, III-IV, V-VI). Each count
  carries its number of distinct patients, for small-cell suppression in exports (:mod:`.export`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

from wire.messages import TIER_OF_LABEL
from wire.outcome import MANAGEMENT

from ..clock import FDS_DAYS, LONDON
from . import stats

TIERS = ("cancer", "pre-cancer", "benign")
HISTOLOGY = ("malignant", "indeterminate", "benign")
_TIER_OF_TOP = {"Malignant": "cancer", "Indeterminate": "pre-cancer", "Benign": "benign"}
_T_CODE = {None: -1, "cancer": 0, "pre-cancer": 1, "benign": 2}
_H_CODE = {None: -1, "malignant": 0, "indeterminate": 1, "benign": 2}
_MG_CODE = {m: i for i, m in enumerate(MANAGEMENT)}
FITZ_GROUPS = {"I": "I-II", "II": "I-II", "III": "III-IV", "IV": "III-IV", "V": "V-VI", "VI": "V-VI"}
DIMENSIONS = {"period": "Month", "hub": "Hub", "model": "Model version", "fitzpatrick": "Fitzpatrick group"}
PAIRS = {"classifier_reader": ("Classifier", "Dermatologist"), "classifier_histology": ("Classifier", "Histology"),
         "reader_histology": ("Dermatologist", "Histology"), "first_second": ("First reader", "Second reader")}
#: Below this many patients a count is a small cell (:mod:`.export` suppresses it): patients are counted exactly there.
EXACT_BELOW = 5
CANCER_LABELS = tuple(lab for lab, tier in TIER_OF_LABEL.items() if tier == "cancer")


@dataclass
class Cell:
    """A count and the number of distinct patients behind it (for suppression)."""

    n: int = 0
    p: int = 0


def tier_of(diagnosis: str | None) -> str | None:
    """A reader's diagnosis as a tier (None without one)."""
    return _TIER_OF_TOP[diagnosis.split(":")[0]] if diagnosis else None


def final_read(row: dict) -> tuple[str, str] | None:
    """``(diagnosis, management)`` of the read that stands for the lesion, or None while it is not final."""
    if row["third_dx"]:
        return row["third_dx"], row["third_mg"]
    if not row["first_dx"]:
        return None
    if row["second_read"] and not (row["second_dx"] and row["second_agrees"]):
        return None
    return row["first_dx"], row["first_mg"]


def decision_day(completed_at: str | None) -> date | None:
    """The day in England a referral's reading became final."""
    return datetime.fromisoformat(completed_at).astimezone(LONDON).date() if completed_at else None


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
    """A whole report: overall, per dimension, the tables, the breaches and the ROC curves."""

    start: date
    end: date
    as_of: date
    overall: Group
    groups: dict[str, list[Group]]
    tables: dict[str, dict[tuple[str, str], Cell]]
    breaches: list[dict]
    roc: dict[str, dict | None]


class _Counter:
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


def _codes(values: list[str]) -> tuple[np.ndarray, list[str]]:
    names = sorted(set(values))
    index = {v: i for i, v in enumerate(names)}
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values)), names


def compute(rows: list[dict], start: date, end: date, *, as_of: date | None = None, fds_days: int = FDS_DAYS) -> Report:
    """The report over the lesion rows (:func:`dashboard.servicereport.data.lesion_rows`)."""
    as_of = as_of or datetime.now(LONDON).date()
    n = len(rows)
    dims = {"period": [r["referral_date"][:7] for r in rows], "hub": [r["site"] for r in rows],
            "model": [r["model"] or "none" for r in rows],
            "fitzpatrick": [FITZ_GROUPS.get(r["fitzpatrick"] or "", "unknown") for r in rows]}
    pat = np.fromiter((r["patient"] for r in rows), dtype=np.int64, count=n)
    finals = [final_read(r) for r in rows]
    tier = [r["risk"] for r in rows]
    reader = [tier_of(f[0]) if f else None for f in finals]
    first = [tier_of(r["first_dx"]) for r in rows]
    second = [tier_of(r["second_dx"]) for r in rows]
    hist = [r["h_class"] for r in rows]
    arr = {
        "images": np.fromiter((r["images"] for r in rows), dtype=np.float64, count=n),
        "overrides": np.fromiter((r["overrides"] for r in rows), dtype=np.float64, count=n),
        "final": np.fromiter((f is not None for f in finals), dtype=bool, count=n),
    }
    mg_code = np.fromiter((_MG_CODE[f[1]] if f else -1 for f in finals), dtype=np.int8, count=n)
    outcome = {m: mg_code == i for i, m in enumerate(MANAGEMENT)}
    hist_code = np.fromiter((_H_CODE[h] for h in hist), dtype=np.int8, count=n)
    known_hist = (hist_code == 0) | (hist_code == 2)
    hist_pos = hist_code == 0

    def flags(values):
        code = np.fromiter((_T_CODE[v] for v in values), dtype=np.int8, count=n)
        return code >= 0, code == 0

    (has_tier, tier_pos), (has_reader, reader_pos) = flags(tier), flags(reader)
    (has_first, first_pos), (has_second, second_pos) = flags(first), flags(second)
    binaries = {"classifier_reader": (has_tier & has_reader, tier_pos, reader_pos),
                "classifier_histology": (has_tier & known_hist, tier_pos, hist_pos),
                "reader_histology": (has_reader & known_hist, reader_pos, hist_pos),
                "first_second": (has_first & has_second, first_pos, second_pos)}
    referral_rows, ref_first = _referrals(rows)
    out_groups, overall = {}, None
    for dim, values in [("all", ["all"] * n)] + list(dims.items()):
        codes, names = _codes(values)
        c = _Counter(codes, pat, len(names))
        groups = [Group(name) for name in names]
        _fill(groups, c, arr, outcome, binaries)
        _fill_referrals(groups, codes[ref_first], referral_rows, fds_days)
        if dim == "all":
            overall = groups[0] if groups else Group("all")
        else:
            out_groups[dim] = groups
    tables = {}
    has_hist = hist_code >= 0
    pairs = {"classifier_reader": ([t or "none" for t in tier], reader, has_reader),
             "classifier_histology": ([t or "none" for t in tier], hist, has_hist),
             "reader_histology": (reader, hist, has_reader & has_hist),
             "first_second": (first, second, has_first & has_second)}
    for pair, (a, b, ok) in pairs.items():
        idx = np.flatnonzero(ok)
        keys = [(a[i], b[i]) for i in idx]
        codes, names = _codes([f"{x}\t{y}" for x, y in keys]) if keys else (np.zeros(0, np.int64), [])
        cells = _Counter(codes, pat[idx], len(names)).cells() if keys else []
        tables[pair] = {tuple(name.split("\t")): cell for name, cell in zip(names, cells)}
    roc_in = {"malignancy": ([], []), "melanoma": ([], [])}
    for r in rows:
        if r["h_class"] in ("malignant", "benign") and r["probabilities"]:
            probs = r["probabilities"]
            roc_in["malignancy"][0].append(sum(probs.get(lab, 0.0) for lab in CANCER_LABELS))
            roc_in["malignancy"][1].append(r["h_class"] == "malignant")
            roc_in["melanoma"][0].append(probs.get("mel", 0.0))
            roc_in["melanoma"][1].append("(Melanoma)" in r["h_dx"])
    breaches = _breaches(referral_rows, as_of, fds_days)
    return Report(start, end, as_of, overall or Group("all"), out_groups, tables, breaches,
                  {name: stats.roc(s, t) for name, (s, t) in roc_in.items()})


def _fill(groups: list[Group], c: _Counter, arr: dict, outcome: dict, binaries: dict) -> None:
    """The lesion counts of each group."""
    images = np.bincount(c.codes, weights=arr["images"], minlength=c.size)
    for g, cell, im in zip(groups, c.cells(), images):
        g.lesions, g.images = cell, int(im)
    for g, cell in zip(groups, c.cells(weights=arr["overrides"])):
        g.override_images = cell
    for g, cell in zip(groups, c.cells(arr["final"])):
        g.finals = cell
    for m, mask in outcome.items():
        for g, cell in zip(groups, c.cells(mask)):
            g.outcomes[m] = cell
    for pair, (ok, test, truth) in binaries.items():
        parts = {"tp": ok & test & truth, "fp": ok & test & ~truth, "fn": ok & ~test & truth,
                 "tn": ok & ~test & ~truth, "pos": ok & truth, "neg": ok & ~truth}
        for part, mask in parts.items():
            for g, cell in zip(groups, c.cells(mask)):
                setattr(g.binary[pair], part, cell)


def _referrals(rows: list[dict]) -> tuple[dict, np.ndarray]:
    """Per referral (first lesion's row index order): key, hub, date, decision, patient, working days; and the
    index of each referral's first lesion."""
    first: dict[str, int] = {}
    for i, r in enumerate(rows):
        first.setdefault(r["key"], i)
    idx = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    refs = [rows[i] for i in idx]
    starts = [date.fromisoformat(r["referral_date"]) for r in refs]
    ends = [decision_day(r["completed_at"]) for r in refs]
    done = [i for i, e in enumerate(ends) if e is not None]
    wd = np.full(len(refs), -1, dtype=np.int64)
    cal = np.full(len(refs), -1, dtype=np.int64)
    if done:
        wd[done] = stats.working_days([starts[i] for i in done], [ends[i] for i in done])
        cal[done] = [(ends[i] - starts[i]).days for i in done]
    return {"refs": refs, "starts": starts, "wd": wd, "cal": cal,
            "patients": np.fromiter((r["patient"] for r in refs), dtype=np.int64, count=len(refs))}, idx


def _fill_referrals(groups: list[Group], codes: np.ndarray, ref: dict, fds_days: int) -> None:
    """Each group's referrals and timeliness (working days listed per group, for the median and p90)."""
    c = _Counter(codes, ref["patients"], len(groups))
    decided = ref["cal"] >= 0
    for name, mask in (("referrals", None), ("decided", decided), ("within", decided & (ref["cal"] <= fds_days)),
                       ("late", decided & (ref["cal"] > fds_days))):
        for g, cell in zip(groups, c.cells(mask)):
            setattr(g, name, cell)
    d_codes, d_wd = codes[decided], ref["wd"][decided]
    order = np.argsort(d_codes, kind="stable")
    bounds = np.searchsorted(d_codes[order], np.arange(len(groups) + 1))
    for i, g in enumerate(groups):
        g.working_days = d_wd[order[bounds[i]:bounds[i + 1]]].tolist()


def _breaches(ref: dict, as_of: date, fds_days: int) -> list[dict]:
    """The referrals decided after ``fds_days`` and those open past it on ``as_of``, longest first."""
    out = []
    open_idx = []
    for i, r in enumerate(ref["refs"]):
        cal = int(ref["cal"][i])
        if cal > fds_days:
            out.append({"referral_key": r["key"], "hub": r["site"], "referral_date": r["referral_date"],
                        "state": "decided late", "calendar_days": cal, "working_days": int(ref["wd"][i])})
        elif cal < 0 and (as_of - ref["starts"][i]).days > fds_days:
            open_idx.append(i)
    owd = stats.working_days([ref["starts"][i] for i in open_idx], [as_of] * len(open_idx))
    for i, days in zip(open_idx, owd):
        r = ref["refs"][i]
        out.append({"referral_key": r["key"], "hub": r["site"], "referral_date": r["referral_date"], "state": "open",
                    "calendar_days": (as_of - ref["starts"][i]).days, "working_days": days})
    out.sort(key=lambda b: (-b["calendar_days"], b["referral_key"]))
    return out
