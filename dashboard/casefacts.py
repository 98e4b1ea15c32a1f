"""What the case page says about a schema-version-2 case: patient, referral, consents, lesion, AI status.

Pure functions from the store's rows to words and small dicts for the
template; nothing here reads or writes the store. Patient identifiers are shown
on the page (to a logged-in dermatologist, audited) and never put in a URL:
links name a case by its UUID.
"""

from __future__ import annotations

from datetime import date

from wire.referral import OVERRIDE_REASONS, SEVEN_POINT, UNVALIDATED_SKIN_TYPES, format_nhs_number

SEX_NAMES = {"female": "Female", "male": "Male", "indeterminate": "Indeterminate", "not-known": "Not known"}
ROUTE_NAMES = {"gp-referral": "GP referral", "direct-to-hub": "Direct to hub"}
DURATION_NAMES = {"under-1-month": "under 1 month", "1-3-months": "1-3 months", "3-12-months": "3-12 months",
                  "over-1-year": "over 1 year", "not-known": "not known"}
CONSENT_NAMES = (("photography", "Photographs for clinical care"), ("ai_analysis", "AI analysis"),
                 ("teaching", "Teaching and research use"))
#: The notices the issue asks for, word for word.
SKIN_TYPE_NOTICE = "The classifier is not validated for skin types V-VI: full review needed"
AI_NOTICES = {"declined": "AI analysis refused by the patient: no classifier ran",
              "failed": "The classifier could not run on this case: full review needed"}
MISMATCH_NOTICE = ("The cases of this referral disagree about the patient or the referral: check with the "
                   "photographer before reading")


def age_on(born: date, today: date | None = None) -> int:
    """Whole years from ``born`` to ``today`` (default: today)."""
    today = today or date.today()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def patient(referral: dict, today: date | None = None) -> dict:
    """The patient's lines: NHS number 3-3-4, date of birth with age, sex, skin type."""
    born = date.fromisoformat(referral["date_of_birth"])
    return {"nhs_number": format_nhs_number(referral["nhs_number"]), "date_of_birth": born.strftime("%d %b %Y"),
            "age": age_on(born, today), "sex": SEX_NAMES.get(referral["sex"], referral["sex"]),
            "fitzpatrick": referral["fitzpatrick"],
            "unvalidated_skin": referral["fitzpatrick"] in UNVALIDATED_SKIN_TYPES}


def referral_lines(referral: dict) -> dict:
    """The referral's lines: reference (and kind), date, practice, route."""
    return {"reference": referral["reference"],
            "kind": "e-RS UBRN" if referral["reference_kind"] == "ubrn" else "local reference",
            "date": date.fromisoformat(referral["referral_date"]).strftime("%d %b %Y"),
            "practice": referral["practice_ods"], "route": ROUTE_NAMES.get(referral["route"], referral["route"])}


def consents(referral: dict) -> list[dict]:
    """Each consent: its name, given or refused, when and by which photographer."""
    c = referral["consents"]
    return [{"key": key, "name": name, "given": getattr(c, key).given, "at": getattr(c, key).at,
             "by": getattr(c, key).by} for key, name in CONSENT_NAMES]


def _yes_no(value: bool | None) -> str:
    return "not asked" if value is None else ("yes" if value else "no")


def lesion(case: dict) -> dict:
    """The lesion's lines: site with laterality and detail, size, on the referral or why added, history, NG12."""
    h = case["lesion_history"]
    items = [{"name": SEVEN_POINT[k][0], "points": SEVEN_POINT[k][1], "present": v} for k, v in h.checklist.items()]
    return {"site": case["body_site"], "laterality": case["laterality"], "detail": case["site_detail"] or "",
            "size": f"{case['size_mm']:g} mm" if case["size_mm"] else "not measured",
            "on_referral": bool(case["on_referral"]), "added_reason": case["added_reason"] or "",
            "history": [("Changed", _yes_no(h.changed)), ("Bleeding", _yes_no(h.bleeding)),
                        ("Itching", _yes_no(h.itching)), ("New", _yes_no(h.new)),
                        ("Duration", DURATION_NAMES.get(h.duration, h.duration))],
            "seven_point": h.seven_point_score, "seven_point_items": items}


def override_text(im: dict) -> str | None:
    """``"sent with a reason: ..."`` for an image that failed the quality gate and was sent all the same."""
    if not im.get("override_reason"):
        return None
    reason = OVERRIDE_REASONS.get(im["override_reason"], im["override_reason"])
    if im.get("override_text"):
        reason = f"{reason}: {im['override_text']}" if im["override_reason"] != "other" else im["override_text"]
    return f"sent with a reason: {reason}"


def notices(case: dict, referral: dict | None) -> list[str]:
    """The plain notices above a case: skin type V-VI, AI refused or failed, a referral whose cases disagree."""
    out = []
    if referral is not None and referral["fitzpatrick"] in UNVALIDATED_SKIN_TYPES:
        out.append(SKIN_TYPE_NOTICE)
    if case.get("ai") in AI_NOTICES:
        out.append(AI_NOTICES[case["ai"]])
    if referral is not None and referral["mismatch"]:
        out.append(MISMATCH_NOTICE)
    return out
