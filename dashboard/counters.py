"""The ingest's counters (cases stored, duplicates, quarantined by reason, acks sent) and quarantine reason codes.

Each ingest process counts in memory and adds its counts to the ``ingest_counters`` table with
its heartbeat (every few seconds, :meth:`dashboard.ingest_worker.IngestWorker._heartbeat`) and when
it stops, so that ``/metrics``, served by another process, exposes them as Prometheus counters
(``..._total``, never decreasing: they survive restarts) from which Prometheus computes rates.
A process killed outright loses at most the last few seconds of counts, never a case.

A quarantine reason is free text (it names the kiosk, the field...); :func:`reason_code` maps it to
one of :data:`REASON_CODES`, the bounded ``reason`` label of the quarantine counter and the code
shown on the quarantine page.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

from .store.schema import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS ingest_counters (
    client_id TEXT NOT NULL,
    name TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    value REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, name, label)
);
"""

#: Counter names (without the ``dermkiosk_ingest_`` prefix and ``_total`` suffix).
STORED, DUPLICATE, QUARANTINED, ACKS_SENT = "cases_stored", "cases_duplicate", "messages_quarantined", "acks_sent"
COUNTERS = {
    STORED: "Cases stored (committed) by the ingest",
    DUPLICATE: "Cases received again and acknowledged as duplicates (stored once)",
    QUARANTINED: "Messages refused and kept in the quarantine, by reason",
    ACKS_SENT: "Acks published to kiosks (stored, duplicate or rejected), counted per case",
}

#: (code, what the reason text starts with or contains); the first match wins.
_RULES = (
    ("wrong-hub", "is registered for hub"),
    ("unregistered", "is not registered at the centre"),
    ("bad-topic", "bad topic"),
    ("device-mismatch", "topic is "),
    ("device-mismatch", "device in topic and payload differ"),
    ("hash-mismatch", "sha256 mismatch"),
    ("conflict", "already stored with different content"),
    ("internal", "internal error"),
    ("invalid-status", "invalid status message"),
    ("invalid-health", "invalid health message"),
    ("invalid-update-result", "invalid update-result message"),
    ("bad-frame", "not a DKC1 case frame"),
    ("bad-frame", "header length"),
    ("bad-frame", "payload is"),
    ("invalid-header", "invalid header"),
)
REASON_CODES = tuple(dict.fromkeys(code for code, _ in _RULES)) + ("other",)


def reason_code(reason: str) -> str:
    """The bounded code of a quarantine reason (``wrong-hub``, ``bad-frame``, ... or ``other``)."""
    for code, text in _RULES:
        if text in reason:
            return code
    return "other"


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the counters table if missing."""
    conn.executescript(SCHEMA)


def flush(conn: sqlite3.Connection, client_id: str, counts: Counter) -> None:
    """Add ``counts`` (``(name, label) -> n``) to ``client_id``'s counters in one transaction, then clear them.

    Storage errors propagate and ``counts`` is kept, to be added at the next flush."""
    if not counts:
        return
    with transaction(conn):
        for (name, label), n in counts.items():
            conn.execute("INSERT INTO ingest_counters (client_id, name, label, value) VALUES (?,?,?,?) "
                         "ON CONFLICT(client_id, name, label) DO UPDATE SET value=value+excluded.value",
                         (client_id, name, label, n))
    counts.clear()


def read(conn: sqlite3.Connection) -> list[tuple[str, str, str, float]]:
    """Every counter: ``(client_id, name, label, value)``."""
    ensure_schema(conn)
    return [tuple(r) for r in conn.execute(
        "SELECT client_id, name, label, value FROM ingest_counters ORDER BY name, client_id, label")]
