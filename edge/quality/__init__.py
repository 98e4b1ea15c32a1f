"""The quality gate: is this still good enough for a dermatologist, and if not, why not.

``assess(jpeg, view, settings, skin_type, fills_view)`` decodes the JPEG once on a fixed, DCT-reduced path
(``analysis.decode``) and runs the checks that ``settings`` enables for the view
(dermoscopic, close-up, regional; see ``settings`` for the per-view rules and defaults).
Each check gives a value, a verdict and, when it fails, a message the photographer can act on.
The image passes when every check passes. A file that is not an image gives a single failing
``decode`` check instead of an exception.

``cli_main(paths)`` is ``python -m edge quality IMAGE...``: one JSON object per line (and, for more than one
image, how many were refused and for what on stderr, ``refusal_summary``).
"""

from __future__ import annotations

import functools
import json
import sys

import cv2
import numpy as np

from wire.kioskconfig.quality import (CHECKS, KioskReference, QualitySettings, ViewRules,
                                     camera_sized)
from wire.messages import Quality, QualityCheck

from .analysis import DecodeError
from .brightness import (DARK_SKIN_LEAST, FILL_QUANTILE, exposure_floor, skin_brightness,  # noqa: F401 (re-exported)
                         view_brightness)
from .fov import fov_coverage
from .measures import COLOUR_LEAST, colourfulness, glare_fraction
from .patch import cast_direction, patch_cast, patch_colour, patch_found, patch_level, patch_stops
from .scene import Scene, around_lesion, scene, skin_colour
from .sharpness import FOCUS_LEAST, focus_value, focus_values, shake_share  # noqa: F401 (re-exported)
from .words import (MESSAGES, NOT_JUDGED, at_least, at_most, check, cut_words,  # noqa: F401 (NOT_JUDGED re-exported)
                    not_judged, reaches, within)

__all__ = ["CHECKS", "KioskReference", "QualitySettings", "ViewRules", "assess", "cli_main", "MESSAGES"]

def cast_distance(colour: tuple[float, ...] | None, ref: KioskReference) -> tuple[float, str]:
    """Mahalanobis distance of the skin's colour from the kiosk's reference, and the cast's direction.

    ``colour`` is (ln R/G, ln B/G) or, with the skin's log-lightness, (ln R/G, ln B/G, lightness)
    (``scene.skin_colour``): a reference that knows how its skin's colour moves with lightness
    (``KioskReference.expected``) judges a darker skin against the redder colour expected of it.
    Direction of the shift (ln R/G, ln B/G): red (R up), blue (B up, or R down: cool), green
    (R and B down together) or yellow (B down).
    """
    if colour is None:
        return float("inf"), "colour"
    (er, eb), grow = ref.expected(colour[2] if len(colour) > 2 else None)
    d = np.array([colour[0] - er, colour[1] - eb])
    dist = float(np.sqrt(d @ np.linalg.inv(np.array(ref.cov)) @ d / grow))
    return dist, cast_direction(float(d[0]), float(d[1]))


#: The Fitzpatrick skin types (as the kiosk records them) of brown to black skin: for these patients a
#: dimmer skin is taken for their pigment where its colour says so (``exposure_floor``).
DARKER_SKIN_TYPES = ("IV", "V", "VI")


def assess(jpeg: bytes, view: str, settings: QualitySettings | None = None, skin_type: str | None = None,
           fills_view: bool = False) -> Quality:
    """Run the view's checks on ``jpeg``; ``Quality.ok`` is True when all of them pass.

    ``skin_type``: the patient's Fitzpatrick skin type as recorded at the desk ("I" .. "VI"; None: not
    known). For brown to black skin (``DARKER_SKIN_TYPES``) the exposure check expects dimmer skin.
    ``fills_view``: the photographer marked the lesion as larger than the dermatoscope's view. No skin is
    then in view: the colour cast, the lesion's size and its framing are not judged (``NOT_JUDGED``, which
    says so to the reader), and the exposure check holds the view's brightest tenth (``view_brightness``) to
    its lower limit instead of the skin, without the skin type's allowance; focus, glare, clipping and the
    field of view are judged as ever.
    Raises ValueError for an unknown view; never raises for unreadable image bytes (they give
    a failing ``decode`` check).
    """
    settings = settings or QualitySettings()
    rules = settings.rules(view)
    try:
        patch = settings.grey_patch if view == "dermoscopic" else None
        sc = scene(jpeg, settings, rules, text="focus" in rules.checks, patch=patch)
    except DecodeError as exc:
        if exc.size is not None:
            w, h = exc.size
            return Quality(ok=False, checks={"decode": check(None, False, "too_small", w=str(w), h=str(h))})
        key = "truncated" if "truncated" in str(exc) else "decode"
        return Quality(ok=False, checks={"decode": check(None, False, key)})
    enabled = set(rules.checks)
    fns = dict(_CHECKS, exposure=functools.partial(_exposure, skin_type=skin_type, fills_view=fills_view))
    if fills_view:
        fns.update(colour=_colour_without_skin, lesion=_not_judged("lesion"), framing=_not_judged("framing"))
    checks = {name: fn(sc, rules, settings) for name, fn in fns.items() if name in enabled}
    return Quality(ok=all(c.ok for c in checks.values()), checks=checks)


