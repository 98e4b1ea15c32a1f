"""The quality gate's words: every refusal message, and the figure it quotes against its limit.

A check's value is reported rounded to 4 decimals (``reported``), as the kiosk shows it and the case's quality
flags carry it, or to as many more as it takes for the reported value to give the rule's verdict against its
limit (a glare of 0.00404 refused against at most 0.004 is reported as 0.00404, not as 0.004), so that whoever
reads the value beside the limit reaches the gate's verdict. The rules test their values to ``MOST_DECIMALS``,
past a float's arithmetic noise. The message quotes the figure to the template's precision,
and to as many more decimals as it takes to read it on the failing side of its limit (``figures``): a photograph
refused at a cast of 3.5035 against 3.5 says "3.503 ..., at most 3.5", not "3.5 ..., at most 3.5".
"""

from __future__ import annotations

import math
import re

from wire.messages import QualityCheck

#: Every refusal message: what is wrong, the figure the rule tested (``{v}``) against its limit
#: (``{lim}``), and what to change. The kiosk shows these words and the centre shows the same ones
#: (they travel in the case's quality flags).
MESSAGES = {
    "decode": "The file is not a readable image: take the picture again",
    "truncated": "The picture is incomplete (truncated file): take the picture again",
    "too_small": "The picture is too small or narrow to judge ({w} x {h} pixels): take the picture again with "
                 "the camera's whole frame",
    "fov": "The dermatoscope's field of view is off-centre, cut off or too small (it covers only {v:.0%} of the "
           "middle of the picture, needs {lim:.0%}): press it flat on the skin, centred, and tap again",
    "focus": "Image is blurred (sharpness {v:.0%} of this kiosk's normal, needs {lim:.0%}): hold the dermatoscope "
             "still, check the focus and tap again",
    "shake": "Image is blurred by movement (sharpness along the movement {v:.0%} of that across it, needs {lim:.0%}): "
             "hold the dermatoscope and the patient's skin still, and tap again",
    "dark": "Image is too dark (skin brightness {v:.0f} in its brightest colour, needs at least {lim:.0f}): check "
            "that the dermatoscope's light is on and tap again",
    "dark_type": "Image is too dark (skin brightness {v:.0f} in its brightest colour, needs at least {lim:.0f} for "
                 "skin type {skin_type}): if the skin is darker than type {skin_type}, correct the skin type; "
                 "otherwise check the dermatoscope's light, and tap again",
    "dark_fill": "Image is too dark (brightness {v:.0f} in its brightest colour over the view's brightest tenth, "
                 "needs at least {lim:.0f}): check that the dermatoscope's light is on and tap again",
    "bright": "Image is too bright (skin brightness {v:.0f} in its brightest colour, at most {lim:.0f}: the skin's "
              "colour is burnt out): reduce the light or exposure and tap again",
    "bright_fill": "Image is too bright (brightness {v:.0f} in its brightest colour over the lesion's paler parts, "
                   "at most {lim:.0f}: its colour is burnt out): reduce the light or exposure and tap again",
    "patch_dark": "Image is too dark (the dermatoscope's grey patch is {v:.1f} stops from its normal brightness, needs "
                  "at least {lim:.1f}): check that the dermatoscope's light is on and the camera's exposure, and tap "
                  "again",
    "patch_bright": "Image is too bright (the dermatoscope's grey patch is {v:.1f} stops from its normal brightness, at "
                    "most {lim:.1f}): check the camera's exposure and the light, and tap again",
    "clip_white": "Parts of the image are burnt out white ({v:.1%} of the lesion and its surroundings, at most "
                  "{lim:.1%}): reduce the light or exposure and tap again",
    "clip_black": "Parts of the image are black ({v:.1%} of the lesion and its surroundings, at most {lim:.1%}): "
                  "check the light and that nothing covers the lens, and tap again",
    "glare": "Reflections (glare) cover {v:.1%} of the lesion and its surroundings (at most {lim:.1%}): add "
             "contact fluid or use polarised light, and tap again",
    "colour": "Colours look wrong ({direction} cast: {v:.1f} from this kiosk's normal colour, at most {lim:.1f}): "
              "check the lighting and white balance, and tap again",
    "patch_colour": "Colours look wrong ({direction} cast: the dermatoscope's grey patch is {v:.2f} from its normal "
                    "colour, at most {lim:.2f}): check the dermatoscope's light and the camera's white balance, and tap "
                    "again",
    "no_patch": "The dermatoscope's grey patch is not where this kiosk's configuration says ([quality.grey_patch]): "
                "fit the dermatoscope that has the patch (or have the configuration corrected) and tap again",
    "no_patch_colour": "The dermatoscope's grey patch cannot be read (burnt out, dark or covered): check the light "
                       "and exposure, clean the contact plate and tap again",
    "no_colour": "The picture has no colour (black and white: its most colourful parts differ by {v:.0f} levels "
                 "between colour channels, needs {lim:.0f}): set the camera to colour and tap again",
    "no_skin_colour": "The skin's colour cannot be read (no skin in view without a burnt-out colour channel): "
                      "reduce the light or exposure and tap again",
    "no_lesion": "No lesion found: centre the lesion in the view and tap again",
    "faint": "The lesion hardly stands out from the skin (colour difference {v:.1f}, needs {lim:.1f}): centre it in "
             "the view and tap again; if the lesion itself is this faint, send the photograph with a reason",
    "small": "The lesion is too small in the picture ({v:.1%} of the view, needs {lim:.1%}): move closer and "
             "tap again",
    "cut": "The lesion is cut by the {edges} of the picture (cut {v:.2f}, at most {lim:.2f}): {move} and tap again",
}


