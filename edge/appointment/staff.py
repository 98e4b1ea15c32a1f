"""Who may sign in at this kiosk: the staff roster and the PIN check with its lockout.

The roster (:class:`wire.staff.StaffRoster`) comes from ``<data_dir>/config/staff.json``,
written by a signed configuration bundle (:mod:`edge.update`), or, until one arrived, from
the file named by config ``appointment.staff_file`` (a seed). The file is read again when
it changes, so a new roster takes effect without a restart. PINs are checked against their
salted scrypt hashes; 5 wrong PINs lock the staff id for 5 minutes (the count and the lock
come from the audit log, so they survive a restart).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import ValidationError

from wire.staff import STAFF_FILE, StaffMember, StaffRoster

from .audit import AuditLog
from .errors import SignInError

log = logging.getLogger("edge.appointment")

#: Wrong PINs in a row that lock a staff id, and for how long.
MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=5)
#: Wrong PINs older than this are forgotten.
FAILURE_WINDOW = timedelta(hours=12)

EMPTY = StaffRoster(version="none", issued_at=datetime(2000, 1, 1, tzinfo=timezone.utc), staff=[])


class Roster:
    """The roster in force: the delivered ``staff.json`` if there is a valid one, else the seed file."""

    def __init__(self, data_dir: Path | str, seed_file: Path | str | None = None):
        """Read from ``<data_dir>/config/staff.json`` or ``seed_file``; nothing is read until first use."""
        self.delivered = Path(data_dir) / "config" / STAFF_FILE
        self.seed = Path(seed_file) if seed_file else None
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._roster = EMPTY

    def _stamp(self) -> tuple:
        out = []
        for path in (self.delivered, self.seed):
            try:
                st = path.stat() if path else None
                out.append((st.st_mtime_ns, st.st_size) if st else None)
            except OSError:
                out.append(None)
        return tuple(out)

    def reload(self) -> StaffRoster:
        """Read the roster files again now (after a config bundle delivered a new one)."""
        with self._lock:
            self._key = None
        return self.current()

    def current(self) -> StaffRoster:
        """The roster in force (re-read when a file changed)."""
        with self._lock:
            key = self._stamp()
            if key != self._key:
                self._roster = self._read()
                self._key = key
            return self._roster

    def _read(self) -> StaffRoster:
        for path in (self.delivered, self.seed):
            if path is None or not path.exists():
                continue
            try:
                roster = StaffRoster.model_validate_json(path.read_bytes())
            except (OSError, ValidationError) as exc:
                first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
                log.error("staff roster %s ignored: %s", path, first)
                continue
            log.info("staff roster %s in use (%d staff, from %s)", roster.version, len(roster.staff), path.name)
            return roster
        log.warning("no staff roster: nobody can sign in until a config bundle delivers staff.json")
        return EMPTY

    def member(self, staff_id: str) -> StaffMember | None:
        """The roster's member with this id, or None."""
        return self.current().member(staff_id)


def check_sign_in(roster: Roster, audit: AuditLog, staff_id: str, pin: str) -> StaffMember:
    """The member whose PIN this is; SignInError (audited) for an unknown id, a wrong PIN or a lock."""
    staff_id = (staff_id or "").strip()
    member = roster.member(staff_id) if staff_id else None
    if member is None:
        audit.record("sign-in-refused", "unknown", detail="unknown staff id")
        raise SignInError("This staff id is not on this kiosk's list. Tap your name, or ask the hub manager "
                          "to add you in the dashboard's staff admin.")
    failures, locked_at = audit.failures_since_success(member.staff_id, FAILURE_WINDOW)
    now = datetime.now(timezone.utc)
    if locked_at is not None and now < locked_at + LOCK_FOR:
        until = locked_at + LOCK_FOR
        minutes = max(1, round((until - now).total_seconds() / 60))
        raise SignInError(f"Too many wrong PINs: {member.name} is locked for {minutes} more minute(s). "
                          "Try again later or ask another photographer.", locked_until=until)
    if member.check_pin(pin):
        audit.record("sign-in", member.staff_id)
        return member
    audit.record("sign-in-refused", member.staff_id, detail="wrong PIN")
    failures += 1
    if failures >= MAX_FAILURES:
        audit.record("locked", member.staff_id, detail=f"{failures} wrong PINs")
        raise SignInError(f"Wrong PIN {failures} times: {member.name} is locked for "
                          f"{int(LOCK_FOR.total_seconds() // 60)} minutes.", locked_until=now + LOCK_FOR)
    left = MAX_FAILURES - failures
    raise SignInError(f"Wrong PIN. {left} more tr{'y' if left == 1 else 'ies'} before a "
                      f"{int(LOCK_FOR.total_seconds() // 60)}-minute lock.")
