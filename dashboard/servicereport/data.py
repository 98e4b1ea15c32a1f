"""The rows a service report is computed from: one per lesion of the referrals dated in a period, read in one query.

Each row has the lesion's referral key, hub, model version, the patient's
Fitzpatrick type, the referral date, when the referral's reading became final,
the classifier's tier and probabilities, images and quality overrides, the first,
second and third reads, and the histology that stands. The patient is carried as
a number private to one report (for counting patients, never shown).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date

from ..store.histology import CURRENT_SQL

COLUMNS = ("case_id", "key", "site", "model", "fitzpatrick", "referral_date", "completed_at", "risk", "probabilities",
           "images", "overrides", "patient", "first_dx", "first_mg", "second_read", "second_dx", "second_mg", "second_agrees",
           "third_dx", "third_mg", "h_dx", "h_class")

_SQL = f"""
WITH lesions AS (
    SELECT c.case_id, coalesce(c.referral_id, c.case_id) AS key, c.site,
           coalesce(c.classification_model, c.model_version) AS model, r.fitzpatrick,
           coalesce(r.referral_date, date(c.received_at)) AS referral_date, c.risk, c.probabilities, c.image_count,
           coalesce(r.nhs_number, c.case_id) AS patient
    FROM cases c LEFT JOIN referrals r ON r.referral_id = c.referral_id
    WHERE coalesce(r.referral_date, date(c.received_at)) BETWEEN ?1 AND ?2
)
SELECT l.case_id, l.key, l.site, l.model, l.fitzpatrick, l.referral_date, rs.completed_at, l.risk, l.probabilities,
       l.image_count, (SELECT count(*) FROM case_images ci WHERE ci.case_id = l.case_id
                       AND ci.override_reason IS NOT NULL), l.patient,
       f.diagnosis, f.management, f.second_read, s.diagnosis, s.management, s.agrees, t.diagnosis, t.management,
       h.diagnosis, h.benign_malignant
FROM lesions l
LEFT JOIN reading_state rs ON rs.referral_key = l.key
LEFT JOIN reports f ON f.case_id = l.case_id AND f.kind = 'first'
LEFT JOIN reports s ON s.case_id = l.case_id AND s.kind = 'second'
LEFT JOIN reports t ON t.case_id = l.case_id AND t.kind = 'third'
LEFT JOIN ({CURRENT_SQL}) h ON h.case_id = l.case_id
"""


def lesion_rows(conn: sqlite3.Connection, start: date, end: date) -> list[dict]:
    """Every lesion of the referrals dated ``start`` to ``end`` (inclusive), as dicts of :data:`COLUMNS`; the
    patient replaced by a number private to this call, the probabilities parsed only where histology exists."""
    patients: dict[str, int] = {}
    out = []
    for r in conn.execute(_SQL, (start.isoformat(), end.isoformat())):
        row = dict(zip(COLUMNS, r))
        row["patient"] = patients.setdefault(row["patient"], len(patients))
        row["probabilities"] = json.loads(row["probabilities"]) if row["h_class"] and row["probabilities"] else None
        out.append(row)
    return out
