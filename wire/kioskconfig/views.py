"""The quality gate's per-view rules (``[quality.dermoscopic]``, ``[quality.close-up]``, ``[quality.regional]``):
which checks run for a view, and their thresholds. The checks and their defaults: ``wire.kioskconfig.quality``'s
docstring.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

CHECKS = ("fov", "focus", "shake", "exposure", "clipping", "glare", "colour", "lesion", "framing")


class ViewRules(BaseModel):
    """Which checks run for one view, and their thresholds (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    checks: list[str] = Field(default_factory=lambda: list(CHECKS))
    fov_min: float = Field(0.95, ge=0, le=1)
    #: Sharpness as a fraction of this kiosk's normal (``[quality.reference] focus``), at least this.
    #: Below 0.15 the check would pass strongly blurred images (they score about 0.03-0.2).
    focus_min: float = Field(0.35, ge=0.15, le=1.0)
    #: Sharpness along the worst direction as a fraction of that along the best (``shake``), at least this: a
    #: camera shake blurs one way only. Every camera-sized original of PH2 and HAM10000 with masks reads 0.43 or
    #: more; all but 4 of their 350 copies shaken 16 px read under 0.30, and 313 of those shaken 8 px.
    shake_min: float = Field(0.3, ge=0.0, le=0.9)
    #: The skin's brightness in its brightest colour channel (median, 0-255): at least this ...
    exposure_min: float = Field(130.0, ge=0, le=255)
    #: ... and at most this (254-255: the brightest channel is clipped over half of the skin or more).
    exposure_max: float = Field(253.0, ge=0, le=255)
    clipping_max: float = Field(0.05, ge=0, le=1)
    glare_max: float = Field(0.004, ge=0, le=1)
    #: Largest Mahalanobis distance from the kiosk's colour reference (``[quality.reference]``): 3.5,
    #: about the 98th-99th percentile of the fit halves' originals under their own calibration.
    colour_max: float = Field(3.5, gt=0, le=50)
    lesion_min_area: float = Field(0.005, ge=0, le=1)
    lesion_min_contrast: float = Field(6.0, ge=0, le=100)
    framing_max: float = Field(0.5, ge=0, le=1)
    #: On a kiosk with a grey patch: the patch's largest distance from its normal colour (ln R/G, ln B/G), ...
    patch_colour_max: float = Field(0.1, gt=0, le=2)
    #: ... and its brightness's largest change from its normal brightness, in stops, either way.
    patch_exposure_stops: float = Field(0.7, gt=0, le=5)

    @model_validator(mode="after")
    def _consistent(self) -> "ViewRules":
        unknown = set(self.checks) - set(CHECKS)
        if unknown:
            raise ValueError(f"unknown checks {sorted(unknown)}; known: {', '.join(CHECKS)}")
        if self.exposure_min >= self.exposure_max:
            raise ValueError("exposure_min must be below exposure_max")
        return self


#: Per-view defaults: the fields where a view differs from ``ViewRules()``.
VIEW_DEFAULTS: dict[str, dict[str, Any]] = {
    "dermoscopic": {},
    "close-up": {"checks": ["focus", "exposure", "clipping", "glare", "colour", "lesion", "framing"],
                 "lesion_min_area": 0.003},
    "regional": {"checks": ["focus", "exposure", "clipping", "colour"],
                 "focus_min": 0.25, "clipping_max": 0.03, "colour_max": 4.5},
}
