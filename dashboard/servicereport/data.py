"""What a service report is computed from, read column by column: the lesions of the referrals dated in a period.

:func:`lesion_rows` returns a :class:`Lesions`: numpy arrays with one entry per lesion (its referral, hub, model
version, classifier tier, images, quality overrides, the first, second and third reads as tier and management
codes, the histology that stands) and per referral (key, referral day, patient, Fitzpatrick type, the day in England
its reading became final). Strings are coded in SQL or through small dictionaries, never one Python object per
lesion; the probabilities are parsed only where histology exists (the ROC curves). The patient is carried as a number
private to one report (for counting patients, never shown).

A case row holds its whole header JSON (a page of the database each), so a year of lesions is read through covering
indexes (:data:`INDEXES`: the few columns a report needs, made by :func:`ensure_indexes`) and a handful of plain
queries joined here by key, instead of one join that would visit every case's page. Without the indexes (a store not
opened by the dashboard yet) the same queries still work, more slowly.
"""

from __future__ import annotations

import gc
import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import compress, count, repeat

import numpy as np

from wire.messages import TIER_OF_LABEL
from wire.outcome import MANAGEMENT

from ..clock import LONDON
from ..store.histology import CURRENT_SQL

TIERS = ("cancer", "pre-cancer", "benign")
HISTOLOGY = ("malignant", "indeterminate", "benign")
_TIER_OF_TOP = {"Malignant": 0, "Indeterminate": 1, "Benign": 2}
_H_CODE = {None: -1, "malignant": 0, "indeterminate": 1, "benign": 2}
_T_CODE = {None: -1, "cancer": 0, "pre-cancer": 1, "benign": 2}
_MG_CODE = {m: i for i, m in enumerate(MANAGEMENT)}
_KIND = {"first": 0, "second": 1, "third": 2}
CANCER_LABELS = tuple(lab for lab, tier in TIER_OF_LABEL.items() if tier == "cancer")
_EPOCH = date(1970, 1, 1).toordinal()

#: Covering indexes of the report's reads (small: a few short columns per lesion and referral), and the overrides.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS cases_report ON cases (referral_id, case_id, site, risk, classification_model, "
    "model_version, image_count, received_at)",
    "CREATE INDEX IF NOT EXISTS referrals_report ON referrals (referral_date, referral_id, nhs_number, fitzpatrick)",
    "CREATE INDEX IF NOT EXISTS case_images_override ON case_images (case_id) WHERE override_reason IS NOT NULL",
)
_REFERRALS = ("SELECT referral_id, CAST(julianday(referral_date) - 2440587.5 AS INTEGER), nhs_number, fitzpatrick "
              "FROM referrals WHERE referral_date BETWEEN ? AND ?")
_CASES = ("SELECT referral_id, case_id, site, risk, coalesce(nullif(classification_model, ''), model_version), "
          "image_count, CASE WHEN referral_id IS NULL THEN substr(received_at, 1, 10) END FROM cases")
_COMPLETED = ("SELECT referral_key, CAST(strftime('%s', completed_at) AS INTEGER) FROM reading_state "
              "WHERE completed_at IS NOT NULL")


def ensure_indexes(conn: sqlite3.Connection) -> None:
    """Create the report's covering indexes if missing (idempotent)."""
    for statement in INDEXES:
        conn.execute(statement)


def tier_code(diagnosis: str | None) -> int:
    """A reader's diagnosis (ISIC hierarchy) as a tier code (index in :data:`TIERS`; -1 without one)."""
    return _TIER_OF_TOP[diagnosis.split(":")[0]] if diagnosis else -1


