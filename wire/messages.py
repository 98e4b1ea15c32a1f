"""Pydantic models of every message that crosses the link (schema version 1).

The kiosk builds these, the centre validates them on receipt. Unknown fields
are refused (``extra="forbid"``) so that a mismatch between versions shows up
as a quarantined message with a reason instead of silently lost data.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from isic_metadata.fields import AnatomSiteGeneralEnum

from .topics import ID_PATTERN

SCHEMA_VERSION = 1

#: Diagnosis labels (HAM10000 / ISIC codes) in the classifier's output order.
LABELS = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
#: Risk tiers, most severe first.
TIERS = ("cancer", "pre-cancer", "benign")
TIER_OF_LABEL = {
    "mel": "cancer",
    "bcc": "cancer",
    "akiec": "pre-cancer",
    "nv": "benign",
    "bkl": "benign",
    "df": "benign",
    "vasc": "benign",
}
VIEWS = ("dermoscopic", "close-up", "regional")
#: Body sites: the ISIC Archive's general anatomic sites (isic-metadata's taxonomy).
BODY_SITES = tuple(e.value for e in AnatomSiteGeneralEnum)

Tier = Literal["cancer", "pre-cancer", "benign"]
View = Literal["dermoscopic", "close-up", "regional"]
Sha256 = str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QualityCheck(_Strict):
    """One quality check's value, verdict and a message a photographer can act on."""

    value: float | None
    ok: bool
    message: str = ""


class Quality(_Strict):
    """The quality gate's result for one image."""

    ok: bool
    checks: dict[str, QualityCheck] = Field(default_factory=dict)


class Classification(_Strict):
    """The classifier's output: per-class probabilities, risk tier and model version."""

    probabilities: dict[str, float]
    risk: Tier
    model: str = Field(min_length=1, max_length=100)

    @field_validator("probabilities")
    @classmethod
    def _known_labels(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(LABELS)
        if unknown:
            raise ValueError(f"unknown labels {sorted(unknown)}")
        if any(not (0.0 <= p <= 1.0) for p in v.values()):
            raise ValueError("probabilities must lie in [0, 1]")
        return v


class ImageMeta(_Strict):
    """Metadata of one image of a case; the JPEG bytes travel beside it in the frame."""

    view: View
    captured_at: datetime
    sha256: Sha256 = Field(pattern=r"^[0-9a-f]{64}$")
    length: int = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    quality: Quality | None = None
    classification: Classification | None = None


class CaseHeader(_Strict):
    """Everything about a case except the image bytes."""

    schema_version: Literal[1] = SCHEMA_VERSION
    case_id: uuid.UUID
    referral_ref: str = Field(min_length=1, max_length=64)
    lesion_id: str = Field(min_length=1, max_length=64)
    body_site: AnatomSiteGeneralEnum
    site: str = Field(pattern=ID_PATTERN)
    device_id: str = Field(pattern=ID_PATTERN)
    created_at: datetime
    #: Monotonic per-device sequence number: orders cases even when the kiosk clock is wrong.
    seq: int = Field(ge=0)
    software_version: str = Field(min_length=1, max_length=64)
    model_version: str = Field(min_length=1, max_length=100)
    images: list[ImageMeta] = Field(min_length=1, max_length=16)
    classification: Classification | None = None
    note: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _unique_hashes(self) -> "CaseHeader":
        shas = [im.sha256 for im in self.images]
        if len(set(shas)) != len(shas):
            raise ValueError("images repeat the same sha256")
        return self


class Ack(_Strict):
    """The centre's answer to a case, sent only after the case is committed (or refused)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    case_id: uuid.UUID
    status: Literal["stored", "duplicate", "rejected"]
    received_at: datetime
    reason: str = ""


class Status(_Strict):
    """Retained presence of a kiosk; the broker publishes ``offline`` as its last will."""

    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: str = Field(pattern=ID_PATTERN)
    state: Literal["online", "offline"]
    at: datetime | None = None
    software_version: str = ""
    model_version: str = ""


def tier_for(probabilities: dict[str, float], thresholds: dict[str, float]) -> str:
    """The most severe tier whose summed probability passes its threshold (benign otherwise).

    ``thresholds`` maps tier name to the threshold on the sum of that tier's
    class probabilities. This is deliberately not the argmax: a lesion with a
    20 % melanoma probability is referred as cancer if the threshold is lower.
    """
    for tier in TIERS[:-1]:
        p = sum(probabilities.get(lab, 0.0) for lab, t in TIER_OF_LABEL.items() if t == tier)
        if p >= thresholds[tier]:
            return tier
    return TIERS[-1]
