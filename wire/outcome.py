"""The outcome of a read referral, sent by the centre back to the kiosk that photographed it.

Topic ``dermkiosk/v1/<site>/<device>/outcome`` (:data:`wire.topics.OUTCOME`), QoS 1, published by
the dashboard's kiosk publisher (certificate ``updates``) once a referral is signed off; the broker
keeps it in the kiosk's persistent session while the kiosk is away, and the centre keeps it queued
until the broker has taken it for a subscribed kiosk (:mod:`dashboard.outcomes`). A kiosk may read
only its own outcome topic (:mod:`dashboard.brokerctl`).

The message names the referral by the UUID the kiosk made (``referral_id``) and each lesion by its
case UUID and label (``L1``...): never an NHS number, a date of birth or a referral reference. The
kiosk finds the patient in its own sealed records. Per lesion it carries the reader's management
(one of :data:`MANAGEMENT`) and, for ``re-image``, the reader's reason, which the kiosk shows its
signed-in staff as a task. The reason is free text written by a dermatologist: text that looks like
an NHS number (10 digits) is refused here, on both sides.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .topics import ID_PATTERN

SCHEMA_VERSION = 1

#: The reader's management of one lesion: code -> what the dashboard and the kiosk call it.
MANAGEMENT = {
    "urgent-2ww": "Urgent suspected-cancer referral",
    "routine": "Routine referral to dermatology",
    "biopsy": "Book biopsy or excision",
    "discharge": "Discharge with safety-netting advice",
    "re-image": "Re-image: new photographs needed",
}
Management = Literal["urgent-2ww", "routine", "biopsy", "discharge", "re-image"]
#: Management that asks the hub to photograph the lesion again (a task at the kiosk).
REIMAGE = "re-image"

#: The ISIC general anatomic sites in everyday words (letters to patients, the kiosk's task screen).
PLAIN_SITES = {"head/neck": "head or neck", "upper extremity": "arm", "lower extremity": "leg",
               "anterior torso": "chest or tummy", "posterior torso": "back", "palms/soles": "palm or sole",
               "lateral torso": "side", "oral/genital": "mouth or genital area"}


def plain_site(body_site: str | None, laterality: str | None = None, detail: str | None = None) -> str:
    """``left arm (forearm)``: a lesion's place in everyday words."""
    words = PLAIN_SITES.get(body_site or "", (body_site or "skin").replace("_", " "))
    if laterality in ("left", "right"):
        words = f"{laterality} {words}"
    return f"{words} ({detail})" if detail else words


#: Ten digits in a row, with or without spaces: what an NHS number looks like in free text.
_NHS_LIKE = re.compile(r"(?:\d[\s-]?){9}\d")


def refuse_identifiers(text: str, what: str = "text") -> str:
    """``text`` unless it holds something like an NHS number (10 digits); ValueError naming ``what``."""
    if _NHS_LIKE.search(text or ""):
        raise ValueError(f"{what} must not contain a patient identifier (it has 10 digits like an NHS number)")
    return text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LesionOutcome(_Strict):
    """The signed outcome of one lesion (one case) of the referral."""

    case_id: uuid.UUID
    #: The lesion's label within its referral (``L1``...; a schema-version-1 case is ``L1``).
    label: str = Field(pattern=r"^L[0-9]{1,2}$")
    management: Management
    #: Why new photographs are needed (required for ``re-image``), as the reader wrote it.
    reason: str = Field(default="", max_length=500)

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        return refuse_identifiers(v.strip(), "the reason")

    @model_validator(mode="after")
    def _reimage_reason(self) -> "LesionOutcome":
        if self.management == REIMAGE and not self.reason:
            raise ValueError("a re-image outcome needs the reader's reason")
        return self

    @property
    def management_text(self) -> str:
        """The management in words."""
        return MANAGEMENT[self.management]


class Outcome(_Strict):
    """A referral's outcome for the kiosk that sent it: every lesion's management, signed."""

    schema_version: Literal[1] = SCHEMA_VERSION
    #: Unique per message: a kiosk that gets the same message twice keeps it once.
    outcome_id: uuid.UUID
    #: The referral's UUID made by the kiosk (a schema-version-1 case: its case UUID).
    referral_id: uuid.UUID
    site: str = Field(pattern=ID_PATTERN)
    device_id: str = Field(pattern=ID_PATTERN)
    #: ``reported``: every lesion is signed; ``amended``: an addendum changed an outcome sent before.
    status: Literal["reported", "amended"] = "reported"
    signed_at: datetime
    #: Who signed (the dermatologist's name as the dashboard knows it), shown to hub staff.
    signed_by: str = Field(min_length=1, max_length=100)
    lesions: list[LesionOutcome] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _unique(self) -> "Outcome":
        ids = [les.case_id for les in self.lesions]
        if len(set(ids)) != len(ids):
            raise ValueError("a lesion's case appears twice")
        return self

    @property
    def reimage(self) -> list[LesionOutcome]:
        """The lesions to photograph again."""
        return [les for les in self.lesions if les.management == REIMAGE]


def parse_outcome(payload: bytes | str) -> Outcome:
    """An :class:`Outcome` from its JSON; raises pydantic's ValidationError naming what is wrong."""
    return Outcome.model_validate_json(payload)
