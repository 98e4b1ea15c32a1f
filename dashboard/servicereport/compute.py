"""Every figure of the service report, from the lesion columns of :mod:`.data`, with numpy (no Python object per
lesion).

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
  and melanoma (the ``mel`` probability; truth: the hierarchy's melanoma branch), overall and per model version.
- groups: month of the referral date, hub, model version, Fitzpatrick group (I-II, III-IV, V-VI). Each count
  carries its number of distinct patients, for small-cell suppression in exports (:mod:`.export`).
"""

from __future__ import annotations

from datetime import date, datetime
from itertools import count

import numpy as np

from wire.outcome import MANAGEMENT

from ..clock import FDS_DAYS, LONDON
from . import stats
from .data import CANCER_LABELS, HISTOLOGY, TIERS, Lesions
from .figures import EXACT_BELOW, PAIRS, Binary, Cell, Counter, Group, Report

__all__ = ["CANCER_LABELS", "DIMENSIONS", "EXACT_BELOW", "FITZ_GROUPS", "HISTOLOGY", "PAIRS", "TIERS", "Binary",
           "Cell", "Group", "Report", "compute"]

FITZ_GROUPS = {"I": "I-II", "II": "I-II", "III": "III-IV", "IV": "III-IV", "V": "V-VI", "VI": "V-VI"}
DIMENSIONS = {"period": "Month", "hub": "Hub", "model": "Model version", "fitzpatrick": "Fitzpatrick group"}
_EPOCH = date(1970, 1, 1).toordinal()


def _codes(values: list) -> tuple[np.ndarray, list[str]]:
    """Each value's index among the sorted distinct values, and those values."""
    if not values:
        return np.zeros(0, np.int64), []
    first: dict = {}
    seen = np.fromiter(map(first.setdefault, values, count()), dtype=np.int64, count=len(values))
    where, inverse = np.unique(seen, return_inverse=True)
    found = [values[i] for i in where.tolist()]
    order = sorted(range(len(found)), key=found.__getitem__)
    rank = np.empty(len(found), np.int64)
    rank[order] = np.arange(len(found))
    return rank[inverse], [found[i] for i in order]


