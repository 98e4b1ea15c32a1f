"""The kiosk's reference (normal colour and sharpness), taken at installation.

    python -m edge calibrate --config /etc/dermkiosk/kiosk.toml STILL... [--note TEXT] [--dry-run]

The installer photographs normal skin through the kiosk's own dermatoscope and camera settings
(fixed colour gains and exposure, as in ``[camera]``), in focus: at least ``MIN_IMAGES`` stills of
different people and sites, lesions or plain skin. Each still is measured exactly as the gate
measures a photograph (``scene.skin_colour``: the skin's mean ln R/G, ln B/G and its lightness; the
focus check's ratio). Stills that are not fit to calibrate on (not an image, too dark or bright, no
skin to measure, no colour at all) are named and left out, and so, from the colour fit only, is a still whose colour lies
over ``OUTLIER_DISTANCE`` from all the others' (one odd still would widen the spread and let real
casts pass). The reference (colour: mean and covariance, widened by
``MIN_SD`` so that a few dozen similar stills do not make a hair trigger, and how the colour moves
with the skin's lightness; sharpness: the median focus ratio) is written into the config file as a
``[quality.reference]`` table between two marker comments, replacing the previous one;
the file is then loaded again and restored if it no longer validates. The signed config bundle
(``python -m dashboard update sign-config``) delivers it like any other setting.

``python -m edge quality --calibrate FOLDER IMAGE...`` fits the same reference on a folder of stills
(``reference_from_files``) and judges the images against it without writing anything: another clinic's
photographs scored as a kiosk calibrated on others of theirs would score them.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from wire.kioskconfig.quality import (FOCUS_MEASURE_FLAGS, THUMBNAIL_SIDE, FocusMeasure, KioskReference,
                                     QualitySettings, camera_sized)

from . import cast_distance, focus_value, shake_share  # the checks' own measures (the package does not import this module)
from .analysis import DecodeError, decode
from .brightness import exposure_floor, skin_brightness
from .measures import COLOUR_LEAST, colourfulness
from .patch import locate, patch_cast, patch_colour, patch_found, patch_level, patch_stops
from .scene import scene, skin_colour
from .words import reaches

MIN_IMAGES = 12
#: Added to each log-chromaticity axis's standard deviation (in quadrature, about 5 %): a reference
#: fitted on a few dozen stills understates the spread of the patients that follow (raised from 0.04
#: after PH2's first scored run showed it; see README, "The quality gate").
MIN_SD = 0.05
BEGIN = "# --- kiosk reference: written by `python -m edge calibrate`; do not edit by hand ---"
END = "# --- end of kiosk reference ---"


class Still(NamedTuple):
    """A calibration still as the gate measures it: the skin's colour and lightness, and the focus ratio."""

    r: float  #: mean skin ln R/G
    b: float  #: mean skin ln B/G
    focus: float  #: the focus check's ratio (``focus_value``)
    lightness: float | None = None  #: mean skin log-lightness (ln G, ``scene.skin_colour``)
    thumbnail: bool = False  #: under ``THUMBNAIL_SIDE`` pixels on its longer side: an archive's file, not a camera's
    #: the grey patch's ln R/G, ln B/G and brightness (``patch.patch_level``), on a kiosk with one (``GreyPatch``)
    patch: tuple[float, float, float] | None = None
    shake: float | None = None  #: the shake check's value (``shake_share``; None where it is not judged)


