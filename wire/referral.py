"""Schema version 2 of a case: one lesion of a GP referral photographed at a hub.

A referral names one or more lesions; the kiosk sends **one case per lesion**,
each carrying the whole referral (patient, referral, consents, photographer) and
its own lesion and views, grouped at the centre by ``referral.referral_id``.
``referral.lesion_count`` tells the centre how many cases make the referral whole.
One case per lesion keeps a delivery unit small (at most 16 images) and lets the
outbox's guarantees (stored once, acknowledged after commit) hold unchanged.

Patient identifiers (NHS number, date of birth) travel only inside the case
payload, which the kiosk keeps encrypted at rest: never in a topic, a file name,
a URL or a log line. The validators here are the ones both sides run, so a
kiosk and the centre refuse the same things with the same words.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Literal, Union

import nhs_number
from isic_metadata.fields import AnatomSiteGeneralEnum
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from .messages import CaseHeader, Classification, ImageMeta
from .topics import ID_PATTERN

SCHEMA_VERSION_2 = 2

#: Staff ids (photographers, dermatologists): short, no spaces, never a patient identifier.
STAFF_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
#: NHS Data Dictionary "person phenotypic sex" values.
SEXES = ("female", "male", "indeterminate", "not-known")
FITZPATRICK = ("I", "II", "III", "IV", "V", "VI")
#: Skin types the classifier was not validated on: such a case always needs a full review.
UNVALIDATED_SKIN_TYPES = ("V", "VI")
ROUTES = ("gp-referral", "direct-to-hub")
LATERALITIES = ("left", "right", "midline", "not-applicable")
#: Why a photograph that failed the quality gate was sent all the same.
OVERRIDE_REASONS = {
    "hair-unavoidable": "Hair could not be avoided",
    "site-hard-to-reach": "Site hard to reach",
    "patient-could-not-stay-still": "Patient could not stay still",
    "other": "Other",
}
#: NICE NG12 weighted 7-point checklist: item -> (wording, points). A score of 3 or more
#: suggests the suspected-cancer pathway.
SEVEN_POINT = {
    "change_in_size": ("Change in size", 2),
    "irregular_shape": ("Irregular shape", 2),
    "irregular_colour": ("Irregular colour", 2),
    "diameter_7mm": ("Largest diameter 7 mm or more", 1),
    "inflammation": ("Inflammation", 1),
    "oozing": ("Oozing", 1),
    "change_in_sensation": ("Change in sensation", 1),
}
DURATIONS = ("under-1-month", "1-3-months", "3-12-months", "over-1-year", "not-known")
#: Most lesions one referral may name (a kiosk's own limit is configured, at most this).
MAX_LESIONS = 20

StaffId = str
Sex = Literal["female", "male", "indeterminate", "not-known"]
Fitzpatrick = Literal["I", "II", "III", "IV", "V", "VI"]
Route = Literal["gp-referral", "direct-to-hub"]
Laterality = Literal["left", "right", "midline", "not-applicable"]
OverrideReason = Literal["hair-unavoidable", "site-hard-to-reach", "patient-could-not-stay-still", "other"]
Duration = Literal["under-1-month", "1-3-months", "3-12-months", "over-1-year", "not-known"]


class IdentifierError(ValueError):
    """An identifier typed by a person is wrong; ``str()`` says what to fix."""


def normalise_nhs_number(text: str) -> str:
    """The 10 digits of an NHS number typed with or without spaces; IdentifierError says what is wrong.

    Wrong length and wrong check digit (Modulus 11, via the ``nhs-number`` package)
    get separate messages, so the photographer knows whether a digit is missing or mistyped.
    """
    digits = re.sub(r"[\s-]", "", text or "")
    if not digits:
        raise IdentifierError("Enter the NHS number (10 digits).")
    if not digits.isdigit():
        raise IdentifierError("An NHS number has digits only.")
    if len(digits) != 10:
        raise IdentifierError(f"An NHS number has 10 digits; this one has {len(digits)}.")
    if not nhs_number.is_valid(digits):
        raise IdentifierError("This NHS number's check digit is wrong: a digit is mistyped. Check it against "
                              "the referral.")
    return digits


def format_nhs_number(digits: str) -> str:
    """``943 476 5919``: the 3-3-4 grouping people read NHS numbers in."""
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}" if len(digits) == 10 else digits


def normalise_reference(text: str) -> tuple[str, str]:
    """``(reference, kind)`` of a referral reference: an e-RS UBRN (12 digits) or a local reference.

    A reference of digits only must be a UBRN: 12 digits (spaces allowed). Anything
    else is a local reference: 3-32 letters, digits, ``-`` or ``/``.
    """
    raw = (text or "").strip()
    compact = re.sub(r"\s", "", raw)
    if not compact:
        raise IdentifierError("Enter the referral reference: the e-RS UBRN (12 digits) or the local reference.")
    if compact.isdigit():
        if len(compact) != 12:
            raise IdentifierError(f"An e-RS UBRN has 12 digits; this one has {len(compact)}.")
        return compact, "ubrn"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9/-]{2,31}", compact):
        raise IdentifierError("A local reference is 3 to 32 letters, digits, '-' or '/', without spaces.")
    return compact.upper(), "local"


def normalise_ods_code(text: str) -> str:
    """An ODS organisation code (a GP practice: a letter and five digits, e.g. ``A81001``)."""
    code = re.sub(r"\s", "", text or "").upper()
    if not re.fullmatch(r"[A-Z0-9]{3,10}", code):
        raise IdentifierError("Enter the practice's ODS code: letters and digits, e.g. A81001.")
    return code


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Patient(_Strict):
    """Who the referral is for. Travels only inside the (encrypted at rest) case payload."""

    nhs_number: str
    date_of_birth: date
    sex: Sex
    fitzpatrick: Fitzpatrick

    @field_validator("nhs_number")
    @classmethod
    def _nhs(cls, v: str) -> str:
        try:
            return normalise_nhs_number(v)
        except IdentifierError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("date_of_birth")
    @classmethod
    def _dob(cls, v: date) -> date:
        if v > date.today():
            raise ValueError("the date of birth is in the future")
        if v.year < date.today().year - 130:
            raise ValueError("the date of birth is more than 130 years ago")
        return v

    @property
    def skin_type_unvalidated(self) -> bool:
        """True for Fitzpatrick V-VI, on which the classifier was not validated."""
        return self.fitzpatrick in UNVALIDATED_SKIN_TYPES


class Referral(_Strict):
    """The GP referral this appointment answers."""

    #: Assigned by the kiosk when the appointment opens; groups the referral's lesion cases.
    referral_id: uuid.UUID
    reference: str = Field(min_length=3, max_length=32)
    reference_kind: Literal["ubrn", "local"]
    referral_date: date
    practice_ods: str = Field(pattern=r"^[A-Z0-9]{3,10}$")
    route: Route
    #: Lesions photographed in this referral: the number of cases that make it whole.
    lesion_count: int = Field(ge=1, le=MAX_LESIONS)

    @field_validator("referral_date")
    @classmethod
    def _date(cls, v: date) -> date:
        if v > date.today():
            raise ValueError("the referral date is in the future")
        return v

    @model_validator(mode="after")
    def _reference(self) -> "Referral":
        try:
            ref, kind = normalise_reference(self.reference)
        except IdentifierError as exc:
            raise ValueError(str(exc)) from None
        if (ref, kind) != (self.reference, self.reference_kind):
            raise ValueError("reference and reference_kind do not agree")
        return self


class ConsentRecord(_Strict):
    """One consent question: the answer, when and by which photographer it was recorded."""

    given: bool
    at: datetime
    by: StaffId = Field(pattern=STAFF_ID_PATTERN)


class Consents(_Strict):
    """The three consents, each recorded separately. Photography for clinical care is required."""

    photography: ConsentRecord
    ai_analysis: ConsentRecord
    teaching: ConsentRecord

    @model_validator(mode="after")
    def _photography(self) -> "Consents":
        if not self.photography.given:
            raise ValueError("no case may exist without consent to clinical photography")
        return self


class BodyLocation(_Strict):
    """Where the lesion is: the ISIC general site, laterality, an optional finer label and the map point."""

    site: AnatomSiteGeneralEnum
    laterality: Laterality
    detail: str = Field(default="", max_length=80)
    #: Where the photographer touched the body map (0..1 of its width and height), if they did.
    map_side: Literal["front", "back"] | None = None
    map_x: float | None = Field(default=None, ge=0.0, le=1.0)
    map_y: float | None = Field(default=None, ge=0.0, le=1.0)


class History(_Strict):
    """What the patient or the GP reports of the lesion (None: not asked or not known)."""

    changed: bool | None = None
    bleeding: bool | None = None
    itching: bool | None = None
    new: bool | None = None
    duration: Duration = "not-known"
    #: NICE NG12 7-point checklist items the photographer recorded (item -> present).
    checklist: dict[Literal["change_in_size", "irregular_shape", "irregular_colour", "diameter_7mm",
                            "inflammation", "oozing", "change_in_sensation"], bool] = Field(default_factory=dict)

    @property
    def seven_point_score(self) -> int | None:
        """The weighted NG12 score of the recorded items (None when none was recorded)."""
        if not self.checklist:
            return None
        return sum(SEVEN_POINT[item][1] for item, present in self.checklist.items() if present)


class Lesion(_Strict):
    """One lesion of the referral."""

    #: 1-based position in the referral; ``label`` is what people call it ("L1").
    index: int = Field(ge=1, le=MAX_LESIONS)
    label: str = Field(pattern=r"^L[0-9]{1,2}$")
    on_referral: bool = True
    #: Why a lesion the GP did not name was photographed (required when ``on_referral`` is false).
    added_reason: str = Field(default="", max_length=200)
    location: BodyLocation
    size_mm: float | None = Field(default=None, gt=0, le=500)
    history: History = Field(default_factory=History)

    @model_validator(mode="after")
    def _added(self) -> "Lesion":
        if not self.on_referral and not self.added_reason.strip():
            raise ValueError("a lesion not on the referral needs the reason it was added")
        return self


class Override(_Strict):
    """Why a photograph that failed the quality gate was sent all the same."""

    reason: OverrideReason
    text: str = Field(default="", max_length=200)
    by: StaffId = Field(pattern=STAFF_ID_PATTERN)
    at: datetime

    @model_validator(mode="after")
    def _text(self) -> "Override":
        if self.reason == "other" and not self.text.strip():
            raise ValueError("an 'other' override needs its text")
        return self


class ShotMeta(ImageMeta):
    """An image of a v2 case: the view's metadata plus which shot it was and any quality override."""

    #: 1-based shot number within its view (a photographer may take several).
    shot: int = Field(1, ge=1, le=99)
    override: Override | None = None

    @model_validator(mode="after")
    def _override(self) -> "ShotMeta":
        if self.quality is not None and not self.quality.ok and self.override is None:
            raise ValueError("an image that failed the quality gate is sent only with an override reason")
        return self


