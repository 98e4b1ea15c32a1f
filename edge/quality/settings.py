"""Quality gate thresholds, per view (``[quality.dermoscopic]``, ``[quality.close-up]``, ``[quality.regional]``).

Each view has its own ``ViewRules``: which checks run and their thresholds. A view's table in
the TOML only needs the fields it changes; the rest keep that view's defaults (below).

Defaults (tuned on degraded HAM10000 images, see ``bench/quality_eval.py``):

============  ==============  ==============  ==============
check         dermoscopic     close-up        regional
============  ==============  ==============  ==============
fov           area >= 35 %,   --              --
              offset <= 0.2
focus         >= 1.4          >= 1.4          >= 1.3
exposure      115..235        115..235        115..235
clipping      <= 2 %,         <= 2 %,         <= 3 %,
              one channel     one channel     one channel
              <= 15 %         <= 15 %         <= 15 %
glare         <= 0.1 %        <= 0.3 %        --
colour        distance <= 2.5 <= 2.5          <= 3.0
              chroma <= 42    chroma <= 42    --
lesion        >= 1 % of FOV   >= 0.3 %        --
framing       offset <= 0.75, same            --
              border <= 0.35
              (unless it
              fills the view)
============  ==============  ==============  ==============

* ``fov`` (dermoscopic only): a dark circular vignette (contact dermatoscope) must cover
  ``fov_min_area`` of the frame with its centre within ``fov_max_offset`` (fraction of half the
  shorter side) of the middle; without a vignette the check passes (value 1.0: the whole
  frame is the field of view).
* ``focus``: fine-to-coarse gradient energy ratio around the lesion at a fixed scale (the frame
  scaled to ``focus_size`` pixels wide), in the worst direction (motion blur), so it depends on
  neither the sensor's resolution nor the lesion's contrast. Blur brings it towards 1.
* ``exposure``: median brightness (0-255) of the skin around the lesion. Tuned on fair skin
  (HAM10000): check ``exposure_min`` on the site's population before relying on it.
* ``clipping``: fraction of the field of view burnt out white (all three channels >= 250) or
  clipped black (the value reported), at most ``clipping_max``; and the fraction with any one
  channel saturated (>= 253) or black, at most ``clipping_channel_max``. The red channel of fair
  skin under a bright light saturates over much of a frame that is otherwise well exposed
  (over 2 % of the frame in 3.5 % of 600 HAM10000 images, over 15 % in 1.5 %), so one
  saturated channel is allowed over more of it.
* ``glare``: fraction of the field of view covered by small saturated white blobs.
* ``colour``: Mahalanobis distance of the mean skin colour (CIELAB a*, b*) from a reference
  (``colour_ref``, ``colour_cov``); refit the reference on the kiosk's own stills with
  ``bench/quality_fit_colour.py`` for a tighter gate. The check also fails when the skin's
  chroma (sqrt(a*^2 + b*^2)) exceeds ``colour_max_chroma``: a red cast shifts skin along the
  same a*/b* direction as natural redness (erythema), where the Mahalanobis ellipse is widest,
  but no skin in the reference set is as saturated as a cast one (HAM10000 skin: 99th
  percentile about 42-45). The value reported stays the Mahalanobis distance; the message
  names the cast's direction.
* ``lesion``: a region clearly darker than the skin (colour difference >= ``lesion_min_contrast``
  delta E), as a fraction of the field of view. Close-up views allow a smaller lesion;
  regional views (a body area for orientation) need none.
* ``framing``: the lesion's centre within ``framing_max_offset`` of the middle (fraction of
  half the shorter side), and its outline along the edge of the frame or the field of view at
  most ``framing_max_border`` times the circumference of a disc of the lesion's area (a lesion
  cut a quarter of the way into its diameter gives about 0.3). A lesion larger than the view
  (at least ``framing_fill_area`` of the field of view, centred within ``framing_fill_offset``)
  passes although it touches the edge. The lesion is segmented on lightness with the optics'
  radial fall-off (vignetting) divided out, so dark corners are not taken for the lesion.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

CHECKS = ("fov", "focus", "exposure", "clipping", "glare", "colour", "lesion", "framing")


class ViewRules(BaseModel):
    """Which checks run for one view, and their thresholds (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    checks: list[str] = Field(default_factory=lambda: list(CHECKS))
    focus_min: float = Field(1.4, ge=1.0, le=10.0)
    exposure_min: float = Field(115.0, ge=0, le=255)
    exposure_max: float = Field(235.0, ge=0, le=255)
    clipping_max: float = Field(0.02, ge=0, le=1)
    #: Fraction of the field of view with at least one colour channel saturated (or black).
    clipping_channel_max: float = Field(0.15, ge=0, le=1)
    glare_max: float = Field(0.001, ge=0, le=1)
    #: Reference skin colour: mean CIELAB (a*, b*) and its covariance (fitted on HAM10000;
    #: refit on a kiosk's own images, with its fixed colour gains, for a tighter gate).
    colour_ref: tuple[float, float] = (23.4, 5.9)
    colour_cov: tuple[tuple[float, float], tuple[float, float]] = ((107.0, 53.1), (53.1, 65.3))
    colour_max: float = Field(2.5, gt=0, le=20)
    #: Most saturated skin colour accepted (CIELAB chroma of the mean skin colour); 200 = off.
    colour_max_chroma: float = Field(42.0, gt=0, le=200)
    lesion_min_area: float = Field(0.01, ge=0, le=1)
    lesion_min_contrast: float = Field(8.0, ge=0, le=100)
    framing_max_offset: float = Field(0.75, ge=0, le=2)
    framing_max_border: float = Field(0.35, ge=0, le=1)
    #: A lesion larger than the view: covering at least ``framing_fill_area`` of the field of
    #: view with its centre within ``framing_fill_offset`` of the middle, it passes although it
    #: touches the edge (no framing would do better in this view). 1.0 = off.
    framing_fill_area: float = Field(0.5, ge=0, le=1)
    framing_fill_offset: float = Field(0.15, ge=0, le=2)
    fov_min_area: float = Field(0.35, ge=0, le=1)
    fov_max_offset: float = Field(0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> "ViewRules":
        unknown = set(self.checks) - set(CHECKS)
        if unknown:
            raise ValueError(f"unknown checks {sorted(unknown)}; known: {', '.join(CHECKS)}")
        if self.exposure_min >= self.exposure_max:
            raise ValueError("exposure_min must be below exposure_max")
        (sxx, sxy), (syx, syy) = self.colour_cov
        if sxy != syx or sxx <= 0 or syy <= 0 or sxx * syy - sxy * sxy <= 0:
            raise ValueError("colour_cov must be a symmetric positive-definite 2x2 matrix")
        return self


#: Per-view defaults: the fields where a view differs from ``ViewRules()``.
VIEW_DEFAULTS: dict[str, dict[str, Any]] = {
    "dermoscopic": {},
    "close-up": {"checks": ["focus", "exposure", "clipping", "glare", "colour", "lesion", "framing"],
                 "lesion_min_area": 0.003, "glare_max": 0.003},
    "regional": {"checks": ["focus", "exposure", "clipping", "colour"],
                 "focus_min": 1.3, "clipping_max": 0.03, "colour_max": 3.0, "colour_max_chroma": 200.0},
}


class QualitySettings(BaseModel):
    """Quality gate settings: the working sizes and one ``ViewRules`` per view."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    #: The JPEG is decoded DCT-reduced (1/2, 1/4, 1/8) to the smallest size at least this wide.
    work_size: int = Field(800, ge=256, le=4096)
    #: Width at which focus is measured (scale normalisation).
    focus_size: int = Field(800, ge=128, le=4096)
    #: Width at which exposure, colour, field of view and the lesion are analysed.
    analysis_size: int = Field(400, ge=128, le=2048)
    dermoscopic: ViewRules = Field(default_factory=ViewRules)
    close_up: ViewRules = Field(default_factory=lambda: ViewRules(**VIEW_DEFAULTS["close-up"]), alias="close-up")
    regional: ViewRules = Field(default_factory=lambda: ViewRules(**VIEW_DEFAULTS["regional"]))

    @model_validator(mode="before")
    @classmethod
    def _merge_view_defaults(cls, data: Any) -> Any:
        """A view table from TOML changes only the fields it names; the others keep the view's defaults."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for view, defaults in VIEW_DEFAULTS.items():
            key = view if view in data else view.replace("-", "_")
            if key in data and isinstance(data[key], dict):
                data[key] = {**defaults, **data[key]}
        return data

    @model_validator(mode="after")
    def _sizes(self) -> "QualitySettings":
        if self.analysis_size > self.focus_size:
            raise ValueError("analysis_size must not exceed focus_size")
        return self

    def rules(self, view: str) -> ViewRules:
        """The rules for ``view`` ("dermoscopic", "close-up" or "regional"); ValueError otherwise."""
        if view == "dermoscopic":
            return self.dermoscopic
        if view == "close-up":
            return self.close_up
        if view == "regional":
            return self.regional
        raise ValueError(f"unknown view {view!r}: use dermoscopic, close-up or regional")
