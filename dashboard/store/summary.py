"""The worklist's summary of each referral (``referral_summary``): one row per referral, kept at ingest.

The worklist lists referrals, not cases. Grouping a patient's lesions, their
most severe tier and the referral's clock on every page view would read every
case; instead each referral (key: ``referral.referral_id``; a version-1 case is
a one-lesion referral keyed by its case id, its referral date the day the centre
received it, UTC) has one row here, written in the ingest's batch transaction by
one ``INSERT ... SELECT ... ON CONFLICT`` over the batch's new cases
(:data:`UPSERT_FOR_CASES`), so a referral's row is never out of step with its cases.

``rank`` orders the worklist: 0 a lesion in the cancer tier, 1 a lesion with no
classifier result or one that needs a full review (skin type V-VI, AI refused or
failed: never benign, whatever tier the classifier gave), 2 pre-cancer, 3 benign;
a referral takes its most severe lesion's rank. ``tier_rank`` is the classifier's
most severe tier alone (0 cancer, 1 pre-cancer, 2 benign, 3 none), for display.

``status`` is where the reading stands (:data:`STATUSES`); ``closed`` is 1 once
it is ``reported`` (the clock stops at ``status_at``). A lesion that arrives for a
reported referral opens it again. The reading service moves the status with
:func:`set_status`, inside its own transaction.

The ``claims`` table (who is reading a referral until when, :mod:`dashboard.claims`)
is made here too: the worklist's "mine" filter joins it. ``summary_counts`` holds
the number of referrals per status, kept by triggers in the same transactions, so
the worklist's tabs need no count over the whole table.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timezone

#: Where a referral's reading stands; all but ``reported`` are open (on the worklist).
STATUSES = {"to-read": "To read", "second-read": "Second read", "third-read": "Third read", "re-image": "Re-image",
            "reported": "Reported"}
CLOSED_STATUSES = frozenset({"reported"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS referral_summary (
    referral_key TEXT PRIMARY KEY,
    schema_version INTEGER NOT NULL,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    reference TEXT NOT NULL,
    nhs_number TEXT,
    referral_date TEXT NOT NULL,
    rank INTEGER NOT NULL,
    tier_rank INTEGER NOT NULL,
    full_review INTEGER NOT NULL,
    ai_declined INTEGER NOT NULL,
    fitz_v_vi INTEGER NOT NULL,
    lesion_count INTEGER NOT NULL,
    lesions_received INTEGER NOT NULL,
    first_received_at TEXT NOT NULL,
    last_received_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'to-read',
    closed INTEGER NOT NULL DEFAULT 0,
    status_at TEXT,
    assigned_to TEXT
);
CREATE INDEX IF NOT EXISTS summary_queue ON referral_summary (closed, rank, referral_date, first_received_at);
CREATE INDEX IF NOT EXISTS summary_clock ON referral_summary (closed, referral_date);
CREATE INDEX IF NOT EXISTS summary_status ON referral_summary (status, rank, referral_date, first_received_at);
CREATE INDEX IF NOT EXISTS summary_site ON referral_summary (site, closed, rank, referral_date, first_received_at);
CREATE INDEX IF NOT EXISTS summary_nhs ON referral_summary (nhs_number) WHERE nhs_number IS NOT NULL;
CREATE INDEX IF NOT EXISTS summary_reference ON referral_summary (reference COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS summary_assigned ON referral_summary (assigned_to) WHERE assigned_to IS NOT NULL;
CREATE TABLE IF NOT EXISTS claims (
    referral_key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS claims_holder ON claims (holder, expires_at);
CREATE TABLE IF NOT EXISTS summary_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS summary_counts_insert AFTER INSERT ON referral_summary BEGIN
    INSERT INTO summary_counts (status, n) VALUES (new.status, 1) ON CONFLICT(status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS summary_counts_update AFTER UPDATE OF status ON referral_summary
WHEN old.status IS NOT new.status BEGIN
    UPDATE summary_counts SET n = n - 1 WHERE status = old.status;
    INSERT INTO summary_counts (status, n) VALUES (new.status, 1) ON CONFLICT(status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS summary_counts_delete AFTER DELETE ON referral_summary BEGIN
    UPDATE summary_counts SET n = n - 1 WHERE status = old.status;
END;
"""

