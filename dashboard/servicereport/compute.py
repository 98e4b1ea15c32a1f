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

from wire.messages import TIER_OF_LABEL
from wire.outcome import MANAGEMENT

from ..clock import FDS_DAYS, LONDON
from . import stats

TIERS = ("cancer", "pre-cancer", "benign")
HISTOLOGY = ("malignant", "indeterminate", "benign")
_TIER_OF_TOP = {"Malignant": "cancer", "Indeterminate": "pre-cancer", "Benign": "benign"}
FITZ_GROUPS = {"I": "I-II", "II": "I-II", "III": "III-IV", "IV": "III-IV", "V": "V-VI", "VI": "V-VI"}
DIMENSIONS = {"period": "Month", "hub": "Hub", "model": "Model version", "fitzpatrick": "Fitzpatrick group"}
PAIRS = {"classifier_reader": ("Classifier", "Dermatologist"), "classifier_histology": ("Classifier", "Histology"),
         "reader_histology": ("Dermatologist", "Histology"), "first_second": ("First reader", "Second reader")}
CANCER_LABELS = tuple(lab for lab, tier in TIER_OF_LABEL.items() if tier == "cancer")


class Cell:
    """A count and the patients behind it (for suppression)."""

    __slots__ = ("n", "patients")

    def __init__(self):
        """An empty count."""
        self.n = 0
        self.patients: set[int] = set()

    def add(self, patient: int) -> None:
        """Count one more, for ``patient``."""
        self.n += 1
        self.patients.add(patient)

    @property
    def p(self) -> int:
        """How many distinct patients."""
        return len(self.patients)


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
    """A 2x2 table, malignancy positive: test (rows) against reference (columns)."""

    tp: Cell = field(default_factory=Cell)
    fp: Cell = field(default_factory=Cell)
    fn: Cell = field(default_factory=Cell)
    tn: Cell = field(default_factory=Cell)

    def add(self, test: bool, truth: bool, patient: int) -> None:
        """Count one lesion."""
        (self.tp if test and truth else self.fp if test else self.fn if truth else self.tn).add(patient)

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


def _keys(row: dict) -> dict[str, str]:
    return {"period": row["referral_date"][:7], "hub": row["site"], "model": row["model"] or "none",
            "fitzpatrick": FITZ_GROUPS.get(row["fitzpatrick"] or "", "unknown")}


def compute(rows: list[dict], start: date, end: date, *, as_of: date | None = None, fds_days: int = FDS_DAYS) -> Report:
    """The report over the lesion rows (:func:`dashboard.servicereport.data.lesion_rows`)."""
    as_of = as_of or datetime.now(LONDON).date()
    overall = Group("all")
    groups: dict[str, dict[str, Group]] = {d: {} for d in DIMENSIONS}
    tables = {p: {} for p in PAIRS}
    roc_in = {"malignancy": ([], []), "melanoma": ([], [])}
    referrals: dict[str, dict] = {}
    for row in rows:
        keys = _keys(row)
        targets = [overall] + [groups[d].setdefault(k, Group(k)) for d, k in keys.items()]
        pat = row["patient"]
        ref = referrals.get(row["key"])
        if ref is None:
            ref = referrals[row["key"]] = {"key": row["key"], "site": row["site"], "date": row["referral_date"],
                                           "completed_at": row["completed_at"], "patient": pat, "targets": targets}
        final = final_read(row)
        tier, reader = row["risk"], tier_of(final[0]) if final else None
        first, second = tier_of(row["first_dx"]), tier_of(row["second_dx"])
        hist = row["h_class"]
        cells = [("classifier_reader", tier or "none", reader, reader is not None),
                 ("classifier_histology", tier or "none", hist, hist is not None),
                 ("reader_histology", reader, hist, hist is not None and reader is not None),
                 ("first_second", first, second, second is not None and first is not None)]
        for pair, a, b, ok in cells:
            if ok:
                tables[pair].setdefault((a, b), Cell()).add(pat)
        for g in targets:
            g.lesions.add(pat)
            g.images += row["images"]
            for _ in range(row["overrides"]):
                g.override_images.add(pat)
            if final:
                g.finals.add(pat)
                g.outcomes[final[1]].add(pat)
            if tier and reader:
                g.binary["classifier_reader"].add(tier == "cancer", reader == "cancer", pat)
            if hist in ("malignant", "benign"):
                if tier:
                    g.binary["classifier_histology"].add(tier == "cancer", hist == "malignant", pat)
                if reader:
                    g.binary["reader_histology"].add(reader == "cancer", hist == "malignant", pat)
            if first and second:
                g.binary["first_second"].add(first == "cancer", second == "cancer", pat)
        if hist in ("malignant", "benign") and row["probabilities"]:
            probs = row["probabilities"]
            roc_in["malignancy"][0].append(sum(probs.get(lab, 0.0) for lab in CANCER_LABELS))
            roc_in["malignancy"][1].append(hist == "malignant")
            roc_in["melanoma"][0].append(probs.get("mel", 0.0))
            roc_in["melanoma"][1].append("(Melanoma)" in row["h_dx"])
    breaches = _timeliness(referrals, as_of, fds_days)
    return Report(start, end, as_of, overall,
                  {d: [v[k] for k in sorted(v)] for d, v in groups.items()}, tables, breaches,
                  {name: stats.roc(s, t) for name, (s, t) in roc_in.items()})


def _timeliness(referrals: dict[str, dict], as_of: date, fds_days: int) -> list[dict]:
    """Fill each group's timeliness from the referrals; return the breaches, longest first."""
    refs = list(referrals.values())
    done = [(r, date.fromisoformat(r["date"]), decision_day(r["completed_at"])) for r in refs if r["completed_at"]]
    wd = stats.working_days([d for _, d, _ in done], [e for _, _, e in done])
    breaches = []
    for r in refs:
        for g in r["targets"]:
            g.referrals.add(r["patient"])
    for (r, start, end), days in zip(done, wd):
        calendar = (end - start).days
        for g in r["targets"]:
            g.decided.add(r["patient"])
            g.working_days.append(days)
            (g.within if calendar <= fds_days else g.late).add(r["patient"])
        if calendar > fds_days:
            breaches.append({"referral_key": r["key"], "hub": r["site"], "referral_date": r["date"],
                             "state": "decided late", "calendar_days": calendar, "working_days": days})
    open_refs = [r for r in refs if not r["completed_at"] and (as_of - date.fromisoformat(r["date"])).days > fds_days]
    owd = stats.working_days([date.fromisoformat(r["date"]) for r in open_refs], [as_of] * len(open_refs))
    for r, days in zip(open_refs, owd):
        breaches.append({"referral_key": r["key"], "hub": r["site"], "referral_date": r["date"], "state": "open",
                         "calendar_days": (as_of - date.fromisoformat(r["date"])).days, "working_days": days})
    breaches.sort(key=lambda b: (-b["calendar_days"], b["referral_key"]))
    return breaches
