"""What the photographer types or taps, checked and turned into values; AppointmentError says what to fix.

Dates are entered on a digit pad as ``DD/MM/YYYY`` or ``DDMMYYYY`` (ISO ``YYYY-MM-DD`` is read too).
"""

from __future__ import annotations

import re
from datetime import date

import nhs_number
from pydantic import ValidationError

from wire.messages import BODY_SITES
from wire.referral import FITZPATRICK, LATERALITIES, SEXES, BodyLocation, History

from .errors import AppointmentError

#: Lesion fields add_lesion/update_lesion accept.
LESION_FIELDS = ("site", "laterality", "detail", "map_side", "map_x", "map_y", "size_mm", "history", "added_reason")


def parse_date(text: str | date | None, what: str, field: str | None = None) -> date:
    """A date from ``DD/MM/YYYY``, ``DDMMYYYY`` or ``YYYY-MM-DD``; ``what`` names it in the message."""
    if isinstance(text, date):
        return text
    raw = (text or "").strip()
    if not raw:
        raise AppointmentError(f"Enter the {what} (DD/MM/YYYY).", field)
    m = re.fullmatch(r"(\d{1,2})[/. -](\d{1,2})[/. -](\d{4})", raw) or re.fullmatch(r"(\d{2})(\d{2})(\d{4})", raw)
    if m:
        d, mo, y = (int(g) for g in m.groups())
    elif (m := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", raw)):
        y, mo, d = (int(g) for g in m.groups())
    else:
        raise AppointmentError(f"Enter the {what} as DD/MM/YYYY (8 digits), e.g. 01/02/1950.", field)
    try:
        return date(y, mo, d)
    except ValueError:
        raise AppointmentError(f"The {what} {d:02d}/{mo:02d}/{y} is not a real date: check the day and "
                               "the month.", field) from None


def check_date_of_birth(text: str | date | None, today: date | None = None) -> date:
    """The date of birth: a real date, not in the future, not more than 130 years ago."""
    today = today or date.today()
    dob = parse_date(text, "date of birth", "date_of_birth")
    if dob > today:
        raise AppointmentError("The date of birth is in the future: check the year.", "date_of_birth")
    if dob.year < today.year - 130:
        raise AppointmentError("The date of birth is more than 130 years ago: check the year.", "date_of_birth")
    return dob


def check_referral_date(text: str | date | None, date_of_birth: date | None = None,
                        today: date | None = None) -> date:
    """The referral's date: present, not in the future, not before the patient's birth."""
    today = today or date.today()
    when = parse_date(text, "referral date", "referral_date")
    if when > today:
        raise AppointmentError("The referral date is in the future: check it against the referral letter.", "referral_date")
    if date_of_birth is not None and when < date_of_birth:
        raise AppointmentError("The referral date is before the patient's date of birth: check both dates.", "referral_date")
    return when


def check_reference_text(text: str) -> None:
    """Refuse what wire.referral.normalise_reference would take but a person did not mean as a reference.

    A local reference is typed without spaces (spaces are for grouping a UBRN's digits), and a reference
    holding a valid NHS number is a patient's details typed in the wrong field.
    """
    raw = (text or "").strip()
    if re.search(r"\s", raw) and not re.fullmatch(r"[\d\s]+", raw):
        raise AppointmentError("A local reference is letters, digits, '-' or '/', without spaces: enter the "
                               "referral's reference only.", "reference")
    for run in re.findall(r"\d{10,}", re.sub(r"[\s-]", "", raw)):
        if len(run) == 10 and nhs_number.is_valid(run):
            raise AppointmentError("This looks like an NHS number: enter the referral's reference (the e-RS UBRN "
                                   "or the local reference), not the patient's details.", "reference")


def check_sex(sex: str) -> str:
    """One of wire.referral.SEXES."""
    if sex not in SEXES:
        raise AppointmentError("Choose the patient's sex: female, male, indeterminate or not known.", "sex")
    return sex


def check_fitzpatrick(value: str) -> str:
    """A Fitzpatrick skin type I..VI (also 1..6)."""
    v = (value or "").strip().upper()
    v = {"1": "I", "2": "II", "3": "III", "4": "IV", "5": "V", "6": "VI"}.get(v, v)
    if v not in FITZPATRICK:
        raise AppointmentError("Choose the skin type: Fitzpatrick I to VI.", "fitzpatrick")
    return v


def check_size(size_mm) -> float | None:
    """The lesion's size in mm (None when not given)."""
    if size_mm is None or (isinstance(size_mm, str) and not size_mm.strip()):
        return None
    try:
        v = float(str(size_mm).strip().replace(",", "."))
    except ValueError:
        raise AppointmentError("Enter the size in millimetres as a number, e.g. 6 or 6.5.", "size_mm") from None
    if not 0 < v <= 500:
        raise AppointmentError("The size is in millimetres: between 0.1 and 500.", "size_mm")
    return round(v, 1)


def check_location(site: str, laterality: str, detail: str = "", map_side=None, map_x=None,
                   map_y=None) -> BodyLocation:
    """The lesion's place: an ISIC site from the body map, its laterality, an optional finer label."""
    if site not in BODY_SITES:
        raise AppointmentError("Choose the body site on the body map (it is not one of the sites listed).", "site")
    if laterality not in LATERALITIES:
        raise AppointmentError("Choose the side: left, right, midline or not applicable.", "laterality")
    detail = (detail or "").strip()
    if len(detail) > 80:
        raise AppointmentError("The site detail is at most 80 characters.", "detail")
    try:
        return BodyLocation(site=site, laterality=laterality, detail=detail, map_side=map_side or None,
                            map_x=map_x, map_y=map_y)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise AppointmentError(f"The body map point is wrong ({'.'.join(map(str, err['loc']))}: "
                               f"{err['msg']}): tap the map again.", "site") from None


def check_history(history: dict | History | None) -> History:
    """The lesion's history (changed, bleeding, itching, new, duration, NG12 checklist items)."""
    if history is None:
        return History()
    if isinstance(history, History):
        return history
    try:
        return History.model_validate(history)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise AppointmentError(f"History: {'.'.join(map(str, err['loc']))}: {err['msg']}.", "history") from None
