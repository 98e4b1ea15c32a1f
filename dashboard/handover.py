"""The hand-over to the hub after sign-off: the facts a signed referral's letters and outcome are made of.

:func:`signed_referral` joins what the reading service says stands for each lesion
(:func:`dashboard.reports.final_outcome`) with what the store knows of the referral (patient,
referring practice, each lesion's site and the classifier's output). The letters
(:mod:`dashboard.letters`) and the outcome (:mod:`dashboard.outcomes`) are made of it at sign-off
(:mod:`dashboard.signoff`).

A referral key is a v2 referral's ``referral_id`` or, for a v1 case (one lesion, no referral), its case id.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime


from wire.outcome import plain_site

from . import reports
from .store.referrals import get_referral, referral_cases

log = logging.getLogger(__name__)


class NotSigned(ValueError):
    """The referral's reading is not final: no letter and no outcome exist for it yet (``str()`` says so)."""


@dataclass(frozen=True)
class SignedLesion:
    """One lesion's standing read with where it is and what the classifier said (for the GP only)."""

    case_id: str
    label: str
    where: str
    diagnosis: str
    diagnosis_name: str
    management: str
    text: str
    reader: str
    signed_at: str
    risk: str | None = None
    model: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    addenda: tuple[dict, ...] = ()


@dataclass(frozen=True)
class SignedReferral:
    """A referral whose reading is final, with the facts its letters need."""

    key: str
    referral_id: uuid.UUID
    site: str
    device: str
    reference: str
    nhs_number: str | None
    date_of_birth: date | None
    referral_date: date
    practice_ods: str | None
    lesions: tuple[SignedLesion, ...]

    @property
    def signed_at(self) -> datetime:
        """When the last lesion's standing read was signed."""
        return max(datetime.fromisoformat(les.signed_at) for les in self.lesions)

    @property
    def readers(self) -> list[str]:
        """Who signed the standing reads, in lesion order, each once."""
        return list(dict.fromkeys(les.reader for les in self.lesions))


def describe_site(body_site: str | None, laterality: str | None = None, detail: str | None = None) -> str:
    """``left arm (forearm)``: a lesion's place in everyday words (:func:`wire.outcome.plain_site`)."""
    return plain_site(body_site, laterality, detail)


def _lesion_facts(conn, key: str) -> tuple[dict | None, dict[str, dict]]:
    """The referral row (None for a v1 case) and each case's site and classifier output by case id."""
    ref = get_referral(conn, key)
    ids = [c["case_id"] for c in referral_cases(conn, key)] if ref else [key]
    marks = ",".join("?" * len(ids))
    cur = conn.execute(f"SELECT case_id, lesion_id, lesion_index, body_site, laterality, site_detail, risk, "
                       f"probabilities, classification_model, site, device, referral_ref, created_at, received_at "
                       f"FROM cases WHERE case_id IN ({marks})", ids)
    cols = [d[0] for d in cur.description]
    return ref, {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}


def signed_referral(conn, key: str) -> SignedReferral:
    """The signed referral ``key``; NotSigned (with a message for a person) while its reading is not final."""
    key = str(uuid.UUID(str(key)))
    if not reports.referral_signed(conn, key):
        raise NotSigned("This referral is not signed off yet: its letters are made when every lesion's report is "
                        "signed (second and third reads included).")
    ref, cases = _lesion_facts(conn, key)
    lesions = []
    for final in reports.final_outcome(conn, key):
        case = cases.get(final["case_id"], {})
        label = case.get("lesion_id") if ref else "L1"
        lesions.append(SignedLesion(
            case_id=final["case_id"], label=label or "L1",
            where=describe_site(case.get("body_site"), case.get("laterality"), case.get("site_detail")),
            diagnosis=final["diagnosis"], diagnosis_name=final.get("diagnosis_name") or final["diagnosis"],
            management=final["management"], text=final.get("text") or "", reader=final["reader"],
            signed_at=final["signed_at"], risk=case.get("risk"), model=case.get("classification_model"),
            probabilities=json.loads(case["probabilities"]) if case.get("probabilities") else {},
            addenda=tuple(final.get("addenda") or ())))
    if not lesions:
        raise NotSigned("This referral has no signed lesion report yet.")
    lesions.sort(key=lambda les: les.label)
    if ref:
        return SignedReferral(key=key, referral_id=uuid.UUID(ref["referral_id"]), site=ref["site"],
                              device=ref["device"], reference=ref["reference"], nhs_number=ref["nhs_number"],
                              date_of_birth=date.fromisoformat(ref["date_of_birth"]),
                              referral_date=date.fromisoformat(ref["referral_date"]),
                              practice_ods=ref["practice_ods"], lesions=tuple(lesions))
    case = cases[key]
    return SignedReferral(key=key, referral_id=uuid.UUID(key), site=case["site"], device=case["device"],
                          reference=case["referral_ref"], nhs_number=None, date_of_birth=None,
                          referral_date=datetime.fromisoformat(case["received_at"]).date(), practice_ods=None,
                          lesions=tuple(lesions))
