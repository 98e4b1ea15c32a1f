"""Histology per lesion: the pathology result that closes the loop on a read, and the SQL that reads and writes it.

One table, ``histology``, append-only (triggers refuse ``UPDATE`` and
``DELETE``): a corrected result is a new row, and the lesion's result is its
latest row (:func:`current_for_cases`). Each row names the lesion (``case_id``)
and its referral key, the diagnosis (ISIC hierarchy), benign / malignant /
indeterminate, the ISIC confirm type, the report's date and the pathology
report's reference, who entered it, when, and how (``form`` or ``import``).

The rules (validation, CSV import, audit) are in :mod:`dashboard.histology`.
"""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS histology (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    referral_key TEXT NOT NULL,
    diagnosis TEXT NOT NULL,
    benign_malignant TEXT NOT NULL CHECK (benign_malignant IN ('benign', 'malignant', 'indeterminate')),
    confirm_type TEXT NOT NULL,
    reported_on TEXT NOT NULL,
    report_ref TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('form', 'import')),
    entered_by TEXT NOT NULL,
    entered_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS histology_case ON histology (case_id, id);
CREATE INDEX IF NOT EXISTS histology_key ON histology (referral_key, id);
CREATE TRIGGER IF NOT EXISTS histology_no_update BEFORE UPDATE ON histology
BEGIN SELECT RAISE(ABORT, 'a histology result is never edited: enter the corrected result'); END;
CREATE TRIGGER IF NOT EXISTS histology_no_delete BEFORE DELETE ON histology
BEGIN SELECT RAISE(ABORT, 'a histology result is never deleted'); END;
"""

COLUMNS = ("id", "case_id", "referral_key", "diagnosis", "benign_malignant", "confirm_type", "reported_on",
           "report_ref", "source", "entered_by", "entered_at")


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the histology table, its indexes and its append-only triggers (idempotent)."""
    conn.executescript(SCHEMA)


def insert(conn: sqlite3.Connection, row: dict) -> int:
    """Insert one result (``row`` has :data:`COLUMNS` but ``id``) inside the caller's transaction; return its id."""
    cols = [c for c in COLUMNS if c != "id"]
    cur = conn.execute(f"INSERT INTO histology ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                       [row[c] for c in cols])
    return cur.lastrowid


def for_referral(conn: sqlite3.Connection, key: str) -> dict[str, list[dict]]:
    """Every result of a referral's lesions, ``{case_id: [row, ...]}``, newest first."""
    out: dict[str, list[dict]] = {}
    for r in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM histology WHERE referral_key = ? ORDER BY id DESC",
                          (key,)):
        row = dict(zip(COLUMNS, r))
        out.setdefault(row["case_id"], []).append(row)
    return out


def current(conn: sqlite3.Connection, case_id: str) -> dict | None:
    """A lesion's result that stands (its latest), or None."""
    r = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM histology WHERE case_id = ? ORDER BY id DESC LIMIT 1",
                     (case_id,)).fetchone()
    return dict(zip(COLUMNS, r)) if r else None


#: The latest result of every lesion that has one (a subquery for reports).
CURRENT_SQL = ("SELECT h.* FROM histology h JOIN (SELECT case_id, max(id) AS id FROM histology GROUP BY case_id) "
               "latest USING (id)")


def lesions_by_reference(conn: sqlite3.Connection, references: list[str]) -> dict[tuple[str, str], tuple[str, str]]:
    """``{(referral reference upper-cased, lesion id upper-cased): (case_id, referral key)}`` for the references."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    refs = sorted({r.upper() for r in references if r})
    for start in range(0, len(refs), 900):
        chunk = refs[start:start + 900]
        marks = ",".join("?" * len(chunk))
        for ref, lesion, case_id, key in conn.execute(
                f"SELECT upper(coalesce(r.reference, c.referral_ref)), upper(c.lesion_id), c.case_id, "
                f"coalesce(c.referral_id, c.case_id) FROM cases c LEFT JOIN referrals r ON r.referral_id = c.referral_id "
                f"WHERE upper(coalesce(r.reference, c.referral_ref)) IN ({marks})", chunk):
            out[(ref, lesion)] = (case_id, key)
    return out


def case_key(conn: sqlite3.Connection, case_id: str) -> str | None:
    """The referral key of a stored lesion, or None when no such lesion."""
    r = conn.execute("SELECT coalesce(referral_id, case_id) FROM cases WHERE case_id = ?", (case_id,)).fetchone()
    return r[0] if r else None


def referrals_by_reference(conn: sqlite3.Connection, references: list[str]) -> list[dict]:
    """The referrals whose reference (e-RS UBRN or the GP's) is one of ``references`` (compared upper-cased), as
    ``{key, site, referral_date, lesions}``, newest first; a version-1 case counts as a referral of its own."""
    refs = sorted({r.upper() for r in references if r})
    if not refs:
        return []
    marks = ",".join("?" * len(refs))
    rows = conn.execute(
        f"SELECT r.referral_id, r.site, r.referral_date, (SELECT count(*) FROM cases c WHERE c.referral_id = "
        f"r.referral_id) FROM referrals r WHERE upper(r.reference) IN ({marks}) UNION ALL "
        f"SELECT case_id, site, substr(received_at, 1, 10), 1 FROM cases WHERE referral_id IS NULL AND "
        f"upper(referral_ref) IN ({marks}) ORDER BY 3 DESC, 1", refs + refs).fetchall()
    return [dict(zip(("key", "site", "referral_date", "lesions"), r)) for r in rows]


def referral_lesions(conn: sqlite3.Connection, key: str) -> list[dict]:
    """The lesions of referral ``key`` (a referral id, or a version-1 case's id), by lesion index: case id, lesion
    id, body site, laterality, site detail, hub and referral date (a version-1 case: the day it was received)."""
    cols = ("case_id", "lesion_id", "body_site", "laterality", "site_detail", "site", "referral_date")
    rows = conn.execute(
        "SELECT c.case_id, c.lesion_id, c.body_site, c.laterality, c.site_detail, c.site, r.referral_date "
        "FROM cases c JOIN referrals r ON r.referral_id = c.referral_id WHERE c.referral_id = ? "
        "ORDER BY c.lesion_index, c.received_at", (key,)).fetchall()
    if not rows:
        rows = conn.execute("SELECT case_id, lesion_id, body_site, laterality, site_detail, site, "
                            "substr(received_at, 1, 10) FROM cases WHERE case_id = ? AND referral_id IS NULL",
                            (key,)).fetchall()
    return [dict(zip(cols, r)) for r in rows]
