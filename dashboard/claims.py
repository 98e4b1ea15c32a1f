"""Claims on referrals: the reader who opens a referral holds it for a while; nobody else may decide on it.

Opening a referral to read it claims it for ``[worklist] claim_minutes`` (default
20; each opening renews it). While the claim holds, other readers see who holds
it and until when, and cannot decide (:func:`require_claim` refuses them with
:class:`ClaimError`). The holder may release it; another reader may take it over
(a reader gone home with the referral open). A claim that ran out is no claim.

One row per referral in ``claims`` (a table of the store, :mod:`dashboard.store.summary`,
since the worklist's "mine" filter reads it); every change runs in a ``BEGIN IMMEDIATE``
transaction, so two readers opening the same referral at once get one claim
between them. Taking, releasing, taking over and a refusal are written to the
audit log (``claim.take``, ``claim.release``, ``claim.takeover``,
``claim.refused``), naming the referral by its key (a UUID), never by a patient
identifier. Renewing one's own claim is not written again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from . import audit
from .store import summary
from .store.schema import transaction

DEFAULT_MINUTES = 20


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the claims table if missing (it is the store's: :data:`dashboard.store.summary.SCHEMA`)."""
    summary.ensure(conn)


def stamp(dt: datetime) -> str:
    """A claim time as stored: UTC, ISO 8601 to the second (so that stored times compare as text)."""
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Claim:
    """Who holds a referral, since when and until when (UTC)."""

    referral_key: str
    holder: str
    claimed_at: datetime
    expires_at: datetime

    def held_by(self, user: str) -> bool:
        """Whether ``user`` is the holder."""
        return self.holder == user

    @property
    def until(self) -> str:
        """The expiry for a person, ``HH:MM UTC``."""
        return f"{self.expires_at:%H:%M} UTC"


class ClaimError(Exception):
    """A claim refused or missing; ``str()`` says why for a person, ``claim`` is the other reader's (if any)."""

    def __init__(self, message: str, claim: Claim | None = None):
        """``message`` for the person; ``claim``: the claim that stands in the way, if any."""
        super().__init__(message)
        self.claim = claim


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)


def _row(conn: sqlite3.Connection, key: str, now: datetime) -> Claim | None:
    row = conn.execute("SELECT holder, claimed_at, expires_at FROM claims WHERE referral_key = ? AND expires_at > ?",
                       (key, stamp(now))).fetchone()
    if row is None:
        return None
    return Claim(key, row[0], datetime.fromisoformat(row[1]), datetime.fromisoformat(row[2]))


def _key(conn: sqlite3.Connection, referral_key: str) -> str:
    key = summary.normal_key(referral_key)
    if key is None or conn.execute("SELECT 1 FROM referral_summary WHERE referral_key = ?", (key,)).fetchone() is None:
        raise ClaimError("There is no such referral.")
    return key


def held_message(claim: Claim) -> str:
    """What another reader is told: who holds the referral and until when."""
    return (f"{claim.holder} is reading this referral (claimed until {claim.until}). You can read it, but not "
            "decide on it, unless you take it over.")


def holder(conn: sqlite3.Connection, referral_key: str, now: datetime | None = None) -> Claim | None:
    """The referral's claim, if one holds now (None when unclaimed or run out)."""
    key = summary.normal_key(referral_key)
    return _row(conn, key, _now(now)) if key else None


def holders(conn: sqlite3.Connection, keys: list[str], now: datetime | None = None) -> dict[str, Claim]:
    """The claims holding now among ``keys`` (for a worklist page), by referral key."""
    if not keys:
        return {}
    now = _now(now)
    marks = ",".join("?" * len(keys))
    return {k: Claim(k, h, datetime.fromisoformat(c), datetime.fromisoformat(e)) for k, h, c, e in conn.execute(
        f"SELECT referral_key, holder, claimed_at, expires_at FROM claims WHERE referral_key IN ({marks}) "
        "AND expires_at > ?", [*keys, stamp(now)])}


def _audit(conn, user: str, action: str, key: str, detail: str, role: str, remote_addr: str) -> None:
    audit.append(conn, actor=user, role=role, action=action, target=key, detail=detail, remote_addr=remote_addr)


