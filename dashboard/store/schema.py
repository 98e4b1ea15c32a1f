"""The store's tables, their migrations, and the SQL helpers every part of the store shares.

A fresh database gets :data:`SCHEMA` whole. A database made by an earlier
release has older tables: :func:`migrate` adds the columns listed in
:data:`ADDED_COLUMNS` that it lacks (``ALTER TABLE ... ADD COLUMN``, as the
fleet tables do), inside one write transaction so that two processes opening
the same old database do not both add them, then creates the indexes on them.
``PRAGMA user_version`` records the layout reached, so a store opened per web
request checks one number, not every table.

Layout (schema version 2 of a case, :mod:`wire.referral`): a referral
(``referrals``, one row per ``referral.referral_id``, with the patient and the
consents) has lesions (``cases``, one case per lesion; a version-1 case has no
referral row) and each case has images (``case_images``, with the shot number
and any quality override; the bytes in ``images`` by SHA-256). Layout 3 adds the
worklist's one row per referral (``referral_summary``, :mod:`.summary`), layout 4
its per-status counts.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

from . import summary

#: ``PRAGMA user_version`` of a database with every column below.
LAYOUT_VERSION = 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    site TEXT NOT NULL,
    seq INTEGER NOT NULL,
    referral_ref TEXT NOT NULL,
    lesion_id TEXT NOT NULL,
    body_site TEXT NOT NULL,
    created_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    software_version TEXT NOT NULL,
    model_version TEXT NOT NULL,
    risk TEXT,
    probabilities TEXT,
    classification_model TEXT,
    note TEXT NOT NULL DEFAULT '',
    image_count INTEGER NOT NULL,
    header TEXT NOT NULL,
    header_sha256 TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    schema_version INTEGER NOT NULL DEFAULT 1,
    referral_id TEXT,
    lesion_index INTEGER,
    on_referral INTEGER,
    added_reason TEXT,
    laterality TEXT,
    site_detail TEXT,
    map_side TEXT,
    map_x REAL,
    map_y REAL,
    size_mm REAL,
    history TEXT,
    seven_point INTEGER,
    photographer TEXT,
    ai TEXT,
    full_review INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS cases_received ON cases (received_at DESC);
CREATE TABLE IF NOT EXISTS referrals (
    referral_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    reference TEXT NOT NULL,
    reference_kind TEXT NOT NULL,
    referral_date TEXT NOT NULL,
    practice_ods TEXT NOT NULL,
    route TEXT NOT NULL,
    lesion_count INTEGER NOT NULL,
    nhs_number TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    sex TEXT NOT NULL,
    fitzpatrick TEXT NOT NULL,
    consents TEXT NOT NULL,
    photographer TEXT NOT NULL,
    first_received_at TEXT NOT NULL,
    last_received_at TEXT NOT NULL,
    mismatch INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    stored_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS case_images (
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    position INTEGER NOT NULL,
    sha256 TEXT NOT NULL REFERENCES images(sha256),
    view TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    quality TEXT,
    classification TEXT,
    shot INTEGER,
    override_reason TEXT,
    override_text TEXT,
    override_by TEXT,
    override_at TEXT,
    PRIMARY KEY (case_id, position)
);
CREATE INDEX IF NOT EXISTS case_images_sha ON case_images (sha256);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    device TEXT,
    site TEXT,
    case_id TEXT,
    reason TEXT NOT NULL,
    payload_size INTEGER NOT NULL,
    payload_sha256 TEXT NOT NULL,
    payload_file TEXT
);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'unknown',
    last_seen TEXT NOT NULL,
    state_at TEXT,
    software_version TEXT NOT NULL DEFAULT '',
    model_version TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    decided_at TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    outcome TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
"""

#: Columns added after a table's first release: table -> ((column, declaration), ...). Each is in
#: :data:`SCHEMA` too; an older database gets them from :func:`migrate`.
ADDED_COLUMNS = {
    "cases": (("schema_version", "INTEGER NOT NULL DEFAULT 1"), ("referral_id", "TEXT"),
              ("lesion_index", "INTEGER"), ("on_referral", "INTEGER"), ("added_reason", "TEXT"),
              ("laterality", "TEXT"), ("site_detail", "TEXT"), ("map_side", "TEXT"), ("map_x", "REAL"),
              ("map_y", "REAL"), ("size_mm", "REAL"), ("history", "TEXT"), ("seven_point", "INTEGER"),
              ("photographer", "TEXT"), ("ai", "TEXT"), ("full_review", "INTEGER NOT NULL DEFAULT 0")),
    "case_images": (("shot", "INTEGER"), ("override_reason", "TEXT"), ("override_text", "TEXT"),
                    ("override_by", "TEXT"), ("override_at", "TEXT")),
}

#: Indexes on added columns: created once the columns exist.
INDEXES = "CREATE INDEX IF NOT EXISTS cases_referral ON cases (referral_id, lesion_index);"

#: Most bound values in one statement (SQLite's limit before 3.32; later versions allow more).
MAX_SQL_VARIABLES = 999


def ensure(conn: sqlite3.Connection) -> None:
    """Create the tables of a fresh database, or bring an older one up to :data:`LAYOUT_VERSION`."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= LAYOUT_VERSION:
        return
    conn.executescript(SCHEMA)
    migrate(conn)


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Add the missing :data:`ADDED_COLUMNS`, the :data:`INDEXES` and the worklist's referral summary
    (:mod:`.summary`, built from the stored cases where missing), in one write transaction; return what was
    added (``table.column``). Safe to run again and from several processes at once."""
    added = []
    with transaction(conn):
        for table, columns in ADDED_COLUMNS.items():
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for column, declaration in columns:
                if column not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                    added.append(f"{table}.{column}")
        conn.execute(INDEXES)
        summary.ensure(conn)
        made = summary.backfill(conn)
        if made:
            added.append(f"referral_summary ({made} referrals)")
        conn.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")
    return added


class transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection):
        """Wrap ``conn`` (opened with ``isolation_level=None``)."""
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass


def insert_rows(conn: sqlite3.Connection, head: str, rows: list[tuple], tail: str = "") -> None:
    """Run ``head VALUES (?,..),(?,..),... tail`` for all ``rows``, in as few statements as the variable limit allows.

    One statement for many rows instead of ``executemany``: Python's sqlite3 releases and retakes the
    GIL around every row's step, and in the ingest each retake waits for a decoder thread to let it go
    (the worker spent most of its insert time waiting so). Rows must all have the same length.
    """
    if not rows:
        return
    width = len(rows[0])
    per = max(1, MAX_SQL_VARIABLES // width)
    marks = "(" + ",".join("?" * width) + ")"
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        conn.execute(f"{head} VALUES {','.join([marks] * len(chunk))} {tail}",
                     [value for row in chunk for value in row])


def utcnow() -> datetime:
    """The centre's clock, tz-aware UTC (the kiosk's clock is kept but never used for ordering)."""
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    """A datetime as stored: ISO 8601 with its offset."""
    return dt.isoformat()
