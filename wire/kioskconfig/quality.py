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

import math
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


#: A frame with a longer side under this many pixels is a thumbnail (archive images of 84-256 px), not
#: a camera frame: it holds no detail finer than its own pixels, so an uncalibrated kiosk expects less
#: sharpness of it (``KioskReference.focus_thumbnail``).
THUMBNAIL_SIDE = 400


def camera_sized(frame_size: tuple[int, int]) -> bool:
    """Whether a frame of ``frame_size`` (width, height) is a camera's (``THUMBNAIL_SIDE`` or more on its
    longer side), not an archive thumbnail: it is held to the camera normal, and its focus ratio has the
    noise floor taken off."""
    return max(frame_size) >= THUMBNAIL_SIDE


#: How the skin's redness (ln R/G) moves with its log-lightness (ln G) as pigment darkens it: the four clinics'
#: slopes averaged (the built-in reference's ``slope[0]``, ``bench.quality_pooled.lightness_fit``). One
#: kiosk's own slope, fitted on a few dozen stills, also holds its lighting's and its patients' redness
#: (PH2 -0.27, HAM10000 -0.82); how far pigment dims the skin is asked of this one.
PIGMENT_SLOPE = -0.454

#: A calibrated kiosk whose stills vary little in sharpness has its focus limits raised (``KioskReference.
#: focus_limit``): each view's ``focus_min`` is the limit for stills that spread as the fit halves' do (a
#: standard deviation of ln(r - 1) about 0.42: e^(-2.5 x 0.42) = 0.35, 2.5 being 2.25 x 1.11, 40 stills' spread
#: taken one standard error high), and one whose photographs hold their sharpness closer is held to
#: ``FOCUS_SPREAD_Z`` of its own spread below its normal, ...
FOCUS_SPREAD_Z = 2.25
#: ... the view's ``focus_min`` raised by this factor at most (the dermoscopic 0.35 to 0.42), ...
FOCUS_RAISE_MAX = 1.2
#: ... measured against the view's default limit (``ViewRules().focus_min``).
FOCUS_MIN_DEFAULT: float = ViewRules.model_fields["focus_min"].default
#: Each change to how the focus ratio is measured since kiosks were first calibrated, as a flag of ``KioskReference``:
#: a new calibration sets every one, and a calibration that gives its ``focus`` without one was measured before that
#: change, so its frames are measured without it too.
FOCUS_MEASURE_FLAGS = ("focus_noise_floor", "focus_field_scaled", "focus_cored", "focus_enlarged", "focus_even")


