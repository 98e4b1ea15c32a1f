"""The next referral to read, for the referral page's "Next referral": in reading order (most severe tier of any
lesion, then the oldest referral date), skipping referrals whose reading is final, that someone else holds,
or on which the reader has nothing to sign (a first read of theirs awaiting another's second read)."""

from __future__ import annotations

import sqlite3

from . import claims
from .readingconfig import ReadingConfig
from .reports import ReportError, next_kind, reads_by_case
from .store import reports as table

_RANK = ("CASE WHEN c.risk = 'cancer' THEN 0 WHEN c.risk IS NULL OR c.full_review THEN 1 "
         "WHEN c.risk = 'pre-cancer' THEN 2 ELSE 3 END")
_QUEUE = (f"SELECT key, rank, d FROM (SELECT r.referral_id AS key, min({_RANK}) AS rank, r.referral_date AS d "
          "FROM referrals r JOIN cases c ON c.referral_id = r.referral_id GROUP BY r.referral_id "
          f"UNION ALL SELECT c.case_id, {_RANK}, substr(c.received_at, 1, 10) FROM cases c "
          "WHERE c.referral_id IS NULL) w LEFT JOIN reading_state s ON s.referral_key = w.key "
          "WHERE s.completed_at IS NULL AND w.key != :key")


def _can_read(conn: sqlite3.Connection, key: str, user: str) -> bool:
    held = claims.holder(conn, key)
    if held is not None and held.holder != user:
        return False
    reads = reads_by_case(table.reports_for(conn, key))
    settings = ReadingConfig(audit_share=0)
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


def next_key(conn: sqlite3.Connection, current: str, user: str, look: int = 50) -> str | None:
    """The referral key after ``current`` in reading order (most severe tier, then oldest referral date) whose
    reading is not final, that no one else holds and on which ``user`` has a read to sign; wraps round to the
    start; None when there is none."""
    here = conn.execute(f"SELECT rank, d FROM ({_QUEUE.replace('!= :key', '= :key')})", {"key": current}).fetchone()
    queries = []
    if here is not None:
        queries.append((f"{_QUEUE} AND (rank, d, key) > (:rank, :d, :key) ORDER BY rank, d, key LIMIT :n",
                        {"key": current, "rank": here[0], "d": here[1], "n": look}))
    queries.append((f"{_QUEUE} ORDER BY rank, d, key LIMIT :n", {"key": current, "n": look}))
    for sql, params in queries:
        for key, _, _ in conn.execute(sql, params).fetchall():
            if _can_read(conn, key, user):
                return key
    return None