_RANK = ("CASE WHEN c.risk = 'cancer' THEN 0 WHEN c.risk IS NULL OR c.full_review THEN 1 "
         "WHEN c.risk = 'pre-cancer' THEN 2 WHEN c.risk = 'benign' THEN 3 ELSE 1 END")
_TIER = "CASE c.risk WHEN 'cancer' THEN 0 WHEN 'pre-cancer' THEN 1 WHEN 'benign' THEN 2 ELSE 3 END"
_COLUMNS = ("referral_key, schema_version, site, device, reference, nhs_number, referral_date, rank, tier_rank, "
            "full_review, ai_declined, fitz_v_vi, lesion_count, lesions_received, first_received_at, last_received_at")
#: The summary rows of the cases that ``{where}`` picks, grouped by referral.
_SELECT = (f"INSERT INTO referral_summary ({_COLUMNS}) "
           "SELECT coalesce(c.referral_id, c.case_id), max(c.schema_version), c.site, c.device, "
           "coalesce(r.reference, c.referral_ref), r.nhs_number, "
           "coalesce(r.referral_date, date(min(c.received_at))), "
           f"min({_RANK}), min({_TIER}), max(c.full_review), coalesce(max(c.ai = 'declined'), 0), "
           "coalesce(r.fitzpatrick IN ('V', 'VI'), 0), coalesce(r.lesion_count, 1), count(*), "
           "min(c.received_at), max(c.received_at) "
           "FROM cases c LEFT JOIN referrals r ON r.referral_id = c.referral_id WHERE {where} "
           "GROUP BY coalesce(c.referral_id, c.case_id) ")
_ON_CONFLICT = (
    "ON CONFLICT(referral_key) DO UPDATE SET rank=min(rank, excluded.rank), "
    "tier_rank=min(tier_rank, excluded.tier_rank), full_review=max(full_review, excluded.full_review), "
    "ai_declined=max(ai_declined, excluded.ai_declined), fitz_v_vi=max(fitz_v_vi, excluded.fitz_v_vi), "
    "lesions_received=lesions_received + excluded.lesions_received, "
    "first_received_at=min(first_received_at, excluded.first_received_at), "
    "last_received_at=max(last_received_at, excluded.last_received_at), "
    # a lesion arriving for a reported referral opens it again
    "status=CASE WHEN closed THEN 'to-read' ELSE status END, "
    "status_at=CASE WHEN closed THEN excluded.last_received_at ELSE status_at END, closed=0")
#: The upsert for new cases, ``{marks}`` their ids' placeholders (one statement for the whole batch).
UPSERT_FOR_CASES = _SELECT.format(where="c.case_id IN ({marks})") + _ON_CONFLICT
#: Most case ids one upsert binds.
MAX_CASES_PER_UPSERT = 900


def ensure(conn: sqlite3.Connection) -> None:
    """Create the summary and claims tables and their indexes if missing (no rows: see :func:`backfill`), statement by
    statement so that it runs inside the caller's transaction."""
    for statement in _statements(SCHEMA):
        conn.execute(statement)
    # the per-status counts the triggers keep, recounted once here (a table made before them had none)
    conn.execute("DELETE FROM summary_counts")
    conn.execute("INSERT INTO summary_counts (status, n) SELECT status, count(*) FROM referral_summary GROUP BY status")


def _statements(script: str) -> list[str]:
    """The statements of a schema script (a trigger's body kept whole), for ``execute`` one by one."""
    out, buf = [], ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                out.append(buf.strip())
            buf = ""
    return out


def status_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many referrals are in each status, from the counts the table's triggers keep (no scan)."""
    return dict(conn.execute("SELECT status, n FROM summary_counts WHERE n > 0").fetchall())