class KioskReference(BaseModel):
    """This kiosk's normal photographs: skin colour (mean log-chromaticity ln R/G, ln B/G, and its
    covariance) and sharpness (median focus ratio), through its own dermatoscope and camera.

    Written into the kiosk's config by ``python -m edge calibrate`` at installation (and delivered
    with the signed config bundles); the default is pooled over every source the gate was fitted
    on, so that an uncalibrated kiosk accepts any clinic's normal lighting and optics.
    """

    model_config = ConfigDict(extra="forbid")

    #: The built-in default: the skin colour of a clinic like PH2, ISIC 2017, HAM10000 and BCN20000, each
    #: counted once whatever its size (their mean, their mean covariance, plus the spread between clinics taken
    #: the same in every direction and widened for a clinic not among them: ``bench.quality_pooled.mixture``),
    #: fitted on their fit halves by ``python -m bench.quality_pooled``; ``--leave-one-out`` measures it on a
    #: clinic left out.
    chroma: tuple[float, float] = (0.218, -0.05)
    cov: tuple[tuple[float, float], tuple[float, float]] = ((0.0243, -0.0023), (-0.0023, 0.0181))
    #: Median focus ratio of this kiosk's normal stills (``measures.focus_ratio``: 1 = no fine detail).
    #: The built-in 2.4 is a camera frame's (at least ``THUMBNAIL_SIDE`` pixels on its longer side,
    #: measured reduced to ``focus_size``, the sensor's noise floor taken off): at their own size the fit
    #: halves' 2nd percentile is 2.74 for PH2 and 1.50 for HAM10000's 600-px images, so at 0.35 of it (a
    #: ratio of 1.49) both pass, and their copies defocused 3 px (PH2 up to 1.55, 1.61 with their own
    #: noise put back; HAM10000 1.2) are refused: 99 and 100 %, 95 % with the noise. Since the 8-bit steps are
    #: cored out (``measures.STEP_CORE``, 2026-12-07) the same files read 0.8 % (PH2) and 2.4 % (HAM10000's 600-px)
    #: less detail (r - 1, median), so the normal moved with them: 2.4 -> 2.38.
    focus: float = Field(2.38, gt=1.0, le=20.0)
    #: The same for a frame under ``THUMBNAIL_SIDE`` pixels (an archive thumbnail, measured at its
    #: own size: ISIC 2017's 256-px and HAM10000's 224-px squares score 1.2-6.9), built-in 1.78 (1.8 before the
    #: steps were cored: those squares read 2.6 and 3.7 % less detail). A calibration sets it to the kiosk's own
    #: median, as ``focus``.
    focus_thumbnail: float = Field(1.78, gt=1.0, le=20.0)
    #: Whether ``focus`` was measured with the noise floor taken off (``edge.quality.measures.focus_ratio``,
    #: since 2026-12-05). A calibration from before says nothing of it, and its frames are measured as its
    #: stills were (without): its normal stays the normal of what it measures.
    focus_noise_floor: bool = True
    #: Whether ``focus`` was measured with a round view well inside a larger frame read at the view's own scale
    #: (``edge.quality.analysis.field_crop``, since 2026-12-06). A calibration from before says nothing of it, and
    #: its frames are measured as its stills were (at the frame's scale).
    focus_field_scaled: bool = True
    #: Whether ``focus`` was measured with the 8-bit steps cored out of the fine detail (``edge.quality.measures.
    #: STEP_CORE``, since 2026-12-07). A calibration from before says nothing of it, and its frames are measured as
    #: its stills were (uncored).
    focus_cored: bool = True
    #: Whether ``focus`` was measured with a camera-sized file smaller than the focus size enlarged to it
    #: (``edge.quality.analysis.enlarge``, since 2026-12-07). A calibration from before says nothing of it, and its
    #: frames are measured as its stills were (at the file's own size).
    focus_enlarged: bool = True
    #: Whether ``focus`` was measured with every pixel of the region evenly weighed (``edge.quality.measures.
    #: EVEN_PERCENTILE``: the ratio of the skin's texture, not of its few strongest edges; since 2026-12-07).
    #: Unlike the other flags, False by default: the built-in normals (``focus``, ``focus_thumbnail``) were fitted
    #: weighed by energy, so an uncalibrated kiosk, like a calibration from before, measures its frames that way.
    focus_even: bool = False
    #: How much the stills' sharpness varies: the standard deviation of ln(r - 1) over their focus ratios r
    #: (``edge.quality.calibrate.focus_spread``). None (the built-in default, or a calibration from before
    #: 2026-12-06): the views' focus limits as configured. See ``focus_limit``.
    focus_spread: float | None = Field(None, ge=0.0, le=5.0)
    #: How many stills the reference was fitted on (0: the built-in default).
    images: int = Field(0, ge=0)
    #: The skin's mean log-lightness (its mean ln G, ``scene.skin_colour``) over the stills, and its standard
    #: deviation. With it, ``chroma`` is the mean colour at that lightness and ``slope`` says how the colour
    #: moves with it: darker skin is redder (melanin and blood absorb green and blue more than red, linearly in
    #: log space), so a patient's skin darker than the stills' is expected redder, not taken for a red cast.
    #: None (a calibration from before 2026-12-05): colour ignores lightness. The built-in default pools the
    #: four clinics (``bench.quality_pooled.lightness_fit``): their slopes averaged, and a standard deviation
    #: that holds the clinics' different exposures, so only skin darker than most of any clinic's slides.
    lightness: float | None = Field(5.05, ge=0.0, le=6.0)
    lightness_sd: float = Field(0.168, ge=0.0, le=2.0)
    #: Change of (ln R/G, ln B/G) per unit of log-lightness, fitted on the stills.
    slope: tuple[float, float] = (PIGMENT_SLOPE, 0.096)
    #: The grey patch's colour (ln R/G, ln B/G) on this kiosk's normal frames (``GreyPatch``); (0, 0), neutral
    #: grey, as the camera's colour gains set from a grey card make it (``python -m edge white-balance``).
    patch_chroma: tuple[float, float] = (0.0, 0.0)
    #: The grey patch's brightness (the median of its brightest channel, 0-255) on this kiosk's normal frames; None:
    #: not calibrated with one, and the skin's brightness is held to ``exposure_min`` as on a kiosk without a patch.
    patch_level: float | None = Field(None, gt=0.0, le=255.0)
    #: When and where it was taken (free text, for the record).
    note: str = Field("built-in default: pooled over PH2, ISIC 2017, HAM10000 and BCN20000", max_length=200)

    def expected(self, lightness: float | None) -> tuple[tuple[float, float], float]:
        """This kiosk's normal skin colour (ln R/G, ln B/G) for a skin of ``lightness``, and the factor by which
        its variance (``cov``) grows there: for skin darker than the stills' by over one standard deviation,
        their mean colour moved along ``slope`` by the excess, and the variance grown for carrying the slope,
        fitted on ``images`` stills, that far; otherwise (or without a lightness on either side) ``chroma``, 1."""
        if self.lightness is None or lightness is None:
            return self.chroma, 1.0
        # Only darker skin: no cast darkens green (a green cast brightens it, as paler skin does), so
        # following the slope that way would pass a cast as a paler patient. And only beyond one standard
        # deviation of the stills' lightness: within it, ``cov`` (the stills' own spread) already holds
        # their darker skins' redness, and sliding there too would allow it twice, hiding red and yellow casts.
        dl = min(0.0, lightness - self.lightness + self.lightness_sd)
        grow = 1.0 + (dl * dl / (self.images * self.lightness_sd ** 2) if self.images and self.lightness_sd else 0.0)
        return (self.chroma[0] + self.slope[0] * dl, self.chroma[1] + self.slope[1] * dl), grow

    def pigment_darkening(self, redness: float, lightness: float | None) -> float:
        """How much darker than the stills' the skin is by its own pigment, in log-lightness (ln G): 0 .. its
        whole darkening below the stills' mean lightness, the share its redness vouches for.

        Under-exposure dims every channel alike and leaves the skin's colour (``redness``: ln R/G) as it was;
        darker skin is also redder, by ``-PIGMENT_SLOPE`` per unit of darkening. So the redness beyond the
        stills' mean, divided by that slope, is the darkening pigment explains, and no more than the skin is
        darker. 0 without a lightness on either side. (A warm white balance makes skin redder too: the gate
        asks this only of a patient recorded with darker skin.)"""
        if self.lightness is None or lightness is None:
            return 0.0
        darker = self.lightness - lightness
        redder = redness - self.chroma[0]
        if darker <= 0 or redder <= 0:
            return 0.0
        return float(min(darker, redder / -PIGMENT_SLOPE))

    def normal_focus(self, frame_size: tuple[int, int]) -> float:
        """This kiosk's normal focus ratio for a frame of ``frame_size`` (width, height) pixels."""
        return self.focus if camera_sized(frame_size) else self.focus_thumbnail

    def focus_limit(self, focus_min: float) -> float:
        """The focus check's limit for a view whose ``focus_min`` is given, on this kiosk (rounded to 0.01, as
        the refusal quotes it).

        ``focus_min`` is the limit for a kiosk whose normal photographs vary in sharpness as much as the
        sources the gate was fitted on. Where the calibration's stills vary less (one dermatoscope, one camera,
        one way of working), a photograph as soft as the limit lies further from this kiosk's normal than it
        would from theirs: the limit is then raised to ``FOCUS_SPREAD_Z`` of the stills' spread below the
        normal, in proportion for every view, by ``FOCUS_RAISE_MAX`` at most. The spread of a few stills
        understates the spread of the photographs that follow, so it is taken one standard error high
        (x 1 + 1/sqrt(2(n - 1))). Without a spread (the built-in default, a calibration from before): as
        configured. A kiosk whose stills vary more than the sources' keeps ``focus_min`` too: it is not
        lowered (a soft still among the stills would otherwise pass soft photographs)."""
        if self.focus_spread is None or self.images < 2:
            return focus_min
        spread = self.focus_spread * (1.0 + 1.0 / math.sqrt(2.0 * (self.images - 1)))
        raised = min(FOCUS_RAISE_MAX, max(1.0, math.exp(-FOCUS_SPREAD_Z * spread) / FOCUS_MIN_DEFAULT))
        return round(focus_min * raised, 2)

    @model_validator(mode="after")
    def _positive_definite(self) -> "KioskReference":
        (sxx, sxy), (syx, syy) = self.cov
        if sxy != syx or sxx <= 0 or syy <= 0 or sxx * syy - sxy * sxy <= 0:
            raise ValueError("cov must be a symmetric positive-definite 2x2 matrix")
        if any(abs(k) > 3.0 for k in self.slope):
            raise ValueError("slope must lie within -3 and 3 (ln R/G and ln B/G per unit of log-lightness)")
        if {"chroma", "cov"} & self.model_fields_set and not {"lightness", "lightness_sd", "slope"} & self.model_fields_set:
            # a kiosk's own colour without its own lightness (a calibration from before 2026-12-05): the built-in
            # slope belongs to the built-in colour, not to this one
            self.lightness, self.lightness_sd, self.slope = None, 0.0, (0.0, 0.0)
        if "focus" in self.model_fields_set:  # a kiosk's own sharpness: measured as its flags say, none before them
            for flag in FOCUS_MEASURE_FLAGS:
                if flag not in self.model_fields_set:
                    setattr(self, flag, False)
        return self


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
