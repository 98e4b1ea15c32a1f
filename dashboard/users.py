"""Dashboard accounts: users, roles, password hashes and the log-in throttle, in the centre's SQLite file.

Passwords are hashed with scrypt (werkzeug's ``generate_password_hash(method="scrypt")``:
n=2**15, r=8, p=1, 16-byte random salt); the plaintext is never stored or logged.

Throttling lives in the database so that it survives a restart of the dashboard:

* per account: ``max_failures`` wrong passwords in a row lock the account until
  ``locked_until`` (``lockout_s`` later); a correct password while locked is refused too;
* per remote address: ``addr_max_failures`` failures (any user name, known or not) within
  ``lockout_s`` lock the address out for ``lockout_s``.

All functions take an open :class:`sqlite3.Connection` in autocommit mode (the
store's), so the dashboard and the command line share one code path.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from werkzeug.security import check_password_hash, generate_password_hash

ROLES = ("dermatologist", "it", "admin")
ROLE_NAMES = {"dermatologist": "Dermatologist (cases)", "it": "IT (fleet only)", "admin": "Administrator"}
MIN_PASSWORD = 12
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('dermatologist', 'it', 'admin')),
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    failed_count INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    last_login_at TEXT,
    password_changed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS login_throttle (
    remote_addr TEXT PRIMARY KEY,
    failed_count INTEGER NOT NULL DEFAULT 0,
    window_start TEXT NOT NULL,
    locked_until TEXT
);
CREATE TABLE IF NOT EXISTS web_sessions (
    token_sha256 TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    stamp TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    ended_at TEXT,
    remote_addr TEXT NOT NULL DEFAULT ''
);
"""

#: Hash of a random password, checked when the user name is unknown so both paths cost one scrypt.
_DUMMY_HASH = generate_password_hash("dermkiosk-no-such-user-" + hashlib.sha256(b"x").hexdigest(), "scrypt")


class UserError(ValueError):
    """A user could not be created or changed (the message says why, for a person)."""


@dataclass(frozen=True)
class User:
    """One dashboard account (never carries the password hash out of this module except as a stamp)."""

    id: int
    username: str
    role: str
    active: bool
    created_at: str
    failed_count: int
    locked_until: str | None
    last_login_at: str | None
    stamp: str  # changes whenever the password changes: part of the session id, so old sessions die

    def locked(self, now: datetime) -> bool:
        """Whether the account is locked out at ``now``."""
        return bool(self.locked_until) and datetime.fromisoformat(self.locked_until) > now


@dataclass(frozen=True)
class Policy:
    """Throttle settings (from ``[web]`` of the centre config)."""

    max_failures: int = 5
    lockout_s: int = 900
    addr_max_failures: int = 20


def utcnow() -> datetime:
    """The centre's clock, tz-aware UTC."""
    return datetime.now(timezone.utc)


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the users and throttle tables if missing."""
    conn.executescript(SCHEMA)


def _row_to_user(row: sqlite3.Row | tuple) -> User:
    (id_, username, pw_hash, role, active, created_at, failed, locked, last_login) = row
    stamp = hashlib.sha256(pw_hash.encode()).hexdigest()[:16]
    return User(id_, username, role, bool(active), created_at, failed, locked, last_login, stamp)


_COLS = "id, username, password_hash, role, active, created_at, failed_count, locked_until, last_login_at"


def get_user(conn: sqlite3.Connection, *, user_id: int | None = None, username: str | None = None) -> User | None:
    """One user by id or by user name (case-insensitive), or None."""
    if user_id is not None:
        row = conn.execute(f"SELECT {_COLS} FROM users WHERE id = ?", (user_id,)).fetchone()
    else:
        row = conn.execute(f"SELECT {_COLS} FROM users WHERE username = ?", ((username or "").lower(),)).fetchone()
    return _row_to_user(row) if row else None


def list_users(conn: sqlite3.Connection) -> list[User]:
    """All users, by user name."""
    return [_row_to_user(r) for r in conn.execute(f"SELECT {_COLS} FROM users ORDER BY username")]


def check_username(username: str) -> str:
    """The normalised (lower-case) user name, or ``UserError``."""
    name = (username or "").strip().lower()
    if not 2 <= len(name) <= 64 or not set(name) <= USERNAME_CHARS:
        raise UserError("user name: 2 to 64 characters, letters, digits, '.', '_' or '-'")
    return name


def check_password(password: str) -> None:
    """Raise ``UserError`` unless the password is long enough (length beats composition rules)."""
    if len(password or "") < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise UserError("password: at most 1024 characters")


def hash_password(password: str) -> str:
    """scrypt hash of a password (random salt), in werkzeug's ``scrypt:n:r:p$salt$hash`` form."""
    return generate_password_hash(password, method="scrypt")


