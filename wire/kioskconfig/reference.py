"""The kiosk's reference (``[quality.reference]``): its normal skin colour and sharpness, taken at installation by
``python -m edge calibrate`` (or the built-in default pooled over the sources the gate was fitted on), and what a
camera's frame is as against an archive thumbnail. See ``wire.kioskconfig.quality``'s docstring for the checks
that read it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .views import ViewRules

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


class FocusMeasure(NamedTuple):
    """How a frame's focus ratio is measured (``edge.quality.sharpness.focus_value``): each change since kiosks were
    first calibrated on or off, each named as its flag in ``FOCUS_MEASURE_FLAGS`` less ``focus_``
    (``KioskReference.focus_measure``: as the kiosk's stills were measured). The defaults are an uncalibrated kiosk's, whose built-in normals were fitted
    weighed by energy; ``today`` is how a calibration of today measures its stills."""

    noise_floor: bool = True
    field_scaled: bool = True
    cored: bool = True
    enlarged: bool = True
    even: bool = False

    @classmethod
    def today(cls) -> "FocusMeasure":
        """Every change in: how ``python -m edge calibrate`` measures a kiosk's stills now."""
        return cls(**dict.fromkeys(cls._fields, True))


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

    @property
    def focus_measure(self) -> FocusMeasure:
        """How this kiosk measures a frame's focus ratio: as its stills were (its ``FOCUS_MEASURE_FLAGS``)."""
        return FocusMeasure(**{flag.removeprefix("focus_"): getattr(self, flag) for flag in FOCUS_MEASURE_FLAGS})

    @property
    def focus_outdated(self) -> bool:
        """Whether this kiosk's own sharpness normal (a calibration's: ``images`` above 0) was measured by an older
        release: a flag of ``FOCUS_MEASURE_FLAGS`` unset. The kiosk judges focus as that release did; a new
        calibration brings it today's focus check. The built-in normals are never outdated: they are measured as
        they were fitted."""
        return self.images > 0 and self.focus_measure != FocusMeasure.today()

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
