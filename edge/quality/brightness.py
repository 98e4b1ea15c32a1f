"""The exposure check's measures of a scene: the skin's brightness in its brightest colour channel, the view's
brightest tenth where the lesion fills the view, and the lower limit for a patient recorded with darker skin.
Split from ``edge.quality`` (``__init__.py``), which re-exports them; the calibration reads them too.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from wire.kioskconfig.quality import PIGMENT_SLOPE, KioskReference, ViewRules

from .analysis import masked_median, masked_quantile
from .scene import Scene, skin_colour


def skin_brightness(sc: Scene) -> float:
    """The exposure check's value: the median, over the skin, of each pixel's brightest colour channel (0-255).

    Skin is brightest in red. Under-exposed, even that channel is dim; over-exposed, it is clipped
    (255) over most of the skin, so the skin's colour (redness, the pigment's hue) is lost while
    its grey level can still look moderate: one value tested at both ends. Darker skin is redder
    than pale skin (its red stands further above its grey), so this is no harder on it than the grey
    level was.
    """
    return masked_median(brightest_channel(sc), sc.skin)


def brightest_channel(sc: Scene) -> np.ndarray:
    """Each pixel's largest colour channel at the analysis size (uint8): what the exposure check reads."""
    small = sc.work.small
    return cv2.max(cv2.max(small[..., 0], small[..., 1]), small[..., 2])


#: Where the lesion fills the view, the exposure check reads this quantile of the view's brightest channel.
FILL_QUANTILE = 0.9


def view_brightness(sc: Scene) -> float:
    """The exposure check's value where the photographer marked the lesion as larger than the view: over the field
    of view, the ``FILL_QUANTILE`` quantile of each pixel's brightest colour channel (0-255).

    With no skin in view, what the gate would take for skin is the lesion's paler parts, as dim as its pigment
    makes them (a dark melanoma's read 60-120). Pigment is patchy, though: the brightest tenth of a lesion's view
    (paler structures, follicles, skin islands) is as bright as skin round a lesion is, and under-exposure dims
    it with the rest. It varies less between such photographs than their median does (sd of its log 0.14 against
    0.20, ``bench.quality_fills_view``'s windows), so it is held to the skin's lower limit. Not to the upper: the
    brightest tenth saturated in red leaves most of the lesion's colour, so there the paler parts are read, as
    the skin is (``skin_brightness``), and a refusal quotes that figure.
    """
    return masked_quantile(brightest_channel(sc), sc.fov.inner > 0, FILL_QUANTILE)


#: A patient recorded with darker skin is held to a lower ``exposure_min`` (``exposure_floor``), but never below
#: this share of it: about the darkest skin (Fitzpatrick VI) under a light set for pale skin. Darker than that,
#: the skin's detail sinks into the sensor's noise whatever its colour, and the photographer needs more light.
DARK_SKIN_LEAST = 0.6


def exposure_floor(sc: Scene, rules: ViewRules, ref: KioskReference, darker_skin: bool = False) -> float:
    """The exposure check's lower limit for the skin of ``sc``: ``rules.exposure_min``; for a patient recorded
    with darker skin (``darker_skin``), lowered by what their pigment takes from the brightest channel, at
    least ``DARK_SKIN_LEAST`` of it.

    With the kiosk's exposure fixed, a darker patient's skin is dimmer in every channel, red too, though less
    (red falls by 1 + ``PIGMENT_SLOPE`` per unit of ln G, about half as fast as green): held to the pale skin's
    limit, their photographs were refused as under-exposed ("check that the dermatoscope's light is on"). The
    darkening their pigment explains is the share their skin's redness vouches for
    (``KioskReference.pigment_darkening``); under-exposure leaves the colour as it was and stays held to the
    limit. The skin's colour alone cannot tell a darker patient from a dim photograph of redder, warmly lit
    skin (PH2 holds such photographs), so the allowance is made only where the desk recorded the skin type.
    """
    if not darker_skin:
        return rules.exposure_min
    colour = skin_colour(sc)
    if colour is None:
        return rules.exposure_min
    fall = (1.0 + PIGMENT_SLOPE) * ref.pigment_darkening(colour[0], colour[2])
    return max(DARK_SKIN_LEAST * rules.exposure_min, rules.exposure_min * math.exp(-fall))
