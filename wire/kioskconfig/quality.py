"""Quality gate thresholds, per view (``[quality.dermoscopic]``, ``[quality.close-up]``, ``[quality.regional]``),
and the kiosk's reference colour and sharpness (``[quality.reference]``).

Each view has its own ``ViewRules``: which checks run and their thresholds. A view's table in
the TOML only needs the fields it changes; the rest keep that view's defaults (below).
One rule per check: the value a check reports is the value its threshold is tested on, and
its message quotes that value.

Defaults (chosen on the fit half of PH2, ISIC 2017 and HAM10000 and scored on the other half,
see ``bench/quality_eval.py`` and README, "The quality gate"):

============  ==============  ==============  ==============
check         dermoscopic     close-up        regional
============  ==============  ==============  ==============
fov           >= 0.95         --              --
focus         >= 0.35         >= 0.35         >= 0.25
shake         >= 0.30         --              --
exposure      130..253        130..253        130..253
clipping      <= 5 %          <= 5 %          <= 3 %
glare         <= 0.4 %        <= 0.4 %        --
colour        <= 3.5          <= 3.5          <= 4.5
lesion        >= 0.5 % of FOV >= 0.3 %        --
framing       <= 0.5          <= 0.5          --
============  ==============  ==============  ==============

* ``fov`` (dermoscopic only): the fraction of a disc centred on the frame that lies inside the
  dermatoscope's field of view (the part not covered by its dark vignette); the disc is 0.9 times the
  field's own size (the diameter of a circle of its area, clipped to 0.6..1 of the shorter side). A
  round field centred on the frame gives 1.0 at any normal size (BCN20000's small circle in a black
  vignette), as does a frame without a vignette; a field pushed to one side (off-centre, cut by the
  frame's edge) or cut by a dark chord (tilted, not pressed flat) lowers it, and so does a field
  under about half the shorter side wide, too small to read.
* ``focus``: sharpness as a share of this kiosk's normal: (r - 1) / (reference focus - 1), where r
  is the fine-to-coarse gradient energy ratio around the lesion at a fixed scale (the frame scaled
  to ``focus_size`` pixels on its longer side, in landscape or portrait alike, a frame wider than 4:3 as the
  4:3 frame round the same view, and a round view well inside a larger frame as the same view as high as the
  frame) in the worst direction (motion blur), independent of the lesion's
  contrast and, on a camera-sized frame, of the sensor's noise (its floor is taken off both energies), with an
  8-bit image's one-level steps cored out of the fine detail. Blur brings r towards 1 and the value towards 0; optics and sensors differ in their
  normal r (PH2 about 6, HAM10000 about 2.8), hence the kiosk's own reference. Uncalibrated, a
  camera frame is held to the built-in camera normal (2.38) and a thumbnail under ``THUMBNAIL_SIDE``
  pixels (an archive image, measured at its own size) to a softer one (1.78). A calibrated kiosk whose
  stills vary less in sharpness than the sources the gate was fitted on has every view's limit raised
  in proportion, up to 1.2 times (the dermoscopic 0.35 to 0.42; ``KioskReference.focus_limit``), and reads r
  with every pixel of the region evenly weighed (``KioskReference.focus_even``: the skin's detail, not that of its
  few strongest edges, hairs or glare spots' rims), as its stills were read.
* ``shake``: the fine detail left along the worst direction as a share of that along the best, (r_worst - 1) /
  (r_best - 1), the focus ratio's two directions with every pixel evenly weighed (``edge.quality.shake_share``): a
  camera shake blurs along its own direction only, and the other keeps the optics' own sharpness, so no kiosk's
  normal is needed and optics sharper than the normal cannot hide a shake. At least ``shake_min``. Judged on a camera-sized frame with some fine detail
  (an archive thumbnail's skin has lost its own, and its hairs' direction would read as a shake; a frame without any
  is the focus check's); the dermoscopic view only by default.
* ``exposure``: the skin's brightness in its brightest colour channel (red, for skin): the median
  over the skin around the lesion of each pixel's largest channel (0-255), within
  ``exposure_min``..``exposure_max``. Under-exposed, even red is dim; over-exposed, it is clipped
  over most of the skin (254-255) and the skin's colour is lost, though its grey level can look
  moderate (the grey median passed most +1-stop copies). For a patient recorded with brown to black
  skin (Fitzpatrick IV-VI), ``exposure_min`` is lowered by what their pigment takes from red, as far
  as their skin's redness says (``KioskReference.pigment_darkening``), to 0.6 of it at most
  (``edge.quality.exposure_floor``): with the kiosk's exposure fixed, darker skin is dimmer.
* ``clipping``: the fraction of the lesion and its surroundings (as for glare; the field of view
  without a lesion) that is burnt out white (all three channels >= 250) or clipped black (grey
  level <= 4), whichever is larger; the message names which.
* ``glare``: the fraction of the lesion and its surroundings (its bounding box grown by a quarter
  each side; the field of view without a lesion) covered by small white blobs saturated in all
  three channels (>= 250), thin lines (bubble rims, hairs) opened away, leaving out specks within a
  broad near-white patch (all channels >= 235, over 2 % of the view) or one reaching the view's rim:
  glare that hides the lesion, not PH2's pale skin burnt out under the light's hot spot (clipping's
  business) nor a bubble in the contact fluid beside it.
* ``colour``: first, a picture with no colour at all (black and white: the 99th percentile of each lit
  pixel's largest difference between two colour channels under 6 levels) is refused as such; then the
  Mahalanobis distance of the skin's mean log-chromaticity (ln R/G, ln B/G: a colour
  cast, a change of channel gains, shifts it by the same amount whatever the skin), over the skin
  pixels with no channel saturated (>= 250: their colour is unknown), from this kiosk's reference
  (``[quality.reference]``, taken at installation with ``python -m edge calibrate``). The default
  reference is the equal-weight mixture of every source's skin colour (each clinic's spread plus the
  spread between clinics, ``python -m bench.quality_pooled``): it accepts those clinics' normal
  lighting and catches only strong casts.
* ``colour`` on a kiosk with a grey patch (``[quality.grey_patch]``, dermoscopic view): the light's colour read on
  the patch instead of the skin: the distance, in ln R/G and ln B/G, of the patch's median colour from its colour on
  this kiosk's normal frames (``[quality.reference] patch_chroma``), at most ``patch_colour_max`` (0.1, about 10 %).
  A cast moves the patch as it moves the skin, and the patient's own skin colour does not move it at all.
* ``exposure`` on a kiosk calibrated with a grey patch (``patch_level``): the patch's brightness against its normal,
  in stops (sRGB levels as 2.2 powers of the light), within ``patch_exposure_stops`` (0.7) either way, and not the
  skin's: darker skin, a lesion filling the view, or a fair patient's skin burnt out in red under the kiosk's normal
  light are the patient's, not the photograph's (white burnt out over the lesion stays clipping's business).
* ``lesion``: a region clearly different from the skin (colour difference >= ``lesion_min_contrast``
  delta E), as a fraction of the field of view, at least ``lesion_min_area``. Close-up views allow
  a smaller lesion; regional views (a body area for orientation) need none.
* ``framing``: how much of the lesion is cut by the edge of the frame or of the field of view:
  the length of its outline along that edge over the circumference of a disc of its area, times
  how one-sided that contact is (1: all on one side, as when the camera is aimed beside the
  lesion; 0: all round, a lesion larger than the view that no framing could fit). A lesion that
  merely touches the edge, or fills the view centred, passes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .reference import (FOCUS_MEASURE_FLAGS, FOCUS_MIN_DEFAULT, FOCUS_RAISE_MAX, FOCUS_SPREAD_Z, PIGMENT_SLOPE,
                        THUMBNAIL_SIDE, FocusMeasure, KioskReference, camera_sized)
from .views import CHECKS, VIEW_DEFAULTS, ViewRules

#: The ``[quality]`` section's parts, one import for either side: the views' rules (``.views``) and the kiosk's
#: reference (``.reference``) with this module's grey patch and settings.
__all__ = ["CHECKS", "FOCUS_MEASURE_FLAGS", "FOCUS_MIN_DEFAULT", "FOCUS_RAISE_MAX", "FOCUS_SPREAD_Z", "PIGMENT_SLOPE",
           "THUMBNAIL_SIDE", "VIEW_DEFAULTS", "FocusMeasure", "GreyPatch", "KioskReference", "QualitySettings", "ViewRules",
           "camera_sized"]


class GreyPatch(BaseModel):
    """A neutral grey patch printed on the camera's side of the dermatoscope's contact plate, inside the rim of its
    field of view, so that every dermoscopic frame shows the light's colour on something whose colour is known.

    The skin cannot tell a colour cast from a patient's own skin colour (between photographs it varies along the
    casts' directions about as much as a moderate cast moves it): the patch can. Where it sits is the plate's, so
    it is fixed in the frame: its centre (``x``, ``y``: fractions of the frame's width and height) and ``radius``
    (a fraction of the frame's shorter side). No other check reads the pixels it covers.
    """

    model_config = ConfigDict(extra="forbid")

    x: float = Field(ge=0.0, le=1.0)
    y: float = Field(ge=0.0, le=1.0)
    radius: float = Field(ge=0.01, le=0.2)

    def circle(self, width: int, height: int) -> tuple[int, int, float]:
        """The patch in a frame of ``width`` x ``height`` pixels: its centre (x, y) and radius, in pixels."""
        return round(self.x * (width - 1)), round(self.y * (height - 1)), self.radius * min(width, height)


class QualitySettings(BaseModel):
    """Quality gate settings: the working sizes and one ``ViewRules`` per view."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    #: The JPEG is decoded DCT-reduced (1/2, 1/4, 1/8) to the smallest size at least this long on its longer side
    #: (a frame wider than 4:3: on the longer side of the 4:3 frame round its view, ``edge.quality.analysis.nominal_side``).
    work_size: int = Field(800, ge=256, le=4096)
    #: Longer side at which focus and glare are measured (scale normalisation: a frame in portrait is
    #: measured at the scale of the same frame in landscape, a wider one as the 4:3 frame round its view).
    focus_size: int = Field(800, ge=128, le=4096)
    #: Longer side (as ``focus_size``) at which exposure, colour, field of view and the lesion are analysed.
    analysis_size: int = Field(400, ge=128, le=2048)
    dermoscopic: ViewRules = Field(default_factory=ViewRules)
    close_up: ViewRules = Field(default_factory=lambda: ViewRules(**VIEW_DEFAULTS["close-up"]), alias="close-up")
    regional: ViewRules = Field(default_factory=lambda: ViewRules(**VIEW_DEFAULTS["regional"]))
    reference: KioskReference = Field(default_factory=KioskReference)
    #: The contact plate's grey patch, where the kiosk's dermatoscope has one (dermoscopic view); None: none.
    grey_patch: GreyPatch | None = None

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