def cut_words(edges: tuple[str, ...]) -> dict[str, str]:
    """The words of the ``cut`` message for the ``edges`` of the picture that cut the lesion (``region.SIDES``, top or
    bottom first): which edges, and which way to move the view. The picture is not mirrored, so moving the view to
    its left brings in the skin beyond its left edge."""
    if not edges:
        return {"edges": "edge", "move": "centre it in the view"}
    return {"edges": " and ".join(edges) + (" edges" if len(edges) > 1 else " edge"),
            "move": f"move the view to the {' '.join(edges)}"}


#: What a passing check says where the photographer marked the lesion as larger than the view (``fills_view``):
#: the check that needs skin, or the lesion's outline, in view was not made, and the reader should know it. And
#: what the framing check says where no lesion stands out from the skin: the lesion check refuses the photograph
#: for that, once (``no_lesion``).
NOT_JUDGED = {
    "colour": "not judged: the lesion fills the view, so no skin shows the light's colour",
    "lesion": "not judged: the lesion fills the view",
    "framing": "not judged: the lesion is larger than the view (the close-up shows all of it)",
    "no_lesion": "not judged: no lesion stands out (the lesion check says so)",
    "shake": "not judged: an archive's thumbnail, whose oriented hairs outweigh the skin's lost detail",
    "still": "not judged: no fine detail in any direction (the focus check says so)",
}


#: Decimals of a reported value (``QualityCheck.value``) ...
REPORTED_DECIMALS = 4
#: ... and at most this many where fewer would not give the rule's verdict against its limit. A rule tests its
#: value to this many decimals too: a float's last bits are arithmetic, not measurement (a framing computed as
#: 0.5000000000000001, exactly 0.5 in figures, was refused against at most 0.5).
MOST_DECIMALS = 9


def reported(value: float, limit: float | None = None, ok: bool = True) -> float:
    """``value`` as a check reports it: rounded to ``REPORTED_DECIMALS``, or, where that would put it on the other
    side of ``limit`` than the rule's verdict ``ok`` (a refused value on the limit itself), to as many more as it
    takes (``MOST_DECIMALS`` at most; beyond that, as it is)."""
    value = float(value)
    if limit is None or not math.isfinite(value):
        return round(value, REPORTED_DECIMALS)
    side = value - limit  # which side of the limit the value lies on
    for places in range(REPORTED_DECIMALS, MOST_DECIMALS + 1):
        shown = round(value, places)
        if (shown - limit) * side > 0 or ok and (shown - limit) * side == 0:
            return shown
    return value


