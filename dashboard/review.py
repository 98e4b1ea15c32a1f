"""The dermatologist's review: decisions on cases and the worklist they drive.

A decision is a row in the store's ``decisions`` table (who, when on the
centre's clock, outcome, note); a case may be decided again (the latest row
counts, the earlier ones stay as history). Nothing here ever decides on its
own: a case without a human decision stays on the worklist, whatever its risk
tier, and so does a case whose latest decision asks for better images.

Each decision also moves its referral's worklist status (:mod:`dashboard.store.summary`)
in the same transaction: ``reported`` once every lesion the referral names has a
closing decision. The worklist itself is :mod:`dashboard.worklist`.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

from .store import summary
from .store.schema import transaction

OUTCOMES = {
    "urgent-2ww": "Urgent suspected-cancer referral (2-week wait)",
    "routine": "Routine referral to dermatology",
    "discharge-advice": "Discharge to GP with advice",
    "better-images": "Needs better images (recapture at the kiosk)",
}
#: Short labels for badges (the full text is the badge's title).
OUTCOME_SHORT = {
    "urgent-2ww": "Urgent referral (2-week wait)",
    "routine": "Routine referral",
    "discharge-advice": "Discharge to GP with advice",
    "better-images": "Needs better images",
}
#: Outcomes that leave the case on the open worklist.
OPEN_OUTCOMES = frozenset({"better-images"})
MAX_NOTE = 2000

SCHEMA = "CREATE INDEX IF NOT EXISTS decisions_case ON decisions (case_id, id);"


class DecisionError(ValueError):
    """A decision was not acceptable (the message says why, for a person)."""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Index the decisions by case (the table itself belongs to the store's schema)."""
    conn.executescript(SCHEMA)


def decisions(conn: sqlite3.Connection, case_id: str) -> list[dict]:
    """A case's decisions, newest first."""
    cols = ("id", "decided_at", "reviewer", "outcome", "note")
    return [dict(zip(cols, r)) for r in conn.execute(
        "SELECT id, decided_at, reviewer, outcome, note FROM decisions WHERE case_id = ? ORDER BY id DESC",
        (case_id,))]


def record(conn: sqlite3.Connection, case_id: str, reviewer: str, outcome: str, note: str,
           now: datetime | None = None) -> int:
    """Store a dermatologist's decision on a committed case; return its id (``DecisionError`` if invalid)."""
    if outcome not in OUTCOMES:
        raise DecisionError("Choose an outcome.")
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise DecisionError(f"The note is longer than {MAX_NOTE} characters.")
    if outcome == "better-images" and not note:
        raise DecisionError("Say what is wrong with the images, so the kiosk team can recapture.")
    if conn.execute("SELECT 1 FROM cases WHERE case_id = ?", (case_id,)).fetchone() is None:
        raise DecisionError("No such case.")
    now = now or datetime.now(timezone.utc)
    with transaction(conn):
        cur = conn.execute("INSERT INTO decisions (case_id, decided_at, reviewer, outcome, note) VALUES (?,?,?,?,?)",
                           (case_id, now.isoformat(), reviewer, outcome, note))
        summary.refresh_from_decisions(conn, summary.key_of_case(conn, case_id), at=now)
    return cur.lastrowid


EXPORT_COLUMNS = ("case_id", "referral_ref", "lesion_id", "body_site", "site", "device", "received_at", "risk",
                  "outcome", "reviewer", "decided_at", "note")


def decided_rows(conn: sqlite3.Connection) -> list[tuple]:
    """Every case's latest decision with the case's facts, oldest decision first (for the CSV export)."""
    return conn.execute(
        "SELECT c.case_id, c.referral_ref, c.lesion_id, c.body_site, c.site, c.device, c.received_at, c.risk, "
        "d.outcome, d.reviewer, d.decided_at, d.note FROM decisions d JOIN cases c ON c.case_id = d.case_id "
        "WHERE d.id = (SELECT max(id) FROM decisions WHERE case_id = d.case_id) ORDER BY d.id").fetchall()


def csv_safe(value) -> str:
    """A cell that a spreadsheet will not run as a formula (``=``, ``+``, ``-``, ``@`` get a leading ``'``)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
