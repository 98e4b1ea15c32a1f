"""From the open appointment to the wire: what is still missing, and one CaseHeaderV2 per lesion.

Also the referral's duplicate key: an HMAC (keyed with a key derived from the kiosk's at-rest
key) of the referral reference and the NHS number, so that the kiosk can refuse a second submit
of the same referral without keeping either identifier in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime, timezone

from wire.messages import VIEWS
from wire.outcome import plain_site
from wire.referral import MAX_LESIONS, CaseHeaderV2, Lesion, Referral, ShotMeta

from .draft import Appointment, LesionDraft, Shot

#: Images in one case at most (wire.referral.CaseHeaderV2).
MAX_IMAGES = 16


def referral_key(secret: bytes, reference: str, nhs_number: str) -> str:
    """HMAC-SHA256 (hex) of ``reference|nhs_number`` under a key derived from ``secret``."""
    subkey = hmac.new(secret, b"dermkiosk referral key v1", hashlib.sha256).digest()
    return hmac.new(subkey, f"{reference}|{nhs_number}".encode(), hashlib.sha256).hexdigest()


def to_send(lesion: LesionDraft, send_all: bool) -> list[Shot]:
    """The shots of a lesion that a submit would send, in view order."""
    return [s for s in lesion.all_shots() if send_all or s.selected]


def missing(appt: Appointment, required_views: list[str], send_all: bool) -> list[str]:
    """What must still be done before the appointment can be submitted (messages; empty: ready)."""
    out = []
    if None in (appt.nhs_number, appt.date_of_birth, appt.sex):
        out.append("Enter the patient's NHS number, date of birth and sex.")
    if appt.fitzpatrick is None:
        out.append("Choose the patient's skin type (Fitzpatrick I to VI).")
    if appt.referral is None:
        out.append("Enter the referral: reference, date, practice and route.")
    if appt.consents is None:
        out.append("Record the patient's three consents.")
    if not appt.lesions:
        out.append("Add the lesions named on the referral.")
    for les in appt.lesions:
        for view in VIEWS:
            shots = les.shots.get(view, [])
            if not shots:
                if view in required_views:
                    out.append(f"{les.label}: take the {view} photograph.")
                continue
            chosen = shots if send_all else les.chosen(view)
            if not chosen:
                out.append(f"{les.label}: mark the {view} photograph to send.")
            for s in chosen:
                if not s.sendable:
                    which = f" (shot {s.shot_no})" if len(chosen) > 1 else ""
                    out.append(f"{les.label}: the {view} photograph{which} failed the quality check: retake it, "
                               "or choose a reason to send it as it is.")
        if len(to_send(les, send_all)) > MAX_IMAGES:
            out.append(f"{les.label}: at most {MAX_IMAGES} photographs can be sent for one lesion.")
    if len(appt.lesions) > MAX_LESIONS:
        out.append(f"At most {MAX_LESIONS} lesions make one referral.")
    return out


def build_cases(appt: Appointment, *, photographer: str, site: str, device_id: str, software_version: str,
                model_version: str, send_all: bool) -> list[CaseHeaderV2]:
    """One CaseHeaderV2 per lesion (``seq`` 0: the outbox sets it). The appointment must be complete."""
    ref = appt.referral
    referral = Referral(referral_id=appt.referral_id, reference=ref["reference"],
                        reference_kind=ref["reference_kind"], referral_date=ref["referral_date"],
                        practice_ods=ref["practice_ods"], route=ref["route"], lesion_count=len(appt.lesions))
    now = datetime.now(timezone.utc)
    out = []
    for les in appt.lesions:
        shots = to_send(les, send_all)
        images = [ShotMeta(view=s.view, captured_at=s.captured_at, sha256=s.sha256, length=s.length, width=s.width,
                           height=s.height, quality=s.quality, shot=s.shot_no, override=s.override,
                           classification=s.classification if appt.ai_allowed else None) for s in shots]
        derm = next((s for s in shots if s.view == "dermoscopic"), None)
        if not appt.ai_allowed:
            ai, classification = "declined", None
        else:
            classification = derm.classification if derm else None
            ai = "done" if classification is not None else "failed"
        out.append(CaseHeaderV2(
            case_id=uuid.uuid4(), referral=referral, patient=appt.patient, consents=appt.consents,
            photographer=photographer,
            lesion=Lesion(index=les.index, label=les.label, on_referral=les.on_referral,
                          added_reason=les.added_reason, location=les.location, size_mm=les.size_mm,
                          history=les.history),
            site=site, device_id=device_id, created_at=now, seq=0, software_version=software_version,
            model_version=model_version, images=images, ai=ai, classification=classification))
    return out


def where_text(lesion: Lesion) -> str:
    """A sent lesion's place in everyday words (``left arm (forearm)``), for the task screen."""
    loc = lesion.location
    return plain_site(loc.site.value if hasattr(loc.site, "value") else str(loc.site), loc.laterality, loc.detail)
