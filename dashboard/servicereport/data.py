"""The rows a service report is computed from: one per lesion of the referrals dated in a period.

Each row has the lesion's referral key, hub, model version, the patient's
Fitzpatrick type, the referral date, when the referral's reading became final,
the classifier's tier and probabilities, images and quality overrides, the first,
second and third reads, and the histology that stands. The patient is carried as
a number private to one report (for counting patients, never shown).

A case row holds its whole header JSON (a page of the database each), so a year
of lesions is read through covering indexes (:data:`INDEXES`: the few columns a
report needs, made by :func:`ensure_indexes`) and a handful of plain queries
joined here by key, instead of one join that would visit every case's page. Without the indexes
(a store not opened by the dashboard yet) the same queries still work, more slowly.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date

from ..store.histology import CURRENT_SQL

COLUMNS = ("case_id", "key", "site", "model", "fitzpatrick", "referral_date", "completed_at", "risk", "probabilities",
           "images", "overrides", "patient", "first_dx", "first_mg", "second_read", "second_dx", "second_mg",
           "second_agrees", "third_dx", "third_mg", "h_dx", "h_class")

#: Covering indexes of the report's reads (small: a few short columns per lesion and referral), and the overrides.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS cases_report ON cases (referral_id, case_id, site, risk, classification_model, "
    "model_version, image_count, received_at)",
    "CREATE INDEX IF NOT EXISTS referrals_report ON referrals (referral_date, referral_id, nhs_number, fitzpatrick)",
    "CREATE INDEX IF NOT EXISTS case_images_override ON case_images (case_id) WHERE override_reason IS NOT NULL",
)


def ensure_indexes(conn: sqlite3.Connection) -> None:
    """Create the report's covering indexes if missing (idempotent)."""
    for statement in INDEXES:
        conn.execute(statement)


def lesion_rows(conn: sqlite3.Connection, start: date, end: date) -> list[dict]:
    """Every lesion of the referrals dated ``start`` to ``end`` (inclusive), as dicts of :data:`COLUMNS`; the
    patient replaced by a number private to this call, the probabilities parsed only where histology exists.

    A version-1 case (no referral) is a referral of its own, dated the day it was received (UTC)."""
    lo, hi = start.isoformat(), end.isoformat()
    refs = {rid: (d, nhs, fitz) for d, rid, nhs, fitz in conn.execute(
        "SELECT referral_date, referral_id, nhs_number, fitzpatrick FROM referrals "
        "WHERE referral_date BETWEEN ? AND ?", (lo, hi))}
    lesions = []
    for rid, cid, site, risk, cmodel, model, images, received in conn.execute(
            "SELECT referral_id, case_id, site, risk, classification_model, model_version, image_count, received_at "
            "FROM cases"):
        if rid is not None:
            ref = refs.get(rid)
            if ref is None:
                continue
            lesions.append((cid, rid, site, cmodel or model, ref[2], ref[0], risk, images, ref[1]))
        elif lo <= received[:10] <= hi:
            lesions.append((cid, cid, site, cmodel or model, None, received[:10], risk, images, cid))
    if not lesions:
        return []
    wanted = {lesion[0] for lesion in lesions}
    completed = dict(conn.execute("SELECT referral_key, completed_at FROM reading_state "
                                  "WHERE completed_at IS NOT NULL"))
    overrides = dict(conn.execute("SELECT case_id, count(*) FROM case_images "
                                  "WHERE override_reason IS NOT NULL GROUP BY case_id"))
    reads: dict[str, dict[str, tuple]] = {}
    for cid, kind, dx, mg, second_read, agrees in conn.execute(
            "SELECT case_id, kind, diagnosis, management, second_read, agrees FROM reports"):
        if cid in wanted:
            reads.setdefault(cid, {})[kind] = (dx, mg, second_read, agrees)
    hist = {cid: (dx, cls) for cid, dx, cls in conn.execute(
        f"SELECT case_id, diagnosis, benign_malignant FROM ({CURRENT_SQL})") if cid in wanted}
    probs = {}
    ids = list(hist)
    for i in range(0, len(ids), 900):
        chunk = ids[i:i + 900]
        probs.update(conn.execute(f"SELECT case_id, probabilities FROM cases WHERE case_id IN "
                                  f"({','.join('?' * len(chunk))})", chunk).fetchall())
    patients: dict[str, int] = {}
    none = (None, None, None, None)
    out = []
    for cid, key, site, model, fitz, rdate, risk, images, patient in lesions:
        r = reads.get(cid, {})
        first, second, third = r.get("first", none), r.get("second", none), r.get("third", none)
        h = hist.get(cid)
        p = probs.get(cid) if h else None
        out.append({"case_id": cid, "key": key, "site": site, "model": model, "fitzpatrick": fitz,
                    "referral_date": rdate, "completed_at": completed.get(key), "risk": risk,
                    "probabilities": json.loads(p) if p else None, "images": images,
                    "overrides": overrides.get(cid, 0), "patient": patients.setdefault(patient, len(patients)),
                    "first_dx": first[0], "first_mg": first[1], "second_read": first[2], "second_dx": second[0],
                    "second_mg": second[1], "second_agrees": second[3], "third_dx": third[0], "third_mg": third[1],
                    "h_dx": h[0] if h else None, "h_class": h[1] if h else None})
    return out
