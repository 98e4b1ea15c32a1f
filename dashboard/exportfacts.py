"""What a signed referral's DICOM objects and FHIR Bundle are made of, read once from the store.

:func:`export_facts` joins :func:`dashboard.handover.signed_referral` (the standing read per lesion,
the patient, the referral) with what only the export needs: the patient's sex, each lesion's body
site and laterality, the kiosk and its software version, and every image with its view, capture time,
size and stored bytes' path. It refuses (:class:`ExportRefused`, a one-line reason for a person) an
unknown or unsigned referral and one without an NHS number (a version-1 case: the hospital could not
file it under a patient).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .handover import NotSigned, SignedReferral, signed_referral
from .store.files import image_path
from .store.referrals import get_referral

#: ``views`` as the kiosk names them, in the order a lesion's series are numbered.
VIEWS = ("dermoscopic", "close-up", "regional")


class ExportRefused(ValueError):
    """The referral cannot be handed over (unknown, not signed, no NHS number): ``str()`` says why in one line."""


@dataclass(frozen=True)
class ExportImage:
    """One stored photograph of a lesion."""

    position: int
    view: str
    captured_at: datetime
    sha256: str
    width: int
    height: int
    path: Path


@dataclass(frozen=True)
class ExportLesion:
    """One lesion (case) of the referral, with where it is, who photographed it on which kiosk, and its images."""

    case_id: str
    index: int
    label: str
    body_site: str
    laterality: str | None
    detail: str
    device: str
    software_version: str
    created_at: datetime
    risk: str | None
    model: str | None
    probabilities: dict
    images: tuple[ExportImage, ...]


@dataclass(frozen=True)
class ExportReferral:
    """A signed referral as the hospital receives it."""

    signed: SignedReferral
    sex: str | None
    lesions: tuple[ExportLesion, ...]
    #: How many addenda follow the signed reports (0: the report is as signed; more: it was amended).
    addenda: int

    @property
    def key(self) -> str:
        """The referral key (the referral's UUID)."""
        return self.signed.key


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def export_facts(conn, images_dir: Path | str, key: str) -> ExportReferral:
    """The facts of signed referral ``key``; :class:`ExportRefused` says why it cannot be handed over."""
    try:
        key = str(uuid.UUID(str(key)))
    except ValueError:
        raise ExportRefused("not a referral key: it is the referral's UUID, as in the referral page's address") \
            from None
    ref = get_referral(conn, key)
    if ref is None and conn.execute("SELECT 1 FROM cases WHERE case_id=?", (key,)).fetchone() is None:
        raise ExportRefused(f"no referral {key} at this centre")
    try:
        signed = signed_referral(conn, key)
    except NotSigned:
        raise ExportRefused(f"referral {key} is not signed off yet: it is handed over once every lesion's report "
                            "is signed") from None
    if not signed.nhs_number:
        raise ExportRefused(f"referral {key} has no NHS number (a version-1 case): the hospital cannot file it "
                            "under a patient; hand it over by hand")
    lesions = []
    for les in signed.lesions:
        row = conn.execute("SELECT lesion_index, body_site, laterality, site_detail, device, software_version, "
                           "created_at FROM cases WHERE case_id=?", (les.case_id,)).fetchone()
        images = tuple(
            ExportImage(position=r[0], view=r[1], captured_at=_parse_time(r[2]), sha256=r[3], width=r[4],
                        height=r[5], path=image_path(Path(images_dir), r[3]))
            for r in conn.execute("SELECT ci.position, ci.view, ci.captured_at, ci.sha256, im.width, im.height "
                                  "FROM case_images ci JOIN images im ON im.sha256 = ci.sha256 "
                                  "WHERE ci.case_id=? ORDER BY ci.position", (les.case_id,)))
        lesions.append(ExportLesion(case_id=les.case_id, index=row[0] or 1, label=les.label, body_site=row[1],
                                    laterality=row[2], detail=row[3] or "", device=row[4], software_version=row[5],
                                    created_at=_parse_time(row[6]), risk=les.risk, model=les.model,
                                    probabilities=les.probabilities, images=images))
    addenda = sum(len(les.addenda) for les in signed.lesions)
    return ExportReferral(signed=signed, sex=ref["sex"] if ref else None, lesions=tuple(lesions), addenda=addenda)