_SPEC = re.compile(r"\{(v|lim):\.(\d+)([f%])\}")


def _text(x: float, places: int, kind: str) -> str:
    return format(x, f".{places}{kind}")


def _number(text: str) -> float:
    """A figure as a message shows it (``3.50``, ``35.0%``), read back as a number."""
    return float(text.rstrip("%"))


def figures(value: float, limit: float, places: int, kind: str) -> tuple[str, str]:
    """``value`` and its ``limit`` as a refusal quotes them: to the template's ``places`` (``kind``: ``f`` or ``%``),
    and with more decimals, up to the reported ones, where fewer would show the value on or at the passing side of
    the limit (3.5035 against 3.5: "3.503" and "3.5"; 112.34 against 112.37: "112.3" and "112.4"). The limit keeps no
    more decimals than it needs."""
    most = max(places, MOST_DECIMALS - (2 if kind == "%" else 0))
    above = value > limit  # the side the value failed on
    p = places
    while p < most:
        v, lim = _number(_text(value, p, kind)), _number(_text(limit, p, kind))
        if (v > lim) if above else (v < lim):
            break
        p += 1
    shown = _number(_text(limit, p, kind))
    q = next(q for q in range(places, p + 1) if _number(_text(limit, q, kind)) == shown)
    return _text(value, p, kind), _text(limit, q, kind)


#: What a passing check says where its value is not the skin's (a kiosk with a grey patch), so that whoever reads the
#: value beside it (the case page's checks table) knows what it measures; every other passing check says "ok".
PASSED = {"patch_colour": "ok (the light's colour, read on the dermatoscope's grey patch)",
          "patch_bright": "ok (stops from the grey patch's normal brightness)"}
PASSED["patch_dark"] = PASSED["patch_bright"]


def check(value: float | None, ok: bool, key: str, limit: float | None = None, **extra: str) -> QualityCheck:
    """A check's result: ``value`` reported (rounded), and where it failed the message ``key`` quoting it against
    ``limit`` (``MESSAGES``, ``figures``); where it passed, "ok" (``PASSED`` for the grey patch's rules). A value
    that is not finite is reported as None."""
    if value is not None:
        value = reported(value, limit, ok)
        if not math.isfinite(value):
            value = None
    if ok:
        return QualityCheck(value=value, ok=True, message=PASSED.get(key, "ok"))
    template = MESSAGES[key]
    spec = _SPEC.search(template)
    if value is None or limit is None or spec is None:
        message = template.format(v=value if value is not None else float("nan"), lim=limit, **extra)
    else:
        v, lim = figures(value, limit, int(spec.group(2)), spec.group(3))
        message = _SPEC.sub(lambda m: "{" + m.group(1) + "}", template).format(v=v, lim=lim, **extra)
    return QualityCheck(value=value, ok=False, message=message)


def within(value: float, limit: float) -> bool:
    """Whether ``value``, to ``MOST_DECIMALS``, is at most ``limit``: the rule of every "at most" check."""
    return round(float(value), MOST_DECIMALS) <= limit


def reaches(value: float, limit: float) -> bool:
    """Whether ``value``, to ``MOST_DECIMALS``, is at least ``limit``: the rule of every "at least" check."""
    return round(float(value), MOST_DECIMALS) >= limit


def at_most(value: float, key: str, limit: float, **extra: str) -> QualityCheck:
    """The check that passes where ``value`` is at most ``limit`` (``within``)."""
    return check(value, within(value, limit), key, limit, **extra)


def at_least(value: float, key: str, limit: float, **extra: str) -> QualityCheck:
    """The check that passes where ``value`` is at least ``limit`` (``reaches``)."""
    return check(value, reaches(value, limit), key, limit, **extra)


def not_judged(key: str) -> QualityCheck:
    """A check that passes without a value, saying why it was not made (``NOT_JUDGED[key]``)."""
    return QualityCheck(value=None, ok=True, message=NOT_JUDGED[key])
