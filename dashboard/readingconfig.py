"""The ``[reading]`` section of the centre's configuration: when a lesion needs a second read, who settles a
disagreement, where the model card is."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from wire.referral import STAFF_ID_PATTERN


class ReadingConfig(BaseModel):
    """Second-read rules (each on by default) and the lead for disagreements."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A lesion the classifier put in the cancer tier that the first reader discharges.
    second_read_cancer_discharge: bool = True
    #: A first read whose diagnosis is in another tier than the classifier's (malignant / indeterminate / benign).
    second_read_tier_disagreement: bool = True
    #: A discharge of a patient with skin type V-VI (the classifier is not validated there).
    second_read_skin_type_discharge: bool = True
    #: Share of all other first reads drawn at random for an audit second read (0 to 1).
    audit_share: float = Field(default=0.10, ge=0.0, le=1.0)
    #: The named lead who settles a first/second read disagreement; unset: any third dermatologist.
    lead: str | None = Field(default=None, pattern=STAFF_ID_PATTERN)
    #: The classifier's model card shown from the referral page (default: the shipped models/lesion/MODEL_CARD.md).
    model_card: Path | None = None