def measure(data: bytes, settings: QualitySettings) -> Still | str:
    """The still's skin colour, lightness and focus ratio, or why it cannot be used for calibration."""
    rules = settings.dermoscopic
    try:
        # the focus ratio searches for text itself: no thread left running
        sc = scene(data, settings, rules, text=False, patch=settings.grey_patch)
    except DecodeError as exc:
        if exc.size is not None:
            return f"too small or narrow to judge ({exc.size[0]} x {exc.size[1]} pixels)"
        return f"not a readable image ({exc})"
    level = skin_brightness(sc)
    if level < rules.exposure_min and level >= exposure_floor(sc, rules, settings.reference, darker_skin=True):
        # as dim as a darker volunteer's skin would be, and as red: say so, lest the installer raise the exposure
        # that pale skin needs (the still stays out: the gate holds a patient of unrecorded skin type to the limit)
        return f"skin brightness {level:.0f} under {rules.exposure_min:.0f}, as darker skin is under a light set " \
               "for paler skin (its colour says so): expected, keep the exposure; if the skin is pale, fix the " \
               "exposure first"
    if not rules.exposure_min <= level <= rules.exposure_max:
        return f"skin brightness {level:.0f} outside {rules.exposure_min:.0f}-{rules.exposure_max:.0f}: " \
               "fix the exposure first"
    least = colourfulness(sc.work.small, sc.fov.inner, sc.gray)
    if least is not None and least < COLOUR_LEAST:
        return f"no colour (black and white: {least:.0f} levels between colour channels, needs {COLOUR_LEAST}): " \
               "set the camera to colour first"
    colour = skin_colour(sc)
    if colour is None:
        return "no skin to measure"
    patch = None
    if settings.grey_patch is not None:
        if not patch_found(sc.work.small, settings.grey_patch):
            return "no grey patch where [quality.grey_patch] says: check its place, and that this dermatoscope has one"
        chroma = patch_colour(sc.work.small, settings.grey_patch)
        if chroma is None:
            return "the grey patch cannot be read (burnt out, dark or covered): check its place in " \
                   "[quality.grey_patch], the exposure and the contact plate first"
        patch = (*chroma, patch_level(sc.work.small, settings.grey_patch))
    return Still(colour[0], colour[1], focus_value(sc, FocusMeasure.today()), colour[2],
                 not camera_sized(sc.work.full_size), patch, shake_share(sc))


def patch_normal(samples: Sequence[Sequence[float | None]]) -> dict | None:
    """The grey patch's normal colour (``patch_chroma``: ln R/G, ln B/G) and brightness (``patch_level``): the medians
    over the stills that read one, or None where none does (a kiosk without a patch, or ``samples`` as bare tuples)."""
    read = np.array([s.patch for s in samples if getattr(s, "patch", None) is not None], float)
    if not len(read):
        return None
    mid = np.median(read, axis=0)
    return {"patch_chroma": (round(float(mid[0]), 5), round(float(mid[1]), 5)), "patch_level": round(float(mid[2]), 2)}


#: A still whose colour lies further than this (Mahalanobis distance, as the colour check measures)
#: from the other stills' is left out of the fit: one odd still (a sticker filling the view, a
#: mostly burnt-out frame) would widen the spread and let real casts pass.
OUTLIER_DISTANCE = 3.5
#: Below this spread of the stills' log-lightness (about 2 %), how colour moves with lightness cannot be
#: told from them: the reference then ignores lightness.
MIN_LIGHTNESS_SD = 0.02


def _lightness(samples: Sequence[Sequence[float | None]]) -> np.ndarray | None:
    """The stills' lightness, or None where any still has none (measured before lightness was)."""
    got = [s[3] if len(s) > 3 else None for s in samples]
    return None if any(v is None for v in got) else np.asarray(got, float)


def colour_fit(x: np.ndarray, lum: np.ndarray | None) -> dict:
    """Mean colour of the stills (n x 2: ln R/G, ln B/G) and its unbiased covariance; with their lightness
    ``lum`` (spread at least ``MIN_LIGHTNESS_SD``), also the colour's least-squares slope on lightness and the
    lightness's mean and standard deviation."""
    fit = {"mu": x.mean(axis=0), "cov": np.cov(x.T), "slope": np.zeros(2), "lightness": None, "sd": 0.0}
    if lum is not None and len(x) >= 4 and lum.std() >= MIN_LIGHTNESS_SD:
        dl = lum - lum.mean()
        fit.update(slope=np.clip(dl @ (x - fit["mu"]) / (dl @ dl), -3.0, 3.0), lightness=float(lum.mean()),
                   sd=float(lum.std()))
    return fit


def colour_outliers(samples: Sequence[Sequence[float | None]]) -> list[tuple[int, float]]:
    """(index, distance) of the stills whose colour is unlike the others' (over ``OUTLIER_DISTANCE``),
    each measured against the mean, covariance and lightness slope of all the others, as the colour check
    measures a photograph (``cast_distance``)."""
    x = np.asarray([(s[0], s[1]) for s in samples], float)
    lum = _lightness(samples)
    out = []
    for i in range(len(x)):
        rest = np.delete(x, i, axis=0)
        if len(rest) < 3:
            break
        fit = colour_fit(rest, None if lum is None else np.delete(lum, i))
        cov = fit["cov"] + np.eye(2) * 1e-6
        others = KioskReference(chroma=tuple(fit["mu"]), cov=((cov[0, 0], cov[0, 1]), (cov[0, 1], cov[1, 1])),
                                images=len(rest), lightness=fit["lightness"], lightness_sd=fit["sd"],
                                slope=tuple(fit["slope"]))
        dist, _ = cast_distance(tuple(x[i]) if lum is None else (*x[i], float(lum[i])), others)
        if dist > OUTLIER_DISTANCE:
            out.append((i, dist))
    return out


