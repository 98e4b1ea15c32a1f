"""Pydantic models of every message that crosses the link (schema version 1).

The kiosk builds these, the centre validates them on receipt. Unknown fields
are refused (``extra="forbid"``) so that a mismatch between versions shows up
as a quarantined message with a reason instead of silently lost data.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from isic_metadata.fields import AnatomSiteGeneralEnum

from . import topics
from .topics import CLIENT_ID_PATTERN, ID_PATTERN

SCHEMA_VERSION = 1

#: Diagnosis labels (HAM10000 / ISIC codes) in the classifier's output order.
#: ``scc`` came with the second model (kiosks of the first send the other seven: a subset is accepted).
LABELS = ("akiec", "bcc", "bkl", "df", "mel", "nv", "scc", "vasc")
#: Human names of the labels, for the pages of both sides.
LABEL_NAMES = {
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis-like lesion",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic naevus",
    "scc": "Squamous cell carcinoma",
    "vasc": "Vascular lesion",
}
assert set(LABEL_NAMES) == set(LABELS)
#: Risk tiers, most severe first.
TIERS = ("cancer", "pre-cancer", "benign")
TIER_OF_LABEL = {
    "mel": "cancer",
    "bcc": "cancer",
    "scc": "cancer",
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


#: Most acks in one :class:`Acks` message (an ingest batch holds at most 64 cases).
MAX_ACKS = 1000


class Acks(_Strict):
    """The centre's answers to several cases of one kiosk in one message: one per stored batch.

    A backlog drains at hundreds of cases a second; one message per batch instead
    of one per case spares the broker, the kiosk and the ingest a publish, two
    PUBACKs and a delivery per case. Order is the order the cases were handled.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    acks: list[Ack] = Field(min_length=1, max_length=MAX_ACKS)


_ACK_MESSAGE = TypeAdapter(Acks | Ack)


def parse_acks(payload: bytes | str) -> list[Ack]:
    """The acks in a message on a kiosk's ack topic: an :class:`Acks` batch or a single :class:`Ack`.

    A single ``Ack`` is what centres before batched acks sent; a kiosk reads both.
    Raises pydantic's ValidationError for anything else.
    """
    message = _ACK_MESSAGE.validate_json(payload)
    return message.acks if isinstance(message, Acks) else [message]


class Status(_Strict):
    """Retained presence of a kiosk; the broker publishes ``offline`` as its last will."""

    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: str = Field(pattern=ID_PATTERN)
    state: Literal["online", "offline"]
    at: datetime | None = None
    software_version: str = ""
    model_version: str = ""


class CentreStatus(_Strict):
    """Retained presence of the centre's ingest (``dermkiosk/v1/centre/<client id>``).

    ``online`` once the ingest has subscribed and stores cases; ``offline`` when it
    stops, while it cannot store (disk full, I/O error), and as its last will when it
    dies. While every ingest says ``offline``, kiosks keep new cases in their outbox and
    do not resend: the broker then holds at most each kiosk's in-flight window for the
    ingest, not copy after copy of it.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    client_id: str = Field(pattern=CLIENT_ID_PATTERN)
    state: Literal["online", "offline"]
    at: datetime | None = None
    software_version: str = ""


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


class Health(_Strict):
    """A kiosk's periodic health report (``health`` topic). ``None``: the sensor is absent here.

    ``at`` is the kiosk's own wall clock, so that the centre can compute the skew
    against its clock; every other time is an age in seconds or a kiosk timestamp.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: str = Field(pattern=ID_PATTERN)
    at: datetime
    interval_s: float = Field(gt=0)
    uptime_s: float = Field(ge=0)
    #: Seconds since the kiosk service started (restarts show here).
    service_uptime_s: float | None = None
    cpu_temp_c: float | None = None
    #: Raw ``vcgencmd get_throttled`` bits and their names (``under-voltage-now``, ...).
    throttled_bits: int | None = None
    throttled: list[str] = Field(default_factory=list)
    load1: float | None = None
    load5: float | None = None
    load15: float | None = None
    mem_total_mb: float | None = None
    mem_available_mb: float | None = None
    disk_total_mb: float | None = None
    disk_free_mb: float | None = None
    outbox_depth: int = Field(0, ge=0)
    #: Age of the oldest case not yet acknowledged by the centre (None: nothing waits).
    outbox_oldest_s: float | None = None
    last_capture_at: datetime | None = None
    last_delivery_at: datetime | None = None
    camera_connected: bool = False
    link_connected: bool = True
    classifier_latency_ms: float | None = None
    model_version: str = ""
    software_version: str = ""
    #: NTP synchronisation as the kiosk's OS reports it (None: unknown).
    clock_synced: bool | None = None
    #: Its quality gate's reference (``[quality.reference]``): the calibration's note (where and when it
    #: was taken), "" while it runs on the built-in default (never calibrated); None: not reported.
    calibration: str | None = Field(None, max_length=200)


class UpdateManifest(_Strict):
    """``bundle.json`` inside a signed update bundle: what it holds; signed with Ed25519 (``bundle.sig``)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    bundle_id: uuid.UUID
    kind: Literal["model", "config"]
    #: Model version (from the model manifest) or a label of the configuration.
    version: str = Field(min_length=1, max_length=100)
    created_at: datetime
    #: Devices the bundle is meant for (empty: any device).
    devices: list[str] = Field(default_factory=list)
    #: File name -> SHA-256 of every other file in the bundle.
    files: dict[str, Sha256]

    @field_validator("files")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        import re

        for name, digest in v.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name) or name in ("bundle.json", "bundle.sig"):
                raise ValueError(f"bad file name {name!r}")
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(f"bad sha256 for {name!r}")
        return v


class UpdateResult(_Strict):
    """The kiosk's answer to an update bundle (``update-result`` topic)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: str = Field(pattern=ID_PATTERN)
    bundle_id: uuid.UUID | None = None
    kind: Literal["model", "config", "unknown"] = "unknown"
    version: str = ""
    status: Literal["applied", "refused", "rolled-back"]
    reason: str = ""
    #: The model (or config label) serving after this update attempt.
    serving: str = ""
    at: datetime


def from_device(topic: str, payload: bytes | str, models: dict[str, type[BaseModel]]):
    """``(site, device, kind, message)`` of a kiosk's JSON message on its own topic.

    ``models`` maps the topic kinds accepted here to their message class. Raises
    ValueError with a reason fit for a log line: not one of our topics, a kind not
    accepted, a payload that does not validate, or a payload from another device
    than the topic's.
    """
    site, device, kind = topics.parse(topic)
    if kind not in models:
        raise ValueError(f"not a {'/'.join(models)} topic: {kind}")
    try:
        msg = models[kind].model_validate_json(payload)
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"]) from None
    if msg.device_id != device:
        raise ValueError("device in topic and payload differ")
    return site, device, kind, msg
