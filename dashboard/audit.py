"""The audit log: append-only, who did what, when (the centre's clock, UTC) and from where.

It is a table in the centre's SQLite file. Triggers make SQLite itself refuse
``UPDATE`` and ``DELETE`` on it (``RAISE(ABORT, ...)``), and every entry carries
the SHA-256 of the previous entry and of itself (a hash chain): an entry changed
or removed by someone who drops the triggers shows up in :func:`verify_chain`.

Entries name cases by their UUID and images by their SHA-256, never by a
referral reference. Actions (``action`` column)::

    login.ok  login.failed  logout  access.denied
    worklist.view  worklist.search  case.view  image.view  decision.record  decision.refused  export
    claim.take  claim.release  claim.takeover  claim.refused
    user.create  user.deactivate  user.activate  user.password  user.password.failed  user.unlock  user.role
    device.revoke  device.issue  audit.view

:func:`record` is used inside a request (actor and address from Flask-Login and
the request); :func:`append` is the plain form for the command line (actor
``cli:<os user>``) and other processes.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import sqlite3
from datetime import datetime, timezone

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    remote_addr TEXT NOT NULL DEFAULT '',
    prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_actor ON audit_log (actor, id);
CREATE INDEX IF NOT EXISTS audit_action ON audit_log (action, id);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
"""

GENESIS = "0" * 64
_FIELDS = ("at", "actor", "role", "action", "target", "detail", "remote_addr")


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the audit table and its append-only triggers if missing."""
    conn.executescript(SCHEMA)


def _entry_hash(prev_hash: str, entry: dict) -> str:
    body = json.dumps([prev_hash] + [entry[f] for f in _FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def append(conn: sqlite3.Connection, *, actor: str, action: str, target: str = "", detail: str = "",
           role: str = "", remote_addr: str = "", at: datetime | None = None) -> int:
    """Append one entry (in its own ``BEGIN IMMEDIATE`` transaction, chained to the last); return its id."""
    entry = {"at": (at or datetime.now(timezone.utc)).isoformat(), "actor": actor[:128], "role": role,
             "action": action, "target": str(target)[:256], "detail": str(detail)[:1000],
             "remote_addr": remote_addr or ""}
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT entry_hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
        prev = row[0] if row else GENESIS
        cur = conn.execute(
            "INSERT INTO audit_log (at, actor, role, action, target, detail, remote_addr, prev_hash, entry_hash) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (*(entry[f] for f in _FIELDS), prev, _entry_hash(prev, entry)))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return cur.lastrowid


def cli_actor() -> str:
    """The actor name for entries made from the command line: ``cli:<os user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in a bare container
        return "cli:unknown"


def record(action: str, target: str = "", detail: str = "", *, actor: str | None = None) -> int:
    """Append an entry for the current request: the logged-in user (or ``actor``), role and remote address."""
    from flask import request
    from flask_login import current_user

    from .db import get_store

    if actor is None:
        actor = current_user.username if current_user.is_authenticated else "anonymous"
    role = current_user.role if current_user.is_authenticated else ""
    return append(get_store().conn, actor=actor, role=role, action=action, target=target, detail=detail,
                  remote_addr=request.remote_addr or "")


def entries(conn: sqlite3.Connection, *, actor: str = "", action: str = "", limit: int = 200,
            before_id: int | None = None) -> list[dict]:
    """Entries newest first, optionally only one actor's and/or actions starting with ``action``."""
    sql, args = "SELECT id, at, actor, role, action, target, detail, remote_addr FROM audit_log WHERE 1=1", []
    if actor:
        sql += " AND actor = ?"
        args.append(actor)
    if action:
        sql += " AND (action = ? OR action LIKE ?)"
        args += [action, action.rstrip(".") + ".%"]
    if before_id:
        sql += " AND id < ?"
        args.append(before_id)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    cols = ("id", "at", "actor", "role", "action", "target", "detail", "remote_addr")
    return [dict(zip(cols, r)) for r in conn.execute(sql, args)]


def actions(conn: sqlite3.Connection) -> list[str]:
    """The distinct actions present, for the filter."""
    return [r[0] for r in conn.execute("SELECT DISTINCT action FROM audit_log ORDER BY action")]


def verify_chain(conn: sqlite3.Connection) -> int | None:
    """The id of the first entry whose hash chain is broken (changed, removed or inserted), or None."""
    prev = GENESIS
    for row in conn.execute(f"SELECT id, {', '.join(_FIELDS)}, prev_hash, entry_hash FROM audit_log ORDER BY id"):
        entry = dict(zip(_FIELDS, row[1:8]))
        if row[8] != prev or row[9] != _entry_hash(prev, entry):
            return row[0]
        prev = row[9]
    return None
