"""The kiosk staff roster: who may sign in at a kiosk, with a hashed PIN each.

Staff are managed in the centre's admin pages and reach kiosks as ``staff.json``
inside a signed configuration bundle (``wire.messages.UpdateManifest``, kind
``config``). PINs are never stored or sent in clear: ``pin_hash`` is a salted
scrypt hash (werkzeug's ``generate_password_hash``), checked on the kiosk.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from werkzeug.security import check_password_hash, generate_password_hash

from .referral import STAFF_ID_PATTERN

#: The roster's file name inside a configuration bundle and in the kiosk's config folder.
STAFF_FILE = "staff.json"
#: PIN length range (digits only).
PIN_MIN, PIN_MAX = 4, 8


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StaffMember(_Strict):
    """One person who may sign in at kiosks."""

    staff_id: str = Field(pattern=STAFF_ID_PATTERN)
    name: str = Field(min_length=1, max_length=80)
    role: str = Field(default="photographer", pattern=r"^(photographer|nurse|clinician)$")
    pin_hash: str = Field(min_length=20, max_length=300)

    @field_validator("pin_hash")
    @classmethod
    def _hashed(cls, v: str) -> str:
        if not v.startswith(("scrypt:", "pbkdf2:")):
            raise ValueError("pin_hash must be a werkzeug scrypt or pbkdf2 hash, never a PIN")
        return v

    def check_pin(self, pin: str) -> bool:
        """True when ``pin`` is this person's PIN."""
        return check_password_hash(self.pin_hash, pin or "")


class StaffRoster(_Strict):
    """The whole roster a kiosk accepts (a new roster replaces the old one)."""

    version: str = Field(min_length=1, max_length=64)
    issued_at: datetime
    staff: list[StaffMember] = Field(max_length=500)

    @field_validator("staff")
    @classmethod
    def _unique(cls, v: list[StaffMember]) -> list[StaffMember]:
        ids = [m.staff_id for m in v]
        if len(set(ids)) != len(ids):
            raise ValueError("a staff id is listed twice")
        return v

    def member(self, staff_id: str) -> StaffMember | None:
        """The member with this id, or None."""
        return next((m for m in self.staff if m.staff_id == staff_id), None)


def check_pin_format(pin: str) -> str:
    """The PIN if it is 4-8 digits; ValueError with a message saying what to fix otherwise."""
    pin = (pin or "").strip()
    if not pin.isdigit() or not PIN_MIN <= len(pin) <= PIN_MAX:
        raise ValueError(f"A PIN is {PIN_MIN} to {PIN_MAX} digits.")
    return pin


def hash_pin(pin: str) -> str:
    """A salted scrypt hash of a PIN for :class:`StaffMember.pin_hash`."""
    return generate_password_hash(check_pin_format(pin), method="scrypt")