def _months(days: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Days since 1970 as month codes and the months' names (YYYY-MM), sorted."""
    months = days.astype("datetime64[D]").astype("datetime64[M]")
    uniq, codes = np.unique(months, return_inverse=True)
    return codes.astype(np.int64), [str(m) for m in np.datetime_as_string(uniq, unit="M")]


def _final(les: Lesions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per lesion: whether its read is final, the final read's tier and management codes (-1 while not final).

    The read that stands: the third if any, else the first once no second read is owed or the second agreed (as
    :func:`dashboard.reports.final_read`)."""
    has_third = les.third_tier >= 0
    blocked = les.second_owed & ~((les.second_tier >= 0) & les.second_agrees)
    use_first = ~has_third & (les.first_tier >= 0) & ~blocked
    final = has_third | use_first
    tier = np.where(has_third, les.third_tier, np.where(use_first, les.first_tier, -1))
    mg = np.where(has_third, les.third_mg, np.where(use_first, les.first_mg, -1))
    return final, tier, mg


def compute(les: Lesions, start: date, end: date, *, as_of: date | None = None, fds_days: int = FDS_DAYS) -> Report:
    """The report over the lesions (:func:`dashboard.servicereport.data.lesion_rows`)."""
    as_of = as_of or datetime.now(LONDON).date()
    n = les.n
    ref = les.ref
    fitz_codes, fitz_names = _codes([FITZ_GROUPS.get(f or "", "unknown") for f in les.ref_fitzpatrick])
    month_codes, month_names = _months(les.ref_day)
    model_codes, model_names = _codes([m or "none" for m in les.model])
    dims = {"period": (month_codes[ref], month_names), "hub": _codes(les.site), "model": (model_codes, model_names),
            "fitzpatrick": (fitz_codes[ref], fitz_names)}
    pat = les.ref_patient[ref]
    final, reader, mg_code = _final(les)
    arr = {"images": les.images.astype(np.float64), "overrides": les.overrides.astype(np.float64), "final": final}
    outcome = {m: mg_code == i for i, m in enumerate(MANAGEMENT)}
    known_hist = (les.hist == 0) | (les.hist == 2)
    hist_pos = les.hist == 0
    has_tier, tier_pos = les.risk >= 0, les.risk == 0
    has_reader, reader_pos = reader >= 0, reader == 0
    has_first, first_pos = les.first_tier >= 0, les.first_tier == 0
    has_second, second_pos = les.second_tier >= 0, les.second_tier == 0
    binaries = {"classifier_reader": (has_tier & has_reader, tier_pos, reader_pos),
                "classifier_histology": (has_tier & known_hist, tier_pos, hist_pos),
                "reader_histology": (has_reader & known_hist, reader_pos, hist_pos),
                "first_second": (has_first & has_second, first_pos, second_pos)}
    ref_first = np.unique(ref, return_index=True)[1] if n else np.zeros(0, np.int64)
    referral = _referrals(les, ref_first)
    out_groups, overall = {}, None
    for dim, (codes, names) in [("all", (np.zeros(n, np.int64), ["all"] if n else []))] + list(dims.items()):
        c = Counter(codes, pat, len(names))
        groups = [Group(name) for name in names]
        _fill(groups, c, arr, outcome, binaries)
        _fill_referrals(groups, codes[ref_first], referral, fds_days)
        if dim == "all":
            overall = groups[0] if groups else Group("all")
        else:
            out_groups[dim] = groups
    tier_names = {-1: "none", **dict(enumerate(TIERS))}
    hist_names = dict(enumerate(HISTOLOGY))
    has_hist = les.hist >= 0
    pairs = {"classifier_reader": (les.risk, tier_names, reader, tier_names, has_reader),
             "classifier_histology": (les.risk, tier_names, les.hist, hist_names, has_hist),
             "reader_histology": (reader, tier_names, les.hist, hist_names, has_reader & has_hist),
             "first_second": (les.first_tier, tier_names, les.second_tier, tier_names, has_first & has_second)}
    tables = {pair: _table(*args, pat) for pair, args in pairs.items()}
    roc = {name: stats.roc(les.roc_scores[name], les.roc_truths[name]) for name in ("malignancy", "melanoma")}
    roc_model = model_codes[les.roc_lesion]
    roc_by_model = {}
    for code, name in enumerate(model_names):
        sel = roc_model == code
        if sel.any():
            roc_by_model[name] = {curve: stats.roc(les.roc_scores[curve][sel], les.roc_truths[curve][sel])
                                  for curve in ("malignancy", "melanoma")}
    breaches = _breaches(les, referral, dims["hub"], ref_first, as_of, fds_days)
    return Report(start, end, as_of, overall or Group("all"), out_groups, tables, breaches, roc, roc_by_model)


def _table(a: np.ndarray, a_names: dict, b: np.ndarray, b_names: dict, ok: np.ndarray,
           pat: np.ndarray) -> dict[tuple[str, str], Cell]:
    """The confusion table of codes ``a`` against ``b`` over the lesions ``ok`` keeps, keyed by names."""
    idx = np.flatnonzero(ok)
    if not len(idx):
        return {}
    combo = (a[idx].astype(np.int64) + 1) * 16 + (b[idx].astype(np.int64) + 1)
    uniq, codes = np.unique(combo, return_inverse=True)
    cells = Counter(codes, pat[idx], len(uniq)).cells()
    keyed = {(a_names[int(u) // 16 - 1], b_names[int(u) % 16 - 1]): cell for u, cell in zip(uniq, cells)}
    return dict(sorted(keyed.items(), key=lambda kv: f"{kv[0][0]}\t{kv[0][1]}"))


def _fill(groups: list[Group], c: Counter, arr: dict, outcome: dict, binaries: dict) -> None:
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


def _referrals(les: Lesions, ref_first: np.ndarray) -> dict:
    """Per referral: calendar and working days to decision (-1 while open) and the patient."""
    decided = les.decided_day >= 0
    cal = np.where(decided, les.decided_day - les.ref_day, -1)
    wd = np.full(len(cal), -1, np.int64)
    if decided.any():
        wd[decided] = stats.busdays(les.ref_day[decided], les.decided_day[decided])
    return {"cal": cal, "wd": wd, "patients": les.ref_patient}


def _fill_referrals(groups: list[Group], codes: np.ndarray, ref: dict, fds_days: int) -> None:
    """Each group's referrals and timeliness (working days listed per group, for the median and p90)."""
    c = Counter(codes, ref["patients"], len(groups))
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


def _breaches(les: Lesions, ref: dict, hubs: tuple, ref_first: np.ndarray, as_of: date, fds_days: int) -> list[dict]:
    """The referrals decided after ``fds_days`` and those open past it on ``as_of``, longest first."""
    today = as_of.toordinal() - _EPOCH
    late = np.flatnonzero(ref["cal"] > fds_days)
    open_ = np.flatnonzero((ref["cal"] < 0) & (today - les.ref_day > fds_days))
    owd = stats.busdays(les.ref_day[open_], np.full(len(open_), today)) if len(open_) else []
    hub_codes, hub_names = hubs
    out = []
    for state, idx, cal, wd in (("decided late", late, ref["cal"][late], ref["wd"][late]),
                                ("open", open_, today - les.ref_day[open_], owd)):
        for i, c, w in zip(idx.tolist(), np.asarray(cal).tolist(), np.asarray(wd).tolist()):
            out.append({"referral_key": les.keys[i], "hub": hub_names[hub_codes[ref_first[i]]],
                        "referral_date": date.fromordinal(int(les.ref_day[i]) + _EPOCH).isoformat(), "state": state,
                        "calendar_days": c, "working_days": w})
    out.sort(key=lambda b: (-b["calendar_days"], b["referral_key"]))
    return out