def _fov(sc: Scene, rules: ViewRules, settings: QualitySettings) -> QualityCheck:
    v = fov_coverage(sc.fov)
    return at_least(v, "fov", rules.fov_min)


def _focus(sc: Scene, rules: ViewRules, settings: QualitySettings) -> QualityCheck:
    # sharpness as a fraction of this kiosk's normal: 1 = as sharp as its usual stills, 0 = no fine detail. A ratio
    # under 1 (less fine detail than the noise floor leaves: a featureless thumbnail) is no fine detail, so 0, not a
    # negative share ("sharpness -18 % of this kiosk's normal" read as nonsense; same verdict, as 0 is under any limit)
    ref = settings.reference
    r = focus_value(sc, ref.focus_measure)
    v = max(0.0, (r - 1.0) / (ref.normal_focus(sc.work.full_size) - 1.0))
    limit = ref.focus_limit(rules.focus_min)  # raised on a kiosk whose stills hold their sharpness close
    return at_least(v, "focus", limit)


def _shake(sc: Scene, rules: ViewRules, settings: QualitySettings) -> QualityCheck:
    v = shake_share(sc)
    if v is None:
        return not_judged("shake" if not camera_sized(sc.work.full_size) else "still")
    return at_least(v, "shake", rules.shake_min)


def _exposure(sc: Scene, rules: ViewRules, settings: QualitySettings, skin_type: str | None = None,
              fills_view: bool = False) -> QualityCheck:
    if sc.patch is not None and settings.reference.patch_level is not None:
        return _patch_exposure(sc, rules, settings)
    if fills_view:  # no skin in view: its brightest tenth is held to the lower limit, its paler parts to the upper
        v = view_brightness(sc)
        if v < rules.exposure_min:
            return check(v, False, "dark_fill", rules.exposure_min)
        paler = skin_brightness(sc)
        if paler > rules.exposure_max:
            return check(paler, False, "bright_fill", rules.exposure_max)
        return check(v, True, "dark_fill")
    v = skin_brightness(sc)
    darker = skin_type in DARKER_SKIN_TYPES
    low = exposure_floor(sc, rules, settings.reference, darker)
    if v < low:
        if skin_type and not darker and v >= exposure_floor(sc, rules, settings.reference, True):
            # as dim as darker skin would be, and as red: the recorded type may be wrong, so say what would change
            return check(v, False, "dark_type", low, skin_type=skin_type)
        return check(v, False, "dark", low)
    return at_most(v, "bright", rules.exposure_max)


def _patch_exposure(sc: Scene, rules: ViewRules, settings: QualitySettings) -> QualityCheck:
    # how much light there was, read on the grey patch: neither the patient's skin nor a lesion filling the view
    # darkens or brightens it. A fair patient's skin burnt out in red under the kiosk's normal light is the patient's,
    # not the photograph's: no exposure would fix it that the patch would pass (white burnt out: clipping's business)
    v = patch_stops(patch_level(sc.work.small, sc.patch), settings.reference.patch_level)
    most = rules.patch_exposure_stops
    if not reaches(v, -most):
        return check(v, False, "patch_dark", -most)
    return at_most(v, "patch_bright", most)


def _clipping(sc: Scene, rules: ViewRules, settings: QualitySettings) -> QualityCheck:
    # over the lesion and its surroundings (the field of view without a lesion), as glare: a
    # burnt-out patch of pale skin at the rim of the view hides nothing the dermatologist reads
    region = cv2.bitwise_and(around_lesion(sc), sc.fov.inner) if sc.present else sc.fov.inner
    n = max(cv2.countNonZero(region), 1)
    white = cv2.countNonZero(cv2.bitwise_and(cv2.inRange(sc.work.small, (250, 250, 250), (255, 255, 255)),
                                             region)) / n
    black = cv2.countNonZero(cv2.bitwise_and(cv2.inRange(sc.gray, 0, 4), region)) / n
    v = max(white, black)
    return at_most(v, "clip_white" if white >= black else "clip_black", rules.clipping_max)


def _glare(sc: Scene, rules: ViewRules, settings: QualitySettings) -> QualityCheck:
    region = around_lesion(sc) if sc.present else None
    v = glare_fraction(sc.work.focus, sc.fov.inner, region_small=region)
    return at_most(v, "glare", rules.glare_max)


def _black_and_white(sc: Scene) -> QualityCheck | None:
    """The colour check's refusal of a photograph with no colour at all, or None. A black-and-white photograph's
    grey skin lies near enough to a wide (built-in) reference to pass as a cast that is not there, and it is
    told apart without skin in view."""
    least = colourfulness(sc.work.small, sc.fov.inner, sc.gray)
    if least is not None and least < COLOUR_LEAST:
        return check(least, False, "no_colour", COLOUR_LEAST)
    return None


