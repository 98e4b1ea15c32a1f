"""The kiosk's audit log: who did what to which appointment, in ``<data_dir>/audit.db`` (SQLite).

Every row: when (UTC), the photographer's staff id, the action, the appointment's
``referral_id`` (a UUID the kiosk made), and where applicable the lesion number, view,
shot number and a short detail. Never a patient identifier: callers pass codes and
counts only (``detail`` is for words like ``"hair-unavoidable"`` or ``"2 cases"``).
Rows are only ever added (``synchronous=FULL``: an entry survives a power cut).
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

#: Every action the kiosk records.
ACTIONS = (
    "sign-in", "sign-in-refused", "locked", "sign-out", "open", "restored", "patient", "skin-type", "referral",
    "consent", "lesion-add", "lesion-update", "lesion-remove", "fills-view", "capture", "retake", "select",
    "override",
    "submit", "discard", "refused", "task-done",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    staff_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    referral_id TEXT,
    lesion      INTEGER,
    view        TEXT,
    shot        INTEGER,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_by_staff ON audit(staff_id, id);
CREATE INDEX IF NOT EXISTS audit_by_referral ON audit(referral_id, id);
"""


@dataclass(frozen=True)
class AuditEntry:
    """One row of the kiosk audit log."""

    id: int
    at: datetime
    staff_id: str
    action: str
    referral_id: str | None
    lesion: int | None
    view: str | None
    shot: int | None
    detail: str


class AuditLog:
    """Append-only kiosk audit log (thread-safe)."""

    def __init__(self, path: Path | str):
        """Open (creating if needed) the audit database at ``path``."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def record(self, action: str, staff_id: str, referral_id: uuid.UUID | str | None = None, *,
               lesion: int | None = None, view: str | None = None, shot: int | None = None,
               detail: str = "", at: datetime | None = None) -> int:
        """Append one entry; returns its id. Raises sqlite3.Error (e.g. disk full) when it cannot be written."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        at = at or datetime.now(timezone.utc)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO audit (at, staff_id, action, referral_id, lesion, view, shot, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (at.isoformat(), staff_id, action, str(referral_id) if referral_id else None, lesion, view, shot,
                 detail[:200]))
            return cur.lastrowid

    def entries(self, referral_id: uuid.UUID | str | None = None, staff_id: str | None = None,
                limit: int = 1000) -> list[AuditEntry]:
        """Entries, oldest first, optionally of one appointment and/or one staff id."""
        where, args = [], []
        if referral_id is not None:
            where.append("referral_id = ?")
            args.append(str(referral_id))
        if staff_id is not None:
            where.append("staff_id = ?")
            args.append(staff_id)
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [AuditEntry(r[0], datetime.fromisoformat(r[1]), *r[2:]) for r in rows]

    def failures_since_success(self, staff_id: str, within: timedelta) -> tuple[int, datetime | None]:
        """``(wrong PINs since the last sign-in or lock of staff_id, when the newest lock began)``.

        Only entries newer than ``within`` count, so old mistakes expire. The lockout is derived
        from the log itself, so it survives a restart and every refusal is on record.
        """
        since = (datetime.now(timezone.utc) - within).isoformat()
        with self._lock:
            rows = self._db.execute(
                "SELECT action, at FROM audit WHERE staff_id = ? AND at >= ? AND action IN"
                " ('sign-in', 'sign-in-refused', 'locked') ORDER BY id DESC", (staff_id, since)).fetchall()
        failures, locked_at = 0, None
        for action, at in rows:
            if action == "locked":
                locked_at = datetime.fromisoformat(at)
                break
            if action == "sign-in":
                break
            failures += 1
        return failures, locked_at