def claim(conn: sqlite3.Connection, referral_key: str, user: str, *, minutes: int = DEFAULT_MINUTES,
          now: datetime | None = None, role: str = "", remote_addr: str = "") -> Claim:
    """Claim (or renew one's claim on) a referral for ``minutes``; :class:`ClaimError` when another holds it."""
    now = _now(now)
    key = _key(conn, referral_key)
    with transaction(conn):
        other = _row(conn, key, now)
        if other is not None and not other.held_by(user):
            refused = other
        else:
            refused = None
            since = other.claimed_at if other else now
            conn.execute("INSERT OR REPLACE INTO claims (referral_key, holder, claimed_at, expires_at) VALUES (?,?,?,?)",
                         (key, user, stamp(since), stamp(now + timedelta(minutes=minutes))))
    if refused is not None:
        _audit(conn, user, "claim.refused", key, f"held by {refused.holder} until {stamp(refused.expires_at)}",
               role, remote_addr)
        raise ClaimError(held_message(refused), refused)
    if other is None:
        _audit(conn, user, "claim.take", key, f"until {stamp(now + timedelta(minutes=minutes))}", role, remote_addr)
    return Claim(key, user, since, now + timedelta(minutes=minutes))


def release(conn: sqlite3.Connection, referral_key: str, user: str, *, now: datetime | None = None, role: str = "",
            remote_addr: str = "") -> None:
    """Give up one's claim; :class:`ClaimError` when ``user`` does not hold it (take it over instead)."""
    now = _now(now)
    key = _key(conn, referral_key)
    with transaction(conn):
        current = _row(conn, key, now)
        if current is not None and current.held_by(user):
            conn.execute("DELETE FROM claims WHERE referral_key = ?", (key,))
    if current is None:
        raise ClaimError("This referral is not claimed by anyone (the claim may have run out): nothing to release.")
    if not current.held_by(user):
        raise ClaimError(f"Only {current.holder}, who holds this referral, can release it; you can take it over.",
                         current)
    _audit(conn, user, "claim.release", key, "", role, remote_addr)


def take_over(conn: sqlite3.Connection, referral_key: str, user: str, *, minutes: int = DEFAULT_MINUTES,
              now: datetime | None = None, role: str = "", remote_addr: str = "") -> Claim:
    """Take a referral's claim from whoever holds it (or claim it when nobody does)."""
    now = _now(now)
    key = _key(conn, referral_key)
    with transaction(conn):
        before = _row(conn, key, now)
        conn.execute("INSERT OR REPLACE INTO claims (referral_key, holder, claimed_at, expires_at) VALUES (?,?,?,?)",
                     (key, user, stamp(now), stamp(now + timedelta(minutes=minutes))))
    if before is None or before.held_by(user):
        action, detail = ("claim.take", f"until {stamp(now + timedelta(minutes=minutes))}")
    else:
        action, detail = ("claim.takeover", f"from {before.holder} (held until {stamp(before.expires_at)})")
    _audit(conn, user, action, key, detail, role, remote_addr)
    return Claim(key, user, now, now + timedelta(minutes=minutes))


def require_claim(referral_key: str, user: str, *, conn: sqlite3.Connection | None = None,
                  now: datetime | None = None) -> Claim:
    """``user``'s claim on the referral, checked before any decision on it; :class:`ClaimError` otherwise
    (held by another: who and until when; not held: open the referral again to claim it). ``conn``: the
    store's connection (default: the request's store)."""
    conn = conn if conn is not None else _request_conn()
    now = _now(now)
    key = _key(conn, referral_key)
    current = _row(conn, key, now)
    if current is None:
        raise ClaimError("You no longer hold this referral (your claim ran out or was released). Open it again to "
                         "claim it, then decide.")
    if not current.held_by(user):
        raise ClaimError(f"{current.holder} holds this referral now (claimed until {current.until}): your decision "
                         "was not saved. Take it over to decide.", current)
    return current


def _request_conn() -> sqlite3.Connection:
    from .db import get_store

    return get_store().conn


def claim_minutes() -> int:
    """The configured claim time (``[worklist] claim_minutes``) of the running app."""
    from flask import current_app

    cfg = current_app.config.get("WORKLIST")
    return cfg.claim_minutes if cfg is not None else DEFAULT_MINUTES


def claim_on_open(referral_key: str) -> Claim:
    """In a request: claim the referral for the logged-in reader as they open it (or renew their claim).

    Returns their claim, or, when another reader holds it, that reader's claim (the page then shows who holds
    it and offers to take it over; the refusal is audited). ``ClaimError`` only for a referral that does not
    exist. Compare ``claim.held_by(current_user.username)``.
    """
    from flask import request
    from flask_login import current_user

    try:
        return claim(_request_conn(), referral_key, current_user.username, minutes=claim_minutes(),
                     role=current_user.role, remote_addr=request.remote_addr or "")
    except ClaimError as exc:
        if exc.claim is None:
            raise
        return exc.claim


def mine(conn: sqlite3.Connection, user: str, now: datetime | None = None) -> list[str]:
    """The referral keys ``user`` holds now."""
    return [r[0] for r in conn.execute("SELECT referral_key FROM claims WHERE holder = ? AND expires_at > ?",
                                       (user, stamp(_now(now))))]