def focus_spread(ratios: Sequence[float]) -> float:
    """How much the stills' sharpness varies: the standard deviation (n - 1) of ln(r - 1) over their focus ratios
    r, a ratio of no detail (r <= 1.01) counted as 1.01 (it widens the spread, which only keeps the focus limit
    where it is: ``KioskReference.focus_limit``)."""
    detail = np.log(np.maximum(np.asarray(ratios, float) - 1.0, 0.01))
    return float(np.std(detail, ddof=1)) if len(detail) > 1 else 0.0


def fit_reference(samples: Sequence[Sequence[float | None]], note: str = "") -> KioskReference:
    """Colour: mean and covariance of (ln R/G, ln B/G) without the ``colour_outliers``, MIN_SD added
    to the spread of each axis, and (where every still has its lightness) the colour's slope on the
    skin's lightness (``KioskReference.expected``); sharpness: the median focus ratio of all the stills, and how
    much it varies between them (``focus_spread``: a kiosk whose stills hold their sharpness close has its focus
    limits raised, ``KioskReference.focus_limit``).
    ``samples``: ``Still``s (or (ln R/G, ln B/G, focus) tuples, without lightness)."""
    if len(samples) < MIN_IMAGES:
        raise ValueError(f"{len(samples)} usable stills: at least {MIN_IMAGES} are needed")
    focus = float(np.median([s[2] for s in samples]))
    if focus <= 1.05:
        raise ValueError(f"the stills have almost no fine detail (median focus ratio {focus:.2f}): "
                         "check the dermatoscope's focus")
    odd = {i for i, _ in colour_outliers(samples)}
    colour = [s for i, s in enumerate(samples) if i not in odd]
    if len(colour) < MIN_IMAGES:
        raise ValueError(f"only {len(colour)} stills agree on the skin's colour: at least {MIN_IMAGES} are needed")
    fit = colour_fit(np.asarray([(s[0], s[1]) for s in colour], float), _lightness(colour))
    mu, cov = fit["mu"], fit["cov"] + np.eye(2) * MIN_SD ** 2
    r = lambda v: round(float(v), 5)  # noqa: E731
    lightness = None if fit["lightness"] is None else r(fit["lightness"])
    patch = patch_normal(samples)
    return KioskReference(chroma=(r(mu[0]), r(mu[1])), cov=((r(cov[0, 0]), r(cov[0, 1])), (r(cov[0, 1]), r(cov[1, 1]))),
                          focus=round(focus, 3), focus_thumbnail=round(focus, 3),
                          **dict.fromkeys(FOCUS_MEASURE_FLAGS, True),  # measured as the gate measures now
                          focus_spread=round(focus_spread([s[2] for s in samples]), 3),
                          images=len(samples),
                          lightness=lightness, lightness_sd=r(fit["sd"]),
                          slope=(r(fit["slope"][0]), r(fit["slope"][1])), note=note[:200],
                          **(patch or {}))


#: What each of ``FOCUS_MEASURE_FLAGS`` says, as the calibration's table comments it.
FOCUS_FLAG_NOTES = {
    "focus_noise_floor": "measured without the sensor's noise",
    "focus_field_scaled": "a small round view at its own scale",
    "focus_cored": "without the 8-bit steps of smooth skin",
    "focus_enlarged": "a file under the focus size at that size",
    "focus_even": "every pixel of the region evenly weighed",
}


