"""The outbox's SQLite schema, its case states and the row type the link and the page read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

STATES = ("captured", "queued", "sent", "delivered", "purged", "rejected")
#: States the link still has to publish (``sent`` is resent until the centre acks).
PENDING = ("queued", "sent")
#: States that count towards the queue depth shown on the kiosk page.
WAITING = ("captured", "queued", "sent")

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id      TEXT NOT NULL UNIQUE,
    state        TEXT NOT NULL CHECK (state IN ('captured','queued','sent','delivered','purged','rejected')),
    header       TEXT,
    n_images     INTEGER NOT NULL,
    jpeg_bytes   INTEGER NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    sent_at      TEXT,
    delivered_at TEXT
);
CREATE TABLE IF NOT EXISTS images (
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    idx     INTEGER NOT NULL,
    sha256  TEXT NOT NULL,
    length  INTEGER NOT NULL,
    PRIMARY KEY (case_id, idx)
);
CREATE INDEX IF NOT EXISTS images_by_sha ON images(sha256);
CREATE INDEX IF NOT EXISTS cases_by_state ON cases(state, seq);
-- Groups of cases stored together (a referral's lesions): the key is an HMAC the caller makes
-- (never an identifier in clear); a second group with the same key is refused.
CREATE TABLE IF NOT EXISTS groups (
    group_key  TEXT PRIMARY KEY,
    group_id   TEXT NOT NULL,
    n_cases    INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxCase:
    """One row of the outbox as the link and the kiosk page see it."""

    seq: int
    case_id: str
    state: str
    reason: str
    attempts: int
    n_images: int
    jpeg_bytes: int
    created_at: str
    updated_at: str


def now_iso() -> str:
    """The current UTC time in ISO 8601 (the outbox's timestamps)."""
    return datetime.now(timezone.utc).isoformat()