class CaseHeaderV2(_Strict):
    """Everything about one lesion's case of a referral (schema version 2), except the image bytes."""

    schema_version: Literal[2] = SCHEMA_VERSION_2
    case_id: uuid.UUID
    referral: Referral
    patient: Patient
    consents: Consents
    #: The signed-in photographer who submitted the case.
    photographer: StaffId = Field(pattern=STAFF_ID_PATTERN)
    lesion: Lesion
    site: str = Field(pattern=ID_PATTERN)
    device_id: str = Field(pattern=ID_PATTERN)
    created_at: datetime
    seq: int = Field(ge=0)
    software_version: str = Field(min_length=1, max_length=64)
    model_version: str = Field(min_length=1, max_length=100)
    images: list[ShotMeta] = Field(min_length=1, max_length=16)
    #: ``declined``: the patient refused AI analysis, no classifier ran; ``failed``: it could not run.
    ai: Literal["done", "declined", "failed"] = "done"
    classification: Classification | None = None
    note: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _consistent(self) -> "CaseHeaderV2":
        shas = [im.sha256 for im in self.images]
        if len(set(shas)) != len(shas):
            raise ValueError("images repeat the same sha256")
        if not any(im.view == "dermoscopic" for im in self.images):
            raise ValueError("a case needs a dermoscopic image")
        if self.lesion.index > self.referral.lesion_count:
            raise ValueError("lesion index beyond the referral's lesion_count")
        classified = self.classification is not None or any(im.classification for im in self.images)
        if not self.consents.ai_analysis.given and (self.ai != "declined" or classified):
            raise ValueError("AI analysis was refused: ai must be 'declined' and no classification sent")
        if self.ai == "declined" and self.consents.ai_analysis.given:
            raise ValueError("ai is 'declined' although consent to AI analysis was given")
        return self

    # The centre's v1 names, so that code written for version 1 reads a v2 case too.
    @property
    def referral_ref(self) -> str:
        """The referral reference (UBRN or local)."""
        return self.referral.reference

    @property
    def lesion_id(self) -> str:
        """The lesion's label within its referral (``L1``...)."""
        return self.lesion.label

    @property
    def body_site(self) -> AnatomSiteGeneralEnum:
        """The lesion's ISIC general anatomic site."""
        return self.lesion.location.site

    @property
    def full_review_required(self) -> bool:
        """True when the classifier's output must not steer the reading: skin type V-VI or no AI run."""
        return self.patient.skin_type_unvalidated or self.ai != "done"


#: A case header of either schema version (the centre accepts version 1 during a rollout).
AnyCaseHeader = Union[CaseHeader, CaseHeaderV2]
_ANY_CASE = TypeAdapter(Annotated[AnyCaseHeader, Field(discriminator="schema_version")])


def parse_case_header(data: bytes | str) -> AnyCaseHeader:
    """A case header of schema version 1 or 2 from its JSON; raises pydantic's ValidationError."""
    return _ANY_CASE.validate_json(data)
