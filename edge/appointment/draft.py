"""The open appointment as data: one GP referral, its patient, consents, lesions and their shots.

Plain dataclasses holding the wire contract's models (:mod:`wire.referral`) where the
contract has one. :func:`dump` / :func:`load` turn an appointment into JSON and back
(for :mod:`edge.appointment.store`, which keeps it sealed on disk).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from pydantic import TypeAdapter

from wire.messages import VIEWS, Classification, Quality
from wire.referral import BodyLocation, Consents, History, Override, Patient


@dataclass
class Shot:
    """One photograph of one view of a lesion."""

    view: str
    #: 1-based within its view.
    shot_no: int
    captured_at: datetime
    width: int
    height: int
    sha256: str
    length: int
    quality: Quality
    #: The classifier's output (dermoscopic view, AI consent given). Shown at the kiosk only when
    #: config ``appointment.show_classifier`` is on (:meth:`AppointmentDesk.can_show_classifier`).
    classification: Classification | None = None
    #: Marked to send (send_shots "selected": one per view; "all": every shot).
    selected: bool = False
    #: Why a shot that failed the quality gate is sent all the same.
    override: Override | None = None
    #: The sealed JPEG's file name in the appointment's folder (a counter, never an identifier).
    file: str = ""

    @property
    def passed(self) -> bool:
        """True when the shot passed the quality gate."""
        return self.quality.ok

    @property
    def sendable(self) -> bool:
        """True when the shot may be sent: it passed, or it failed with an override reason."""
        return self.quality.ok or self.override is not None


@dataclass
class LesionDraft:
    """One lesion of the appointment and its shots per view."""

    index: int
    label: str
    on_referral: bool
    added_reason: str
    location: BodyLocation
    size_mm: float | None = None
    history: History = field(default_factory=History)
    shots: dict[str, list[Shot]] = field(default_factory=dict)
    #: The photographer marked the lesion as larger than the dermatoscope's view: its dermoscopic photographs
    #: show no skin, and the gate does not judge what needs skin or the lesion's outline (``assess(fills_view)``).
    fills_view: bool = False

    def judged_filling(self, view: str) -> bool:
        """Whether the gate judges this lesion's ``view`` as filled by the lesion (its dermoscopic view, marked)."""
        return self.fills_view and view == "dermoscopic"

    def chosen(self, view: str) -> list[Shot]:
        """The shots of ``view`` marked to send."""
        return [s for s in self.shots.get(view, []) if s.selected]

    def all_shots(self) -> list[Shot]:
        """Every shot of the lesion, in view order."""
        return [s for v in VIEWS for s in self.shots.get(v, [])]

    def shot(self, view: str, shot_no: int) -> Shot | None:
        """The shot ``shot_no`` of ``view``, or None."""
        return next((s for s in self.shots.get(view, []) if s.shot_no == shot_no), None)


@dataclass
class Appointment:
    """The open appointment (one per kiosk): one referral photographed by the signed-in photographer."""

    referral_id: uuid.UUID
    opened_at: datetime
    opened_by: str
    #: Patient fields as entered (set_patient); ``patient`` is whole once the skin type is set.
    nhs_number: str | None = None
    date_of_birth: date | None = None
    sex: str | None = None
    fitzpatrick: str | None = None
    #: The referral as entered: reference, reference_kind, referral_date, practice_ods, route.
    referral: dict | None = None
    consents: Consents | None = None
    lesions: list[LesionDraft] = field(default_factory=list)
    #: When the first photograph was taken (a lesion added afterwards needs a reason).
    first_shot_at: datetime | None = None
    #: Counter for the sealed shot files' names.
    next_file: int = 1

    @property
    def patient(self) -> Patient | None:
        """The patient (wire model) once NHS number, date of birth, sex and skin type are all set."""
        if None in (self.nhs_number, self.date_of_birth, self.sex, self.fitzpatrick):
            return None
        return Patient(nhs_number=self.nhs_number, date_of_birth=self.date_of_birth, sex=self.sex,
                       fitzpatrick=self.fitzpatrick)

    @property
    def details_done(self) -> bool:
        """True when patient, skin type, referral and consents are all recorded."""
        return self.patient is not None and self.referral is not None and self.consents is not None

    @property
    def ai_allowed(self) -> bool:
        """True when the patient consented to AI analysis (the classifier may run)."""
        return bool(self.consents and self.consents.ai_analysis.given)

    @property
    def photographing_started(self) -> bool:
        """True once a photograph was taken in this appointment."""
        return self.first_shot_at is not None

    def lesion(self, index: int) -> LesionDraft | None:
        """The lesion with this 1-based index, or None."""
        return next((les for les in self.lesions if les.index == index), None)


_ADAPTER = TypeAdapter(Appointment)


def dump(appt: Appointment) -> bytes:
    """The appointment as JSON bytes."""
    return _ADAPTER.dump_json(appt)


def load(data: bytes) -> Appointment:
    """An appointment from :func:`dump`'s JSON (pydantic ValidationError if it is not one)."""
    return _ADAPTER.validate_json(data)
