"""The dermatologist's reports on a referral's lesions: tables and the SQL that reads and writes them.

One signed read per lesion and kind (``first``, ``second``, ``third``) in
``reports``; words added after sign-off in ``report_addenda``. Triggers make
SQLite refuse ``UPDATE`` and ``DELETE`` on both: a signed report is never
edited. ``reading_state`` holds one version number per referral key, raised by
a conditional ``UPDATE`` in the same transaction as every signature, so a form
built on an older version (a second reader who signed meanwhile, a replayed
form) changes nothing. A referral key is the referral's UUID (schema version 2)
or a version-1 case's UUID (a one-lesion referral of its own).

The business rules (who may sign what, second reads) are in :mod:`dashboard.reports`.
"""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    referral_key TEXT NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    kind TEXT NOT NULL CHECK (kind IN ('first', 'second', 'third')),
    reader TEXT NOT NULL,
    diagnosis TEXT NOT NULL,
    management TEXT NOT NULL,
    text TEXT NOT NULL DEFAULT '',
    signed_at TEXT NOT NULL,
    second_read TEXT,
    agrees INTEGER,
    UNIQUE (case_id, kind)
);
CREATE INDEX IF NOT EXISTS reports_key ON reports (referral_key, case_id);
CREATE TABLE IF NOT EXISTS report_addenda (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id INTEGER NOT NULL REFERENCES reports(id),
    author TEXT NOT NULL,
    text TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS report_addenda_report ON report_addenda (report_id, id);
CREATE TABLE IF NOT EXISTS reading_state (
    referral_key TEXT PRIMARY KEY,
    version INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT,
    completed_at TEXT
);
CREATE TRIGGER IF NOT EXISTS reports_no_update BEFORE UPDATE ON reports
BEGIN SELECT RAISE(ABORT, 'a signed report is never edited: add an addendum'); END;
CREATE TRIGGER IF NOT EXISTS reports_no_delete BEFORE DELETE ON reports
BEGIN SELECT RAISE(ABORT, 'a signed report is never deleted'); END;
CREATE TRIGGER IF NOT EXISTS report_addenda_no_update BEFORE UPDATE ON report_addenda
BEGIN SELECT RAISE(ABORT, 'an addendum is never edited'); END;
CREATE TRIGGER IF NOT EXISTS report_addenda_no_delete BEFORE DELETE ON report_addenda
BEGIN SELECT RAISE(ABORT, 'an addendum is never deleted'); END;
CREATE INDEX IF NOT EXISTS referrals_patient ON referrals (nhs_number, referral_date);
"""

REPORT_COLUMNS = ("id", "referral_key", "case_id", "kind", "reader", "diagnosis", "management", "text", "signed_at",
                  "second_read", "agrees")


class StaleVersion(Exception):
    """The form was built on an older version of the referral's reading (someone signed meanwhile, or a replay)."""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the report tables, their triggers and the patient index (idempotent)."""
    conn.executescript(SCHEMA)


def version(conn: sqlite3.Connection, key: str) -> int:
    """The referral key's reading version (0 before anything was signed)."""
    row = conn.execute("SELECT version FROM reading_state WHERE referral_key = ?", (key,)).fetchone()
    return row[0] if row else 0


def bump_version(conn: sqlite3.Connection, key: str, expected: int, now: str) -> int:
    """Raise the version from ``expected`` by one inside the caller's transaction (``StaleVersion`` if it moved)."""
    conn.execute("INSERT OR IGNORE INTO reading_state (referral_key, version) VALUES (?, 0)", (key,))
    cur = conn.execute("UPDATE reading_state SET version = version + 1, updated_at = ? "
                       "WHERE referral_key = ? AND version = ?", (now, key, expected))
    if cur.rowcount != 1:
        raise StaleVersion(key)
    return expected + 1


def mark_completed(conn: sqlite3.Connection, key: str, now: str) -> bool:
    """Record when the referral's reading became final; True only the first time (inside the caller's transaction)."""
    cur = conn.execute("UPDATE reading_state SET completed_at = ? WHERE referral_key = ? AND completed_at IS NULL",
                       (now, key))
    return cur.rowcount == 1


def completed_at(conn: sqlite3.Connection, key: str) -> str | None:
    """When the referral's reading became final, or None."""
    row = conn.execute("SELECT completed_at FROM reading_state WHERE referral_key = ?", (key,)).fetchone()
    return row[0] if row else None


def insert_report(conn: sqlite3.Connection, row: dict) -> int:
    """Insert one signed report (``row`` has :data:`REPORT_COLUMNS` but ``id``); return its id."""
    cols = [c for c in REPORT_COLUMNS if c != "id"]
    cur = conn.execute(f"INSERT INTO reports ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                       [row.get(c) for c in cols])
    return cur.lastrowid


def reports_for(conn: sqlite3.Connection, key: str) -> list[dict]:
    """Every signed report of a referral key, oldest first, each with its ``addenda`` (oldest first)."""
    rows = [dict(zip(REPORT_COLUMNS, r)) for r in conn.execute(
        f"SELECT {', '.join(REPORT_COLUMNS)} FROM reports WHERE referral_key = ? ORDER BY id", (key,))]
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        r["addenda"] = []
    if rows:
        marks = ",".join("?" * len(by_id))
        for rid, author, text, at in conn.execute(
                f"SELECT report_id, author, text, added_at FROM report_addenda WHERE report_id IN ({marks}) "
                "ORDER BY id", list(by_id)):
            by_id[rid]["addenda"].append({"author": author, "text": text, "added_at": at})
    return rows


def insert_addendum(conn: sqlite3.Connection, report_id: int, author: str, text: str, now: str) -> int:
    """Append an addendum to a signed report; return its id."""
    cur = conn.execute("INSERT INTO report_addenda (report_id, author, text, added_at) VALUES (?,?,?,?)",
                       (report_id, author, text, now))
    return cur.lastrowid


def earlier_lesion_cases(conn: sqlite3.Connection, nhs_number: str, referral_id: str, body_site: str,
                         laterality: str | None, before: str) -> list[dict]:
    """The same patient's cases at the same site and laterality from other referrals dated on or before ``before``
    (ISO date), newest first: case id, referral id and date."""
    return [dict(zip(("case_id", "referral_id", "referral_date", "lesion_id", "site_detail"), r)) for r in conn.execute(
        "SELECT c.case_id, r.referral_id, r.referral_date, c.lesion_id, c.site_detail FROM referrals r "
        "JOIN cases c ON c.referral_id = r.referral_id WHERE r.nhs_number = ? AND r.referral_id != ? "
        "AND r.referral_date <= ? AND c.body_site = ? AND c.laterality IS ? "
        "ORDER BY r.referral_date DESC, r.first_received_at DESC LIMIT 10",
        (nhs_number, referral_id, before, body_site, laterality))]