def create_user(conn: sqlite3.Connection, username: str, password: str, role: str) -> User:
    """Create an active user; ``UserError`` if the name is taken or a value is not acceptable."""
    name = check_username(username)
    if role not in ROLES:
        raise UserError(f"role: one of {', '.join(ROLES)}")
    check_password(password)
    now = utcnow().isoformat()
    try:
        conn.execute("INSERT INTO users (username, password_hash, role, active, created_at, password_changed_at) "
                     "VALUES (?,?,?,1,?,?)", (name, hash_password(password), role, now, now))
    except sqlite3.IntegrityError:
        raise UserError(f"user name {name!r} is taken") from None
    return get_user(conn, username=name)


def set_password(conn: sqlite3.Connection, user_id: int, password: str) -> None:
    """Replace a password (ends the user's sessions: their stamp changes) and clear the lock-out."""
    check_password(password)
    conn.execute("UPDATE users SET password_hash = ?, password_changed_at = ?, failed_count = 0, "
                 "locked_until = NULL WHERE id = ?", (hash_password(password), utcnow().isoformat(), user_id))


def set_active(conn: sqlite3.Connection, user_id: int, active: bool) -> None:
    """Activate or deactivate a user (a deactivated user's session ends on its next request)."""
    conn.execute("UPDATE users SET active = ? WHERE id = ?", (1 if active else 0, user_id))


def set_role(conn: sqlite3.Connection, user_id: int, role: str) -> None:
    """Change a user's role."""
    if role not in ROLES:
        raise UserError(f"role: one of {', '.join(ROLES)}")
    conn.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))


def unlock(conn: sqlite3.Connection, user_id: int) -> None:
    """Clear an account's failure count and lock-out."""
    conn.execute("UPDATE users SET failed_count = 0, locked_until = NULL WHERE id = ?", (user_id,))


def count_admins(conn: sqlite3.Connection) -> int:
    """Active administrators (the last one cannot be deactivated from the dashboard)."""
    return conn.execute("SELECT count(*) FROM users WHERE role = 'admin' AND active = 1").fetchone()[0]


@dataclass(frozen=True)
class LoginResult:
    """Outcome of :func:`authenticate`: ``user`` on success, else ``reason`` (for the audit log only)."""

    user: User | None
    reason: str  # "ok" | "bad-password" | "unknown-user" | "inactive" | "account-locked" | "address-locked"


def address_locked(conn: sqlite3.Connection, remote_addr: str, now: datetime | None = None) -> bool:
    """Whether this remote address is locked out of logging in."""
    now = now or utcnow()
    row = conn.execute("SELECT locked_until FROM login_throttle WHERE remote_addr = ?", (remote_addr,)).fetchone()
    return bool(row and row[0] and datetime.fromisoformat(row[0]) > now)


def _address_failure(conn: sqlite3.Connection, remote_addr: str, now: datetime, policy: Policy) -> None:
    row = conn.execute("SELECT failed_count, window_start FROM login_throttle WHERE remote_addr = ?",
                       (remote_addr,)).fetchone()
    if row is None or datetime.fromisoformat(row[1]) + timedelta(seconds=policy.lockout_s) < now:
        count, start = 1, now
    else:
        count, start = row[0] + 1, datetime.fromisoformat(row[1])
    locked = (now + timedelta(seconds=policy.lockout_s)).isoformat() if count >= policy.addr_max_failures else None
    day_ago = (now - timedelta(days=1)).isoformat()  # housekeeping: forget addresses quiet for a day
    conn.execute("DELETE FROM login_throttle WHERE window_start < ? AND coalesce(locked_until, '') < ?",
                 (day_ago, now.isoformat()))
    conn.execute("INSERT INTO login_throttle (remote_addr, failed_count, window_start, locked_until) "
                 "VALUES (?,?,?,?) ON CONFLICT(remote_addr) DO UPDATE SET failed_count = excluded.failed_count, "
                 "window_start = excluded.window_start, "
                 "locked_until = coalesce(excluded.locked_until, login_throttle.locked_until)",
                 (remote_addr, count, start.isoformat(), locked))