def toml_block(ref: KioskReference) -> str:
    """The ``[quality.reference]`` table, between the marker comments."""
    (a, b), (_, d) = ref.cov
    note = ref.note.replace("\\", "\\\\").replace('"', '\\"')
    return (f"{BEGIN}\n[quality.reference]\n"
            f"chroma = [{ref.chroma[0]}, {ref.chroma[1]}]   # mean skin ln(R/G), ln(B/G)\n"
            f"cov = [[{a}, {b}], [{b}, {d}]]\n"
            f"focus = {ref.focus}   # median focus ratio (sharpness) of the stills\n"
            f"focus_thumbnail = {ref.focus_thumbnail}   # the same, whatever the frame's size\n"
            + "".join(f"{flag} = {'true' if getattr(ref, flag) else 'false'}   # {FOCUS_FLAG_NOTES[flag]}\n"
                      for flag in FOCUS_MEASURE_FLAGS)
            + (f"focus_spread = {ref.focus_spread}   # sd of ln(focus ratio - 1): steadier stills, a stricter focus limit\n"
               if ref.focus_spread is not None else "")
            + (f"lightness = {ref.lightness}   # mean skin log-lightness of the stills\n"
               f"lightness_sd = {ref.lightness_sd}\n"
               f"slope = [{ref.slope[0]}, {ref.slope[1]}]   # colour per unit of lightness: darker skin is redder\n"
               if ref.lightness is not None else "")
            + (f"patch_chroma = [{ref.patch_chroma[0]}, {ref.patch_chroma[1]}]   # the grey patch's ln(R/G), ln(B/G)\n"
               f"patch_level = {ref.patch_level}   # and its brightness, 0-255\n"
               if ref.patch_level is not None else "") +
            f"images = {ref.images}\n"
            f'note = "{note}"\n{END}\n')


def write_reference(config: Path, ref: KioskReference) -> None:
    """Put ``ref`` into ``config`` (replacing an earlier calibration); restore the file if it no longer loads."""
    from edge.config import ConfigError, rewrite

    original = config.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    body = pattern.sub("", original).rstrip("\n")
    try:
        rewrite(config, original, body + "\n\n" + toml_block(ref))
    except ConfigError as exc:
        raise ValueError(f"{config}: the calibrated file would not load ({exc}); left unchanged. "
                         "Remove any hand-written [quality.reference] table and run again") from None


def measure_files(paths: Sequence[str], settings: QualitySettings, say) -> tuple[list[Still], list[str]]:
    """Measure each still file (``measure``); ``say`` (e.g. ``print``) is told of each one left out and why, and of each
    still whose colour is unlike the others' (left out of the colour fit by ``fit_reference``). Returns the usable
    stills' measures and their paths, in order."""
    samples, used = [], []
    for name in paths:
        try:
            got = measure(Path(name).read_bytes(), settings)
        except OSError as exc:
            got = f"cannot read the file: {exc.strerror or exc}"
        if isinstance(got, str):
            say(f"left out {name}: {got}")
        else:
            samples.append(got)
            used.append(name)
    for i, dist in colour_outliers(samples):
        say(f"left out of the colour fit {used[i]}: its skin colour is {dist:.1f} from the other stills' "
            f"(over {OUTLIER_DISTANCE}); check it was taken with the kiosk's own light and settings")
    normal, rules = patch_normal(samples), settings.dermoscopic
    for i, still in enumerate(samples):
        if normal is None or still.patch is None:
            continue
        dist, direction = patch_cast(still.patch[:2], normal["patch_chroma"])
        stops = patch_stops(still.patch[2], normal["patch_level"])
        if dist > rules.patch_colour_max / 2 or abs(stops) > rules.patch_exposure_stops / 2:
            say(f"the grey patch of {used[i]} differs from the other stills' ({direction} {dist:.2f}, {stops:+.2f} "
                f"stops; half the limits: {rules.patch_colour_max / 2:.2f}, {rules.patch_exposure_stops / 2:.2f}): "
                "check that the light is steady and the camera's colour gains and exposure fixed")
    if settings.grey_patch is not None and len(used) >= MIN_IMAGES:
        check_patch_place(used, settings, say)
    small = sum(s.thumbnail for s in samples)
    if small:
        say(f"{small} of the {len(samples)} stills are thumbnails (under {THUMBNAIL_SIDE} pixels on the longer side): "
            "a thumbnail's sharpness is mostly its content, so the normal sharpness fitted on them is unsteady and "
            "the focus check strict; calibrate on the camera's own full-size stills")
    return samples, used


#: The grey patch found by ``patch.locate`` is taken as elsewhere than configured where its centre lies this share of its
#: radius away, or its radius differs by this share.
PLACE_OFF = 0.2


