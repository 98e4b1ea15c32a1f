"""The hand-over to the hospital: one row per signed referral and destination (``pacs``, ``fhir``).

``hospital_exports`` is the outbox of :mod:`dashboard.pacs`: a row is ``queued`` when made (at
sign-off, after an addendum, or by "send again"), ``sent`` once the destination accepted everything,
or ``failed`` with the reason of the last try; a failed row with ``next_try_at`` is tried again then
(the delay doubles up to the configured most), one without (``next_try_at`` NULL) waits for a person
(a referral without an NHS number). ``digest`` names what was last queued (the DICOM instance UIDs,
the Bundle's SHA-256) and ``addenda`` how many addenda it included: queuing the same content again
after it was sent changes nothing, so a second export adds nothing. Rows hold referral keys (UUIDs),
never a patient identifier.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from .schema import iso, transaction, utcnow

TARGETS = ("pacs", "fhir")
STATES = ("queued", "sent", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS hospital_exports (
    referral_key TEXT NOT NULL,
    target       TEXT NOT NULL CHECK (target IN ('pacs', 'fhir')),
    state        TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
    reason       TEXT NOT NULL DEFAULT '',
    detail       TEXT NOT NULL DEFAULT '',
    digest       TEXT NOT NULL DEFAULT '',
    addenda      INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    queued_at    TEXT NOT NULL,
    tried_at     TEXT,
    sent_at      TEXT,
    next_try_at  TEXT,
    PRIMARY KEY (referral_key, target)
);
CREATE INDEX IF NOT EXISTS hospital_exports_due ON hospital_exports (state, next_try_at);
CREATE INDEX IF NOT EXISTS hospital_exports_sent ON hospital_exports (state, sent_at);
"""

COLUMNS = ("referral_key", "target", "state", "reason", "detail", "digest", "addenda", "attempts", "queued_at",
           "tried_at", "sent_at", "next_try_at")


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the hand-over table if missing."""
    conn.executescript(SCHEMA)


def _rows(cur) -> list[dict]:
    return [dict(zip(COLUMNS, r)) for r in cur.fetchall()]


def get(conn: sqlite3.Connection, key: str, target: str) -> dict | None:
    """The row of one referral and destination, or None (never queued)."""
    rows = _rows(conn.execute(f"SELECT {', '.join(COLUMNS)} FROM hospital_exports WHERE referral_key=? AND target=?",
                              (key, target)))
    return rows[0] if rows else None


def states(conn: sqlite3.Connection, key: str) -> dict[str, dict]:
    """``{target: row}`` of one referral."""
    return {r["target"]: r for r in _rows(conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM hospital_exports WHERE referral_key=?", (key,)))}


def queue(conn: sqlite3.Connection, key: str, target: str, *, force: bool = False,
          now: datetime | None = None) -> bool:
    """Queue ``key`` for ``target`` now (a new row, or a sent/failed one made due again); False when it is already
    queued and due. ``force``: also a sent one (a person asked to send again, or the content changed)."""
    at = iso(now or utcnow())
    with transaction(conn):
        row = get(conn, key, target)
        if row is None:
            conn.execute("INSERT INTO hospital_exports (referral_key, target, state, queued_at, next_try_at) "
                         "VALUES (?,?,?,?,?)", (key, target, "queued", at, at))
            return True
        if row["state"] == "sent" and not force:
            return False
        conn.execute("UPDATE hospital_exports SET state='queued', reason='', queued_at=?, next_try_at=?, attempts=0 "
                     "WHERE referral_key=? AND target=?", (at, at, key, target))
        return True


def due(conn: sqlite3.Connection, now: datetime | None = None, limit: int = 50) -> list[dict]:
    """Rows to try now: queued or failed with a next try that has come, oldest first."""
    return _rows(conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM hospital_exports WHERE state IN ('queued', 'failed') "
        "AND next_try_at <= ? ORDER BY next_try_at LIMIT ?", (iso(now or utcnow()), limit)))


def amended(conn: sqlite3.Connection, limit: int = 200) -> list[tuple[str, str]]:
    """``(key, target)`` of sent rows whose referral has gained addenda since (to be sent again, updated)."""
    # Driven from the (few) addenda, not from every referral ever sent (CROSS JOIN fixes SQLite's join order).
    return [tuple(r) for r in conn.execute(
        "SELECT e.referral_key, e.target FROM (SELECT DISTINCT r.referral_key AS k FROM report_addenda a "
        "CROSS JOIN reports r ON r.id = a.report_id) x CROSS JOIN hospital_exports e ON e.referral_key = x.k "
        "WHERE +e.state = 'sent' AND e.addenda < (SELECT count(*) FROM report_addenda a JOIN reports r "
        "ON r.id = a.report_id WHERE r.referral_key = e.referral_key) LIMIT ?", (limit,))]


def mark_sent(conn: sqlite3.Connection, key: str, target: str, digest: str, addenda: int, detail: str,
              now: datetime | None = None) -> None:
    """The destination took everything."""
    at = iso(now or utcnow())
    conn.execute("UPDATE hospital_exports SET state='sent', reason='', detail=?, digest=?, addenda=?, "
                 "attempts=attempts+1, tried_at=?, sent_at=?, next_try_at=NULL WHERE referral_key=? AND target=?",
                 (detail[:500], digest, addenda, at, at, key, target))


def mark_failed(conn: sqlite3.Connection, key: str, target: str, reason: str, retry_in: float | None,
                detail: str = "", now: datetime | None = None) -> None:
    """A try failed; tried again in ``retry_in`` seconds (None: not again until a person queues it)."""
    now = now or utcnow()
    nxt = iso(now + timedelta(seconds=retry_in)) if retry_in is not None else None
    conn.execute("UPDATE hospital_exports SET state='failed', reason=?, detail=?, attempts=attempts+1, tried_at=?, "
                 "next_try_at=? WHERE referral_key=? AND target=?", (reason[:500], detail[:500], iso(now), nxt, key,
                                                                      target))


def overview(conn: sqlite3.Connection, limit: int = 200) -> dict:
    """For the IT page: counts per destination and state, and the rows not sent (newest first)."""
    counts: dict[str, dict[str, int]] = {t: {s: 0 for s in STATES} for t in TARGETS}
    for target, state, n in conn.execute("SELECT target, state, count(*) FROM hospital_exports GROUP BY 1, 2"):
        counts[target][state] = n
    open_rows = _rows(conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM hospital_exports WHERE state IN ('queued', 'failed') "
        "ORDER BY queued_at DESC LIMIT ?",
        (limit,)))
    recent = _rows(conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM hospital_exports WHERE state = 'sent' ORDER BY sent_at DESC LIMIT 20"))
    return {"counts": counts, "open": open_rows, "recent": recent}