def authenticate(conn: sqlite3.Connection, username: str, password: str, remote_addr: str,
                 policy: Policy = Policy(), now: datetime | None = None) -> LoginResult:
    """Check a log-in attempt against the throttle and the password; record the failure or the success.

    A locked account or address is refused without looking at the password
    (the answer to the person is the same generic message in every failure case).
    """
    now = now or utcnow()
    if address_locked(conn, remote_addr, now):
        return LoginResult(None, "address-locked")
    row = conn.execute(f"SELECT {_COLS} FROM users WHERE username = ?", ((username or "").strip().lower(),)).fetchone()
    if row is None:
        check_password_hash(_DUMMY_HASH, password or "")
        conn.execute("BEGIN IMMEDIATE")
        try:
            _address_failure(conn, remote_addr, now, policy)
        finally:
            conn.execute("COMMIT")
        return LoginResult(None, "unknown-user")
    user = _row_to_user(row)
    if user.locked(now):
        return LoginResult(user, "account-locked")
    ok = check_password_hash(row[2], password or "")
    conn.execute("BEGIN IMMEDIATE")
    try:
        if ok and user.active:
            conn.execute("UPDATE users SET failed_count = 0, locked_until = NULL, last_login_at = ? WHERE id = ?",
                         (now.isoformat(), user.id))
        else:
            failed = user.failed_count + 1
            locked = (now + timedelta(seconds=policy.lockout_s)).isoformat() if failed >= policy.max_failures else None
            conn.execute("UPDATE users SET failed_count = ?, locked_until = ? WHERE id = ?",
                         (0 if locked else failed, locked, user.id))
            _address_failure(conn, remote_addr, now, policy)
    finally:
        conn.execute("COMMIT")
    if not ok:
        return LoginResult(user, "bad-password")
    if not user.active:
        return LoginResult(user, "inactive")
    return LoginResult(get_user(conn, user_id=user.id), "ok")


# -- server-side sessions -------------------------------------------------------------
# The signed session cookie carries a random token; the database keeps its SHA-256, so
# log-out, deactivation and a password change end a session even if its cookie was copied.


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(conn: sqlite3.Connection, user: User, remote_addr: str, now: datetime | None = None) -> str:
    """Open a session for ``user``; return its random token (kept only in the signed cookie)."""
    token = secrets.token_urlsafe(32)
    now = now or utcnow()
    now_s = now.isoformat()
    # housekeeping: forget sessions that ended (or were last used) more than a week ago
    week_ago = (now - timedelta(days=7)).isoformat()
    conn.execute("DELETE FROM web_sessions WHERE coalesce(ended_at, last_seen) < ?", (week_ago,))
    conn.execute("INSERT INTO web_sessions (token_sha256, user_id, stamp, created_at, last_seen, remote_addr) "
                 "VALUES (?,?,?,?,?,?)", (_token_hash(token), user.id, user.stamp, now_s, now_s, remote_addr))
    return token


def load_session(conn: sqlite3.Connection, token: str, lifetime_s: int, idle_s: int,
                 now: datetime | None = None) -> User | None:
    """The user of a live session: not ended, not past its lifetime or idle time, user active, same password."""
    now = now or utcnow()
    row = conn.execute("SELECT user_id, stamp, created_at, last_seen, ended_at FROM web_sessions "
                       "WHERE token_sha256 = ?", (_token_hash(token),)).fetchone()
    if row is None or row[4] is not None:
        return None
    created, last_seen = datetime.fromisoformat(row[2]), datetime.fromisoformat(row[3])
    if now - created > timedelta(seconds=lifetime_s) or now - last_seen > timedelta(seconds=idle_s):
        end_session(conn, token, now)
        return None
    user = get_user(conn, user_id=row[0])
    if user is None or not user.active or user.stamp != row[1]:
        end_session(conn, token, now)
        return None
    if now - last_seen > timedelta(seconds=30):
        conn.execute("UPDATE web_sessions SET last_seen = ? WHERE token_sha256 = ?",
                     (now.isoformat(), _token_hash(token)))
    return user


def end_session(conn: sqlite3.Connection, token: str, now: datetime | None = None) -> None:
    """End one session (log-out)."""
    conn.execute("UPDATE web_sessions SET ended_at = ? WHERE token_sha256 = ? AND ended_at IS NULL",
                 ((now or utcnow()).isoformat(), _token_hash(token)))


def end_user_sessions(conn: sqlite3.Connection, user_id: int) -> int:
    """End every open session of a user (deactivation, password reset); return how many."""
    cur = conn.execute("UPDATE web_sessions SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL",
                       (utcnow().isoformat(), user_id))
    return cur.rowcount
