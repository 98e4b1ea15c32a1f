"""The ``[worklist]`` section of the centre's configuration: the FDS clock's warning points, claims, page size."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class WorklistConfig(BaseModel):
    """The referral worklist (dashboard.worklist), its clock (dashboard.clock) and claims (dashboard.claims)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The Faster Diagnosis Standard: calendar days from the referral to telling the patient.
    fds_days: int = Field(default=28, ge=1, le=365)
    #: Warnings at these calendar days waited (each point passed raises the clock's warning level).
    warn_days: tuple[int, ...] = Field(default=(14, 21), max_length=4)
    #: Opening a referral to read it claims it for this many minutes (renewed on every opening).
    claim_minutes: int = Field(default=20, ge=1, le=24 * 60)
    #: Referrals per worklist page.
    page_size: int = Field(default=50, ge=10, le=500)

    @field_validator("warn_days")
    @classmethod
    def _increasing(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < 1 for d in v) or list(v) != sorted(set(v)):
            raise ValueError("warn_days must be increasing whole days of at least 1, e.g. [14, 21]")
        return v

    @model_validator(mode="after")
    def _within_the_standard(self) -> "WorklistConfig":
        if self.warn_days and self.warn_days[-1] > self.fds_days:
            raise ValueError(f"warn_days ({list(self.warn_days)}) must fall within fds_days ({self.fds_days})")
        return self
