"""Shared helpers for the appointment tests: a kiosk config with a staff roster, a filled-in appointment.

Real parts throughout: the replay camera (the only faked hardware), the quality gate, the shipped
model, the outbox's SQLite and sealed files.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import nhs_number

from tests.test_kiosk_service import config
from wire.staff import StaffMember, StaffRoster, hash_pin

#: (staff id, name, PIN) of the test roster.
STAFF = [("ph-alex", "Alex Carter", "2468"), ("ph-sam", "Sam Okafor", "1357")]
PHOTOGRAPHER, PIN = STAFF[0][0], STAFF[0][2]


def synthetic_nhs_number(i: int = 0) -> str:
    """A valid NHS number from the synthetic range (never a real patient's)."""
    return nhs_number.generate(for_region=nhs_number.REGION_SYNTHETIC, quantity=i + 1)[i]


def roster(staff=STAFF, version: str = "r1") -> StaffRoster:
    """A roster of ``staff`` with scrypt-hashed PINs."""
    return StaffRoster(version=version, issued_at=datetime.now(timezone.utc),
                       staff=[StaffMember(staff_id=s, name=n, pin_hash=hash_pin(p)) for s, n, p in staff])


def write_roster(path: Path, staff=STAFF, version: str = "r1") -> Path:
    """Write a roster file (``staff.json``) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(roster(staff, version).model_dump_json())
    return path


def appointment_config(tmp_path: Path, appointment: dict | None = None, **kw):
    """A kiosk config (replay camera, real model) with a seed staff roster and ``appointment`` settings."""
    staff_file = write_roster(tmp_path / "seed" / "staff.json")
    return config(tmp_path, appointment={"staff_file": str(staff_file), **(appointment or {})}, **kw)


def fill_details(desk, staff: str = PHOTOGRAPHER, nhs: str | None = None, reference: str = "123456789012",
                 ai: bool = True, fitzpatrick: str = "III"):
    """Open an appointment and enter patient, skin type, referral and consents; returns the appointment."""
    desk.open(staff)
    desk.set_patient(staff, nhs or synthetic_nhs_number(), "01/02/1950", "female")
    desk.set_skin_type(staff, fitzpatrick)
    desk.set_referral(staff, reference, "20/11/2026", "A81001", "gp-referral")
    return desk.set_consents(staff, photography=True, ai_analysis=ai, teaching=False)


def photograph(desk, index: int, staff: str = PHOTOGRAPHER, views=("dermoscopic", "close-up", "regional"),
               override: bool = True):
    """Take one shot of each view of lesion ``index``; a failed shot is sent with an override reason."""
    shots = []
    for view in views:
        shot = desk.capture(staff, index, view)
        if override and not shot.passed:
            shot = desk.override(staff, index, view, shot.shot_no, "site-hard-to-reach")
        shots.append(shot)
    return shots