@dataclass
class Lesions:
    """The report's input, column by column. Per lesion (``n``): ``ref`` (index of its referral), ``site``,
    ``model`` (lists of text), ``risk`` (tier code, -1 none), ``images``, ``overrides``, the reads' tier and
    management codes (-1 none: ``first_tier``, ``first_mg``, ``second_owed``, ``second_tier``, ``second_agrees``,
    ``third_tier``, ``third_mg``) and ``hist`` (index in :data:`HISTOLOGY`, -1 none). Per referral: ``keys``,
    ``ref_day`` (days since 1970-01-01), ``ref_patient``, ``ref_fitzpatrick`` and ``decided_day`` (-1 while not
    final). ROC inputs, per lesion with benign or malignant histology and probabilities: ``roc_lesion`` (its index),
    ``roc_scores`` and ``roc_truths`` by curve (``malignancy``, ``melanoma``)."""

    n: int = 0
    ref: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    site: list = field(default_factory=list)
    model: list = field(default_factory=list)
    risk: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    images: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    overrides: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    first_tier: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    first_mg: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    second_owed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    second_tier: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    second_agrees: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    third_tier: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    third_mg: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    hist: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    keys: list = field(default_factory=list)
    ref_day: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ref_patient: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ref_fitzpatrick: list = field(default_factory=list)
    decided_day: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    roc_lesion: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    roc_scores: dict = field(default_factory=lambda: {"malignancy": np.zeros(0), "melanoma": np.zeros(0)})
    roc_truths: dict = field(default_factory=lambda: {"malignancy": np.zeros(0, bool), "melanoma": np.zeros(0, bool)})