def check_patch_place(paths: Sequence[str], settings: QualitySettings, say) -> None:
    """Tell ``say`` where the stills ``paths`` show the grey patch (``patch.locate``: what stays the same from one
    patient to the next) if that is not where ``settings.grey_patch`` says, or that it could not be found."""
    near = settings.grey_patch
    smalls = []
    for name in paths:
        small = decode(Path(name).read_bytes(), settings.work_size, settings.focus_size, settings.analysis_size).small
        smalls.append(small if not smalls else cv2.resize(small, smalls[0].shape[1::-1], interpolation=cv2.INTER_AREA))
    found = locate(smalls, near)
    if found is None:
        say("the grey patch could not be found from the stills (nothing stays the same from one still to the next "
            "near where [quality.grey_patch] says): check its place and that this dermatoscope has one")
        return
    h, w = smalls[0].shape[:2]
    (cx, cy, r), (fx, fy, fr) = near.circle(w, h), found.circle(w, h)
    if np.hypot(fx - cx, fy - cy) > PLACE_OFF * r or abs(fr - r) > PLACE_OFF * r:
        say(f"the grey patch lies at x = {found.x}, y = {found.y}, radius = {found.radius}, not where "
            f"[quality.grey_patch] says (x = {near.x}, y = {near.y}, radius = {near.radius}): set those and calibrate "
            "again")


#: The files a folder given for calibration contributes (its own, not its sub-folders').
STILL_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")


def still_files(paths: Sequence[str]) -> list[str]:
    """The still files named: a file as it is, a folder as its image files (``STILL_SUFFIXES``) in name order.
    ValueError names a path that does not exist or a folder that holds no image."""
    files = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in STILL_SUFFIXES)
            if not found:
                raise ValueError(f"{name}: no image files ({', '.join(STILL_SUFFIXES)}) in this folder")
            files += found
        elif path.exists():
            files.append(name)
        else:
            raise ValueError(f"{name}: no such file or folder")
    return files


def reference_from_files(paths: Sequence[str], settings: QualitySettings, say) -> KioskReference:
    """The kiosk reference fitted on the still files ``paths`` as ``python -m edge calibrate`` fits it, without
    writing it anywhere (``python -m edge quality --calibrate``: another clinic's files scored as a kiosk
    calibrated on some of them would score them). ``say`` is told of each still left out; ValueError says why no
    reference could be fitted."""
    samples, _ = measure_files(paths, settings, say)
    return fit_reference(samples, f"{len(samples)} stills, for scoring")


def cli(config: str, images: list[str], note: str | None = None, dry_run: bool = False) -> int:
    """``python -m edge calibrate``: measure the stills, fit, write into the config; 0 done, 1 refused."""
    from edge.config import ConfigError, load

    path = Path(config)
    try:
        settings = load(path, check_files=False).quality
    except ConfigError as exc:
        print(f"configuration error: {exc}")
        return 2
    samples, used = measure_files(images, settings, print)
    note = note or f"{len(samples)} stills, {_dt.date.today().isoformat()}"
    try:
        ref = fit_reference(samples, note)
    except ValueError as exc:
        print(f"calibration refused: {exc}; take more stills of normal skin through this dermatoscope")
        return 1
    print(toml_block(ref), end="")
    limits = {view: ref.focus_limit(settings.rules(view).focus_min) for view in ("dermoscopic", "close-up", "regional")}
    print("focus limits with it: " + ", ".join(f"{view} {limit:.2f}" for view, limit in limits.items())
          + " of the normal sharpness (raised where the stills hold their sharpness closer than most kiosks')")
    limit = limits["dermoscopic"]
    for name, still in zip(used, samples):
        sharpness = (still.focus - 1.0) / (ref.focus - 1.0)
        if sharpness < limit:
            print(f"soft still {name}: sharpness {sharpness:.0%} of the stills' normal, under the limit {limit:.0%}: "
                  "the gate would refuse it; if it is out of focus, take it again and calibrate again (a soft still "
                  "lowers this kiosk's normal and keeps its focus limits low)")
    shake_min = settings.dermoscopic.shake_min
    for name, still in zip(used, samples):
        if "shake" in settings.dermoscopic.checks and still.shake is not None and not reaches(still.shake, shake_min):
            print(f"shaken still {name}: sharpness along the movement {still.shake:.0%} of that across it, under the "
                  f"limit {shake_min:.0%}: the gate would refuse it; take it again, the dermatoscope held still, and "
                  "calibrate again (a shaken still lowers this kiosk's normal sharpness)")
    if dry_run:
        return 0
    try:
        write_reference(path, ref)
    except ValueError as exc:
        print(str(exc))
        return 1
    print(f"written to {path}: sign it into a config bundle (python -m dashboard update sign-config) "
          "to deliver it to the kiosk")
    return 0
