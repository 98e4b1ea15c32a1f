"""Referrals (schema version 2): one row per ``referral.referral_id``, its lesions' cases grouped under it.

Every case of a referral carries the whole referral (patient, referral, consents,
photographer). The first case stored makes the ``referrals`` row; the later ones
widen its first/last receive times, and one that disagrees about who the patient
is or what the referral says sets ``mismatch`` (shown on the case page: the kiosk
should never send that). Rows are built here and inserted by the case store in
its batch transaction (one multi-row statement per table, no query per case).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from wire.referral import (BodyLocation, CaseHeaderV2, Consents, History, Lesion, Override, Patient, Referral,
                           ShotMeta)

from .schema import iso

_REFERRAL_COLUMNS = ("referral_id", "site", "device", "reference", "reference_kind", "referral_date",
                     "practice_ods", "route", "lesion_count", "nhs_number", "date_of_birth", "sex", "fitzpatrick",
                     "consents", "photographer", "first_received_at", "last_received_at")
#: Facts every case of one referral must agree on (a case that does not sets ``mismatch``).
_AGREED = ("reference", "referral_date", "practice_ods", "route", "lesion_count", "nhs_number", "date_of_birth",
           "sex", "fitzpatrick")
INSERT_HEAD = f"INSERT INTO referrals ({', '.join(_REFERRAL_COLUMNS)})"
INSERT_TAIL = ("ON CONFLICT(referral_id) DO UPDATE SET "
               "first_received_at=min(first_received_at, excluded.first_received_at), "
               "last_received_at=max(last_received_at, excluded.last_received_at), "
               "mismatch=mismatch OR " + " OR ".join(f"{c} IS NOT excluded.{c}" for c in _AGREED))


def referral_row(header: CaseHeaderV2, received_at: str) -> tuple:
    """The ``referrals`` row a v2 case carries (received at ``received_at``, ISO)."""
    r, p = header.referral, header.patient
    return (str(r.referral_id), header.site, header.device_id, r.reference, r.reference_kind,
            r.referral_date.isoformat(), r.practice_ods, r.route, r.lesion_count, p.nhs_number,
            p.date_of_birth.isoformat(), p.sex, p.fitzpatrick, header.consents.model_dump_json(),
            header.photographer, received_at, received_at)


#: ``cases`` columns only a v2 case fills, in :func:`case_columns` order.
V2_CASE_COLUMNS = ("schema_version", "referral_id", "lesion_index", "on_referral", "added_reason", "laterality",
                   "site_detail", "map_side", "map_x", "map_y", "size_mm", "history", "seven_point", "photographer",
                   "ai", "full_review")


def case_columns(header) -> tuple:
    """The values of :data:`V2_CASE_COLUMNS` for a case of either schema version (a v1 case: mostly NULL)."""
    if not isinstance(header, CaseHeaderV2):
        return (1,) + (None,) * (len(V2_CASE_COLUMNS) - 2) + (0,)
    les, loc = header.lesion, header.lesion.location
    return (2, str(header.referral.referral_id), les.index, int(les.on_referral), les.added_reason,
            loc.laterality, loc.detail, loc.map_side, loc.map_x, loc.map_y, les.size_mm,
            les.history.model_dump_json(), les.history.seven_point_score, header.photographer, header.ai,
            int(header.full_review_required))


def image_columns(meta) -> tuple:
    """``(shot, override_reason, override_text, override_by, override_at)`` of an image (v1: all NULL)."""
    if not isinstance(meta, ShotMeta):
        return (None,) * 5
    o = meta.override
    return (meta.shot,) + ((o.reason, o.text, o.by, iso(o.at)) if o else (None,) * 4)


def shot_meta(im: dict) -> dict:
    """The v2-only fields of a stored image row, as :class:`wire.referral.ShotMeta` takes them."""
    override = None
    if im.get("override_reason"):
        override = Override(reason=im["override_reason"], text=im["override_text"] or "", by=im["override_by"],
                            at=datetime.fromisoformat(im["override_at"]))
    return {"shot": im["shot"] or 1, "override": override}


def get_referral(conn, referral_id: str) -> dict | None:
    """A referral row with its consents parsed (:class:`wire.referral.Consents`), or None."""
    try:
        referral_id = str(uuid.UUID(str(referral_id)))
    except ValueError:
        return None
    cur = conn.execute("SELECT * FROM referrals WHERE referral_id = ?", (referral_id,))
    row = cur.fetchone()
    if row is None:
        return None
    ref = dict(zip([d[0] for d in cur.description], row))
    ref["consents"] = Consents.model_validate_json(ref["consents"])
    return ref


def referral_cases(conn, referral_id: str) -> list[dict]:
    """The cases (lesions) stored for a referral, by lesion index: id, label, site, laterality, detail, risk."""
    cols = ("case_id", "lesion_index", "lesion_id", "body_site", "laterality", "site_detail", "risk", "full_review",
            "received_at")
    return [dict(zip(cols, r)) for r in conn.execute(
        f"SELECT {', '.join(cols)} FROM cases WHERE referral_id = ? ORDER BY lesion_index, received_at",
        (str(referral_id),))]


def rebuild_header(case: dict, referral: dict, images: list, classification) -> CaseHeaderV2:
    """A v2 case header from its stored columns, its referral row and its image metas (see ``Store.load_case``)."""
    return CaseHeaderV2(
        case_id=uuid.UUID(case["case_id"]),
        referral=Referral(referral_id=uuid.UUID(referral["referral_id"]), reference=referral["reference"],
                          reference_kind=referral["reference_kind"],
                          referral_date=date.fromisoformat(referral["referral_date"]),
                          practice_ods=referral["practice_ods"], route=referral["route"],
                          lesion_count=referral["lesion_count"]),
        patient=Patient(nhs_number=referral["nhs_number"], date_of_birth=date.fromisoformat(referral["date_of_birth"]),
                        sex=referral["sex"], fitzpatrick=referral["fitzpatrick"]),
        consents=referral["consents"], photographer=case["photographer"],
        lesion=Lesion(index=case["lesion_index"], label=case["lesion_id"], on_referral=bool(case["on_referral"]),
                      added_reason=case["added_reason"] or "",
                      location=BodyLocation(site=case["body_site"], laterality=case["laterality"],
                                            detail=case["site_detail"] or "", map_side=case["map_side"],
                                            map_x=case["map_x"], map_y=case["map_y"]),
                      size_mm=case["size_mm"], history=History.model_validate_json(case["history"])),
        site=case["site"], device_id=case["device"], created_at=datetime.fromisoformat(case["created_at"]),
        seq=case["seq"], software_version=case["software_version"], model_version=case["model_version"],
        images=images, ai=case["ai"], classification=classification, note=case["note"])


def history_of(case: dict) -> History | None:
    """A stored v2 case's lesion history (None for a v1 case)."""
    return History.model_validate_json(case["history"]) if case.get("history") else None