def london_days(seconds: np.ndarray) -> np.ndarray:
    """Unix times (UTC seconds) as days in England since 1970-01-01 (the zone's offset looked up once per UTC
    hour: its changes fall on the hour)."""
    if not len(seconds):
        return np.zeros(0, np.int64)
    hours, inverse = np.unique(seconds // 3600, return_inverse=True)
    offsets = np.fromiter((datetime.fromtimestamp(int(h) * 3600, LONDON).utcoffset().total_seconds()
                           for h in hours), dtype=np.int64, count=len(hours))
    return (seconds + offsets[inverse]) // 86400


def _ints(values, dtype=np.int64) -> np.ndarray:
    return np.fromiter(values, dtype=dtype, count=len(values))


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector (the rows read are tuples of text and numbers, which make no cycles; its
    passes over hundreds of thousands of new tuples would cost about a third of the read)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def lesion_rows(conn: sqlite3.Connection, start: date, end: date) -> Lesions:
    """Every lesion of the referrals dated ``start`` to ``end`` (inclusive), as a :class:`Lesions`.

    A version-1 case (no referral) is a referral of its own, dated the day it was received (UTC)."""
    with _gc_paused():
        return _read(conn, start, end)


def _read(conn: sqlite3.Connection, start: date, end: date) -> Lesions:
    lo, hi = start.isoformat(), end.isoformat()
    refs = conn.execute(_REFERRALS, (lo, hi)).fetchall()
    ref_ids, ref_day, nhs, fitz = (list(c) for c in zip(*refs)) if refs else ([], [], [], [])
    cases = conn.execute(_CASES).fetchall()
    if not cases:
        return Lesions()
    rids, cids, sites, risks, models, images, v1_days = zip(*cases)
    ref_of = dict(zip(ref_ids, range(len(ref_ids))))
    ridx = list(map(ref_of.get, rids, repeat(-1)))
    for i in [i for i, r in enumerate(rids) if r is None and lo <= v1_days[i] <= hi]:
        ridx[i] = len(ref_ids)
        ref_ids.append(cids[i])
        ref_day.append(date.fromisoformat(v1_days[i]).toordinal() - _EPOCH)
        nhs.append(cids[i])
        fitz.append(None)
    ridx = np.asarray(ridx, dtype=np.int64)
    keep = ridx >= 0
    if not keep.any():
        return Lesions()
    used, ref = np.unique(ridx[keep], return_inverse=True)
    kept = keep.tolist()
    cids, sites, models = list(compress(cids, kept)), list(compress(sites, kept)), list(compress(models, kept))
    n = len(cids)
    les = Lesions(n=n, ref=ref.astype(np.int64), site=sites, model=models,
                  risk=_ints(list(map(_T_CODE.__getitem__, compress(risks, kept))), np.int8),
                  images=_ints(list(compress(images, kept))))
    ref_list = used.tolist()
    les.keys = [ref_ids[i] for i in ref_list]
    les.ref_day = np.asarray(ref_day, dtype=np.int64)[used]
    patients: dict = {}
    les.ref_patient = _ints(list(map(patients.setdefault, (nhs[i] for i in ref_list), count())))
    les.ref_fitzpatrick = [fitz[i] for i in ref_list]
    done = dict(conn.execute(_COMPLETED).fetchall())
    secs = _ints(list(map(done.get, les.keys, repeat(-1))))
    les.decided_day = np.where(secs >= 0, london_days(np.maximum(secs, 0)), -1)
    lesion_of = dict(zip(cids, range(n)))
    over = conn.execute("SELECT case_id, count(*) FROM case_images WHERE override_reason IS NOT NULL "
                        "GROUP BY case_id").fetchall()
    les.overrides = np.zeros(n, np.int64)
    for cid, k in over:
        if cid in lesion_of:
            les.overrides[lesion_of[cid]] = k
    _reads(conn, les, lesion_of)
    _histology(conn, les, lesion_of)
    return les


def _reads(conn: sqlite3.Connection, les: Lesions, lesion_of: dict) -> None:
    """The first, second and third reads of each lesion, as tier and management codes."""
    n = les.n
    les.first_tier, les.first_mg = np.full(n, -1, np.int8), np.full(n, -1, np.int8)
    les.second_tier, les.third_tier = np.full(n, -1, np.int8), np.full(n, -1, np.int8)
    les.third_mg = np.full(n, -1, np.int8)
    les.second_owed, les.second_agrees = np.zeros(n, bool), np.zeros(n, bool)
    reads = conn.execute("SELECT case_id, kind, diagnosis, management, second_read IS NOT NULL AND second_read != '', "
                         "coalesce(agrees, 0) != 0 FROM reports").fetchall()
    if not reads:
        return
    cids, kinds, dxs, mgs, owed, agrees = zip(*reads)
    li = _ints(list(map(lesion_of.get, cids, repeat(-1))))
    tiers = {d: tier_code(d) for d in set(dxs)}
    tier = _ints(list(map(tiers.__getitem__, dxs)), np.int8)
    mg = _ints(list(map(_MG_CODE.__getitem__, mgs)), np.int8)
    kind = _ints(list(map(_KIND.__getitem__, kinds)), np.int8)
    owed, agrees = np.asarray(owed, dtype=bool), np.asarray(agrees, dtype=bool)
    ok = li >= 0
    for code, tier_out, mg_out in ((0, les.first_tier, les.first_mg), (1, les.second_tier, None),
                                   (2, les.third_tier, les.third_mg)):
        sel = ok & (kind == code)
        tier_out[li[sel]] = tier[sel]
        if mg_out is not None:
            mg_out[li[sel]] = mg[sel]
        if code == 0:
            les.second_owed[li[sel]] = owed[sel]
        elif code == 1:
            les.second_agrees[li[sel]] = agrees[sel]


def _histology(conn: sqlite3.Connection, les: Lesions, lesion_of: dict) -> None:
    """The histology that stands per lesion, and the ROC inputs where it is benign or malignant."""
    les.hist = np.full(les.n, -1, np.int8)
    hist = [(lesion_of[cid], cid, dx, cls) for cid, dx, cls in conn.execute(
        f"SELECT case_id, diagnosis, benign_malignant FROM ({CURRENT_SQL})") if cid in lesion_of]
    if not hist:
        return
    les.hist[_ints([h[0] for h in hist])] = _ints([_H_CODE[h[3]] for h in hist], np.int8)
    known = [h for h in hist if h[3] in ("malignant", "benign")]
    names = [h[1] for h in known]
    probs: dict[str, str] = {}
    for i in range(0, len(names), 900):
        chunk = names[i:i + 900]
        probs.update(conn.execute(f"SELECT case_id, probabilities FROM cases WHERE case_id IN "
                                  f"({','.join('?' * len(chunk))})", chunk).fetchall())
    rows, mal, mel, t_mal, t_mel = [], [], [], [], []
    for lesion, cid, dx, cls in known:
        p = json.loads(probs[cid]) if probs.get(cid) else None
        if not p:
            continue
        rows.append(lesion)
        mal.append(sum(p.get(lab, 0.0) for lab in CANCER_LABELS))
        mel.append(p.get("mel", 0.0))
        t_mal.append(cls == "malignant")
        t_mel.append("(Melanoma)" in dx)
    les.roc_lesion = np.asarray(rows, dtype=np.int64)
    les.roc_scores = {"malignancy": np.asarray(mal, dtype=float), "melanoma": np.asarray(mel, dtype=float)}
    les.roc_truths = {"malignancy": np.asarray(t_mal, dtype=bool), "melanoma": np.asarray(t_mel, dtype=bool)}
