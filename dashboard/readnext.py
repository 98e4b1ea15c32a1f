"""The next referral to read, for the referral page's "Next referral": in reading order (the worklist's: most severe
tier of any lesion, then the oldest referral date), skipping referrals whose reading is final, that someone else holds,
or on which the reader has nothing to sign (a first read of theirs awaiting another's second read)."""

from __future__ import annotations

import sqlite3

from . import claims
from .readingconfig import ReadingConfig
from .reports import ReportError, next_kind, reads_by_case
from .store import reports as table

#: The worklist's order (dashboard.worklist), over the open referrals' summary rows (index ``summary_queue``).
_ORDER = "s.rank, s.referral_date, s.first_received_at, s.rowid"
_OPEN = "SELECT s.referral_key FROM referral_summary s WHERE s.closed = 0 AND s.referral_key != :key"


def _can_read(conn: sqlite3.Connection, key: str, user: str, settings: ReadingConfig) -> bool:
    held = claims.holder(conn, key)
    if held is not None and held.holder != user:
        return False
    reads = reads_by_case(table.reports_for(conn, key))
    if not reads:
        return True
    case_ids = [r[0] for r in conn.execute("SELECT case_id FROM cases WHERE referral_id = ? OR case_id = ?",
                                           (key, key))]
    for cid in case_ids:
        try:
            next_kind(reads.get(cid, {}), user, settings)
            return True
        except ReportError:
            continue
    return False


def next_key(conn: sqlite3.Connection, current: str, user: str, settings: ReadingConfig | None = None,
             look: int = 50) -> str | None:
    """The open referral after ``current`` in the worklist's order (most severe rank, then the oldest referral
    date) that no one else holds and on which ``user`` has a read to sign; wraps round to the start; None when
    there is none."""
    here = conn.execute("SELECT rank, referral_date, first_received_at, rowid FROM referral_summary "
                        "WHERE referral_key = ?", (current,)).fetchone()
    queries = []
    if here is not None:
        queries.append((f"{_OPEN} AND ({_ORDER}) > (:r, :d, :f, :id) ORDER BY {_ORDER} LIMIT :n",
                        {"key": current, "r": here[0], "d": here[1], "f": here[2], "id": here[3], "n": look}))
    queries.append((f"{_OPEN} ORDER BY {_ORDER} LIMIT :n", {"key": current, "n": look}))
    for sql, params in queries:
        for (key,) in conn.execute(sql, params).fetchall():
            if _can_read(conn, key, user, settings or ReadingConfig()):
                return key
    return None
