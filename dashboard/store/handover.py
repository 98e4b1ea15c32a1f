"""Tables of the hand-over to the hub: the outcome messages waiting for the broker, and the letters.

``outcome_queue``: one row per :class:`wire.outcome.Outcome` made at sign-off, kept until the
broker took it for a kiosk that subscribes to its outcome topic (``published_at``). A row whose
kiosk had no session at the broker (PUBACK "no matching subscribers") stays pending and is sent
again (:func:`dashboard.outcomes.flush`): nothing made at sign-off is lost.

``letters``: the GP and patient letters of a referral as PDF bytes, one revision per sign-off or
addendum, never overwritten (the newest revision is the one served).
"""

from __future__ import annotations

import hashlib
import sqlite3

from .schema import iso, utcnow


def _now() -> str:
    return iso(utcnow())

SCHEMA = """
CREATE TABLE IF NOT EXISTS outcome_queue (
    outcome_id   TEXT PRIMARY KEY,
    referral_key TEXT NOT NULL,
    site         TEXT NOT NULL,
    device       TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    published_at TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outcome_queue_pending ON outcome_queue (published_at, created_at);
CREATE INDEX IF NOT EXISTS outcome_queue_referral ON outcome_queue (referral_key, created_at);
CREATE TABLE IF NOT EXISTS letters (
    referral_key TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('gp', 'patient')),
    revision     INTEGER NOT NULL,
    pdf          BLOB NOT NULL,
    sha256       TEXT NOT NULL,
    made_at      TEXT NOT NULL,
    PRIMARY KEY (referral_key, kind, revision)
);
CREATE TRIGGER IF NOT EXISTS letters_never_change BEFORE UPDATE ON letters
BEGIN SELECT RAISE(ABORT, 'a letter is never changed: add a revision'); END;
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the hand-over tables if missing."""
    conn.executescript(SCHEMA)


def queue_outcome(conn: sqlite3.Connection, outcome) -> None:
    """Keep an outcome message until the broker takes it (idempotent by its outcome id)."""
    conn.execute("INSERT OR IGNORE INTO outcome_queue (outcome_id, referral_key, site, device, payload, created_at) "
                 "VALUES (?, ?, ?, ?, ?, ?)", (str(outcome.outcome_id), str(outcome.referral_id), outcome.site,
                                               outcome.device_id, outcome.model_dump_json(), _now()))


def pending_outcomes(conn: sqlite3.Connection, limit: int = 500) -> list[dict]:
    """Outcome messages the broker has not taken yet, oldest first."""
    cur = conn.execute("SELECT outcome_id, referral_key, site, device, payload, attempts, last_error FROM "
                       "outcome_queue WHERE published_at IS NULL ORDER BY created_at LIMIT ?", (limit,))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def mark_published(conn: sqlite3.Connection, outcome_id: str) -> None:
    """The broker took the message for the kiosk's session."""
    conn.execute("UPDATE outcome_queue SET published_at=?, attempts=attempts+1, last_error='' WHERE outcome_id=?",
                 (_now(), outcome_id))


def mark_failed(conn: sqlite3.Connection, outcome_id: str, error: str) -> None:
    """A try that did not reach the kiosk's session; the message stays pending."""
    conn.execute("UPDATE outcome_queue SET attempts=attempts+1, last_error=? WHERE outcome_id=?",
                 (error[:300], outcome_id))


def outcome_state(conn: sqlite3.Connection, referral_key: str) -> dict | None:
    """The newest outcome message of a referral: created/published times, attempts, last error (None: none)."""
    cur = conn.execute("SELECT outcome_id, created_at, published_at, attempts, last_error FROM outcome_queue "
                       "WHERE referral_key=? ORDER BY created_at DESC LIMIT 1", (str(referral_key),))
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


def add_letter(conn: sqlite3.Connection, referral_key: str, kind: str, pdf: bytes) -> int:
    """Store a new revision of a referral's letter; returns its revision number (1, 2, ...)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT COALESCE(MAX(revision), 0) FROM letters WHERE referral_key=? AND kind=?",
                           (str(referral_key), kind)).fetchone()
        revision = row[0] + 1
        conn.execute("INSERT INTO letters (referral_key, kind, revision, pdf, sha256, made_at) VALUES (?,?,?,?,?,?)",
                     (str(referral_key), kind, revision, pdf, hashlib.sha256(pdf).hexdigest(), _now()))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return revision


def latest_letter(conn: sqlite3.Connection, referral_key: str, kind: str) -> dict | None:
    """The newest revision of a letter: ``{revision, pdf, sha256, made_at}``, or None."""
    cur = conn.execute("SELECT revision, pdf, sha256, made_at FROM letters WHERE referral_key=? AND kind=? "
                       "ORDER BY revision DESC LIMIT 1", (str(referral_key), kind))
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


def letter_list(conn: sqlite3.Connection, referral_key: str) -> list[dict]:
    """Every stored letter of a referral (no bytes): kind, revision, made_at, size, newest first."""
    cur = conn.execute("SELECT kind, revision, made_at, length(pdf) AS size FROM letters WHERE referral_key=? "
                       "ORDER BY kind, revision DESC", (str(referral_key),))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]
