"""Kiosk staff (photographers): the service the admin pages and ``python -m dashboard staff`` share.

Staff sign in at kiosks with a staff id and a PIN. The centre keeps them in
``kiosk_staff`` with the PIN only as a salted scrypt hash (:func:`wire.staff.hash_pin`),
and sends the active ones to kiosks as a :class:`wire.staff.StaffRoster`:
``staff.json`` (:data:`wire.staff.STAFF_FILE`) in a signed configuration bundle
(:func:`dashboard.updates.build_bundle`, kind ``config``), published on each known
kiosk's update topic like any update and recorded in the fleet's ``updates`` table.
A new roster replaces the kiosk's old one, so a deactivated person can no longer
sign in once the roster has been sent. Nothing here logs or audits a PIN.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone

from werkzeug.security import check_password_hash

from wire.referral import STAFF_ID_PATTERN
from wire.staff import PIN_MAX, PIN_MIN, STAFF_FILE, StaffMember, StaffRoster, check_pin_format, hash_pin

SCHEMA = """
CREATE TABLE IF NOT EXISTS kiosk_staff (
    staff_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'photographer',
    pin_hash TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""
ROLES = {"photographer": "Clinical photographer", "nurse": "Nurse", "clinician": "Clinician"}
#: Roster versions sort by time: ``staff-20260105T090000Z``.
VERSION_PREFIX = "staff-"


class StaffError(ValueError):
    """A staff change that cannot be made; ``str()`` says what to fix."""


def utcnow() -> datetime:
    """The centre's clock (UTC)."""
    return datetime.now(timezone.utc)


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the staff table if missing."""
    conn.executescript(SCHEMA)


def _pin(pin: str, again: str) -> str:
    try:
        pin = check_pin_format(pin)
    except ValueError as exc:
        raise StaffError(str(exc)) from None
    if (again or "").strip() != pin:
        raise StaffError("The two PINs differ: enter the same PIN twice.")
    return pin


def check_staff_id(staff_id: str) -> str:
    """A staff id as the kiosks accept it (letters, digits, '.', '_', '-'; up to 32); StaffError otherwise."""
    staff_id = (staff_id or "").strip()
    if not re.fullmatch(STAFF_ID_PATTERN, staff_id):
        raise StaffError("A staff id is 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit "
                         "(e.g. ph.jones); never a patient's details.")
    return staff_id


def list_staff(conn: sqlite3.Connection) -> list[dict]:
    """Every staff member (active first, then by id), without PIN hashes."""
    cols = ("staff_id", "name", "role", "active", "created_at", "updated_at")
    return [dict(zip(cols, r)) for r in conn.execute(
        f"SELECT {', '.join(cols)} FROM kiosk_staff ORDER BY active DESC, staff_id")]


def get(conn: sqlite3.Connection, staff_id: str) -> dict | None:
    """One staff member (without the PIN hash), or None."""
    return next((m for m in list_staff(conn) if m["staff_id"] == staff_id), None)


def add(conn: sqlite3.Connection, staff_id: str, name: str, role: str, pin: str, pin_again: str,
        *, update: bool = False, now: datetime | None = None) -> dict:
    """Add a staff member with a PIN entered twice; with ``update`` an existing one gets name, role, PIN and is
    reactivated (the demo's seeding). StaffError says what to fix."""
    staff_id = check_staff_id(staff_id)
    name = " ".join((name or "").split())
    if not name or len(name) > 80:
        raise StaffError("Enter the person's name (at most 80 characters).")
    if role not in ROLES:
        raise StaffError(f"Choose a role: {', '.join(ROLES)}.")
    pin = _pin(pin, pin_again)
    at = (now or utcnow()).isoformat()
    row = conn.execute("SELECT name, role, active, pin_hash FROM kiosk_staff WHERE staff_id = ?", (staff_id,)).fetchone()
    if row is not None and not update:
        raise StaffError(f"Staff id {staff_id} exists already: reset its PIN or choose another id.")
    if row is not None and row[:3] == (name, role, 1) and check_password_hash(row[3], pin):
        return get(conn, staff_id)  # nothing changes: the roster the kiosks have stays the latest
    pin_hash = hash_pin(pin)
    conn.execute("INSERT INTO kiosk_staff (staff_id, name, role, pin_hash, active, created_at, updated_at) "
                 "VALUES (?,?,?,?,1,?,?) ON CONFLICT(staff_id) DO UPDATE SET name=excluded.name, "
                 "role=excluded.role, pin_hash=excluded.pin_hash, active=1, updated_at=excluded.updated_at",
                 (staff_id, name, role, pin_hash, at, at))
    return get(conn, staff_id)


def reset_pin(conn: sqlite3.Connection, staff_id: str, pin: str, pin_again: str, now: datetime | None = None) -> None:
    """Give a staff member a new PIN (entered twice)."""
    pin_hash = hash_pin(_pin(pin, pin_again))
    if conn.execute("UPDATE kiosk_staff SET pin_hash=?, updated_at=? WHERE staff_id=?",
                    (pin_hash, (now or utcnow()).isoformat(), staff_id)).rowcount == 0:
        raise StaffError(f"No staff member {staff_id}.")


def set_active(conn: sqlite3.Connection, staff_id: str, active: bool, now: datetime | None = None) -> None:
    """Deactivate (left out of the next roster) or reactivate a staff member."""
    if conn.execute("UPDATE kiosk_staff SET active=?, updated_at=? WHERE staff_id=?",
                    (int(active), (now or utcnow()).isoformat(), staff_id)).rowcount == 0:
        raise StaffError(f"No staff member {staff_id}.")


def roster(conn: sqlite3.Connection, now: datetime | None = None) -> StaffRoster:
    """The roster kiosks get: every active member with their PIN hash."""
    now = now or utcnow()
    members = [StaffMember(staff_id=s, name=n, role=r, pin_hash=h) for s, n, r, h in conn.execute(
        "SELECT staff_id, name, role, pin_hash FROM kiosk_staff WHERE active = 1 ORDER BY staff_id")]
    return StaffRoster(version=f"{VERSION_PREFIX}{now:%Y%m%dT%H%M%SZ}", issued_at=now, staff=members)


def roster_json(r: StaffRoster) -> bytes:
    """The roster as ``staff.json`` bytes."""
    return r.model_dump_json(indent=2).encode()


def roster_bundle(r: StaffRoster, key, device: str) -> bytes:
    """A signed config bundle holding only ``staff.json``, for one kiosk."""
    from .updates import build_bundle

    return build_bundle("config", r.version, {STAFF_FILE: roster_json(r)}, key, [device])


def pending_since(conn: sqlite3.Connection) -> str | None:
    """When the roster last changed after it was last sent (ISO), or None when the kiosks have the latest."""
    changed = conn.execute("SELECT max(updated_at) FROM kiosk_staff").fetchone()[0]
    try:
        sent = conn.execute("SELECT max(sent_at) FROM updates WHERE kind = 'config' AND version LIKE ?",
                            (VERSION_PREFIX + "%",)).fetchone()[0]
    except sqlite3.OperationalError:  # no fleet tables yet
        sent = None
    return changed if changed and (sent is None or changed > sent) else None


@dataclass(frozen=True)
class Sent:
    """The roster's fate at one kiosk: ``error`` is None when the broker took the bundle."""

    site: str
    device: str
    error: str | None = None


class NotConfigured(StaffError):
    """The centre has no signing key or publisher settings for sending rosters."""


def send_roster(store, updates_config, now: datetime | None = None, devices: list[str] | None = None,
                publish=None) -> tuple[StaffRoster, list[Sent]]:
    """Sign the current roster for each known kiosk (or ``devices``) and publish it; record each send.

    ``updates_config`` is a :class:`dashboard.config.UpdatesConfig`; ``publish`` defaults to
    :func:`dashboard.updates.publish`. A kiosk the broker would not take the bundle for is reported
    in its :class:`Sent`, not raised: the others still get theirs.
    """
    from . import updates
    from .fleet import record_update_sent

    if updates_config is None or updates_config.key_file is None or updates_config.broker is None:
        raise NotConfigured("Sending rosters needs the [updates] section of the centre's configuration: key_file "
                            "(python -m dashboard update make-key) and broker (the 'updates' identity).")
    try:
        key = updates.load_private_key(updates_config.key_file)
    except (OSError, ValueError) as exc:
        raise NotConfigured(f"The update signing key cannot be read: {exc}") from None
    publish = publish or updates.publish
    r = roster(store.conn, now)
    known = {d["device"]: d["site"] for d in store.list_devices()}
    targets = devices or sorted(known)
    if not targets:
        raise StaffError("No kiosk is known at the centre yet: a kiosk appears once it has connected.")
    out = []
    for device in targets:
        if device not in known:
            out.append(Sent("?", device, "unknown kiosk"))
            continue
        bundle = roster_bundle(r, key, device)
        try:
            publish(updates_config.broker, known[device], device, bundle, timeout=10.0)
        except (OSError, TimeoutError, ValueError) as exc:
            out.append(Sent(known[device], device, str(exc) or type(exc).__name__))
            continue
        record_update_sent(store, updates.bundle_manifest(bundle), known[device], device)
        out.append(Sent(known[device], device))
    return r, out


__all__ = ["StaffError", "NotConfigured", "Sent", "ROLES", "ensure_schema", "list_staff", "get", "add", "reset_pin",
           "set_active", "roster", "roster_json", "roster_bundle", "send_roster", "pending_since", "PIN_MIN",
           "PIN_MAX"]