def upsert_for_cases(conn: sqlite3.Connection, case_ids: list[str]) -> None:
    """Fold newly inserted cases into their referrals' rows (inside the caller's transaction)."""
    for start in range(0, len(case_ids), MAX_CASES_PER_UPSERT):
        chunk = case_ids[start:start + MAX_CASES_PER_UPSERT]
        conn.execute(UPSERT_FOR_CASES.format(marks=",".join("?" * len(chunk))), chunk)


def backfill(conn: sqlite3.Connection) -> int:
    """Build the rows of every stored case's referral that has none (a database from before the summary),
    with the status its cases' latest decisions give; return how many rows were made."""
    before = conn.execute("SELECT count(*) FROM referral_summary").fetchone()[0]
    conn.execute(_SELECT.format(where="coalesce(c.referral_id, c.case_id) NOT IN "
                                      "(SELECT referral_key FROM referral_summary)") + "ON CONFLICT DO NOTHING")
    made = conn.execute("SELECT count(*) FROM referral_summary").fetchone()[0] - before
    if made and conn.execute("SELECT 1 FROM decisions LIMIT 1").fetchone():
        for (key,) in conn.execute("SELECT referral_key FROM referral_summary WHERE closed = 0").fetchall():
            refresh_from_decisions(conn, key)
    return made


def key_of_case(conn: sqlite3.Connection, case_id: str) -> str | None:
    """The referral key of a stored case (its referral id, or its own id for a version-1 case)."""
    row = conn.execute("SELECT coalesce(referral_id, case_id) FROM cases WHERE case_id = ?", (str(case_id),)).fetchone()
    return row[0] if row else None


def normal_key(key: str) -> str | None:
    """A referral key in its stored form (a UUID's canonical text), or None when it is not a UUID."""
    try:
        return str(uuid.UUID(str(key)))
    except ValueError:
        return None


def get(conn: sqlite3.Connection, key: str) -> dict | None:
    """A referral's summary row as a dict, or None."""
    key = normal_key(key)
    if key is None:
        return None
    cur = conn.execute("SELECT * FROM referral_summary WHERE referral_key = ?", (key,))
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


def set_status(conn: sqlite3.Connection, key: str, status: str, *, assigned_to: str | None = None,
               at: datetime | None = None) -> None:
    """Move a referral to ``status`` (one of :data:`STATUSES`); ``assigned_to``: the reader it now waits for
    (a second reader, the lead), shown under "mine"; cleared when None. Run it in the caller's transaction."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {tuple(STATUSES)}, not {status!r}")
    cur = conn.execute(
        "UPDATE referral_summary SET status = ?, closed = ?, status_at = ?, assigned_to = ? WHERE referral_key = ?",
        (status, int(status in CLOSED_STATUSES), (at or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
         assigned_to, normal_key(key)))
    if cur.rowcount != 1:
        raise KeyError(f"no referral {key}")


def refresh_from_decisions(conn: sqlite3.Connection, key: str, at: datetime | None = None) -> str:
    """Set a referral's status from its cases' latest per-case decisions (the case page's decision form):
    ``reported`` once every lesion the referral names is stored and decided with a closing outcome, else
    ``to-read``. Returns the status."""
    row = conn.execute("SELECT lesion_count, lesions_received, status FROM referral_summary WHERE referral_key = ?",
                       (key,)).fetchone()
    if row is None:
        raise KeyError(f"no referral {key}")
    lesion_count, received, current = row
    undecided = conn.execute(
        "SELECT count(*) FROM cases c WHERE (c.referral_id = ?1 OR (c.referral_id IS NULL AND c.case_id = ?1)) "
        "AND coalesce((SELECT outcome FROM decisions d WHERE d.case_id = c.case_id ORDER BY d.id DESC LIMIT 1), "
        "'better-images') = 'better-images'", (key,)).fetchone()[0]
    status = "reported" if received >= lesion_count and undecided == 0 else "to-read"
    if status != current:
        set_status(conn, key, status, at=at)
    return status