def _colour(sc: Scene, rules: ViewRules, settings: QualitySettings) -> QualityCheck:
    mono = _black_and_white(sc)
    if mono is not None:
        return mono
    if sc.patch is not None:  # the light's colour read on the contact plate's grey patch, not on the patient's skin
        return _patch_colour(sc, rules, settings)
    colour = skin_colour(sc)
    if colour is None:  # every skin pixel burnt out in some channel: nothing to quote a distance for
        return check(None, False, "no_skin_colour")
    v, direction = cast_distance(colour, settings.reference)
    return at_most(v, "colour", rules.colour_max, direction=direction)


def _patch_colour(sc: Scene, rules: ViewRules, settings: QualitySettings) -> QualityCheck:
    if not patch_found(sc.work.small, sc.patch):  # skin where the patch should be: another dermatoscope, or the config
        return check(None, False, "no_patch")
    colour = patch_colour(sc.work.small, sc.patch)
    if colour is None:  # burnt out, dark or covered: the light's colour cannot be read
        return check(None, False, "no_patch_colour")
    v, direction = patch_cast(colour, settings.reference.patch_chroma)
    return at_most(v, "patch_colour", rules.patch_colour_max, direction=direction)


def _colour_without_skin(sc: Scene, rules: ViewRules, settings: QualitySettings) -> QualityCheck:
    # the lesion fills the view: no skin shows the light's colour, but a grey patch still does
    if sc.patch is not None:
        return _colour(sc, rules, settings)
    return _black_and_white(sc) or not_judged("colour")


def _not_judged(name: str):
    """A check that passes without a value, saying why (``NOT_JUDGED``)."""
    def passes(sc: Scene, rules: ViewRules, settings: QualitySettings) -> QualityCheck:
        return not_judged(name)
    return passes


def _lesion(sc: Scene, rules: ViewRules, settings: QualitySettings) -> QualityCheck:
    # Two rules, each quoting the value it tested: a lesion found that stands out from the skin by too little (its
    # colour difference reported), and one too small (its share of the view reported). None found reports 0.
    if not sc.lesion.found:
        return check(0.0, False, "no_lesion")
    if not sc.present:
        return at_least(sc.lesion.contrast, "faint", rules.lesion_min_contrast)
    v = sc.lesion.area
    return at_least(v, "small", rules.lesion_min_area)


def _framing(sc: Scene, rules: ViewRules, settings: QualitySettings) -> QualityCheck:
    if not sc.present:
        # No lesion to frame. Where the view checks the lesion, its refusal says so once; else this one does.
        if "lesion" in rules.checks:
            return not_judged("no_lesion")
        return check(None, False, "no_lesion")
    v = sc.lesion.cut
    return at_most(v, "cut", rules.framing_max, **cut_words(sc.lesion.cut_edges))


_CHECKS = {"fov": _fov, "focus": _focus, "shake": _shake, "exposure": _exposure, "clipping": _clipping, "glare": _glare,
           "colour": _colour, "lesion": _lesion, "framing": _framing}


def cli_main(paths: list[str], view: str = "dermoscopic", settings: QualitySettings | None = None,
             skin_type: str | None = None, fills_view: bool = False) -> int:
    """Assess each file and print ``{"image", "ok", "checks"}`` as one JSON line per file (``skin_type``: the
    patients' Fitzpatrick type; ``fills_view``: each lesion larger than the view; as ``assess`` takes them).

    Returns 0 when every image passed, 1 when any failed or could not be read, 2 for no paths.
    """
    if not paths:
        print("usage: python -m edge quality IMAGE...", file=sys.stderr)
        return 2
    settings = settings or QualitySettings()
    all_ok, refused = True, []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            q = Quality(ok=False, checks={"decode": QualityCheck(
                value=None, ok=False, message=f"cannot read the file: {exc.strerror or exc}")})
        else:
            q = assess(data, view, settings, skin_type, fills_view)
        all_ok &= q.ok
        if not q.ok:
            refused.append([k for k, c in q.checks.items() if not c.ok])
        out = {"image": path, "ok": q.ok,
               "checks": {k: {"value": c.value, "ok": c.ok, "message": c.message} for k, c in q.checks.items()}}
        print(json.dumps(out), flush=True)
    if len(paths) > 1:
        print(refusal_summary(refused, len(paths)), file=sys.stderr)
    return 0 if all_ok else 1


def refusal_summary(refused: list[list[str]], n: int) -> str:
    """One line for people, after the JSON lines: how many of ``n`` images were refused, and how many failed each
    check (``refused``: the failing checks of each refused image; an image can fail several)."""
    counts: dict[str, int] = {}
    for checks in refused:
        for name in checks:
            counts[name] = counts.get(name, 0) + 1
    by = ", ".join(f"{name} {k}" for name, k in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"refused {len(refused)} of {n} ({100 * len(refused) / n:.1f} %)" + (f": {by}" if by else "")
