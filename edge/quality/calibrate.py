"""The kiosk's reference (normal colour and sharpness), taken at installation.

    python -m edge calibrate --config /etc/dermkiosk/kiosk.toml STILL... [--note TEXT] [--dry-run]

The installer photographs normal skin through the kiosk's own dermatoscope and camera settings
(fixed colour gains and exposure, as in ``[camera]``), in focus: at least ``MIN_IMAGES`` stills of
different people and sites, lesions or plain skin. Each still is measured exactly as the gate
measures a photograph (``scene.skin_chroma``: the skin's mean ln R/G, ln B/G; the focus check's
ratio). Stills that are not fit to calibrate on (not an image, too dark or bright, no skin to
measure) are named and left out, and so, from the colour fit only, is a still whose colour lies
over ``OUTLIER_DISTANCE`` from all the others' (one odd still would widen the spread and let real
casts pass). The reference (colour: mean and covariance, widened by
``MIN_SD`` so that a few dozen similar stills do not make a hair trigger; sharpness: the median
focus ratio) is written into the config file as a ``[quality.reference]`` table between two
marker comments, replacing the previous one;
the file is then loaded again and restored if it no longer validates. The signed config bundle
(``python -m dashboard update sign-config``) delivers it like any other setting.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

import numpy as np

from wire.kioskconfig.quality import KioskReference, QualitySettings

from .analysis import DecodeError
from .scene import scene, skin_chroma

MIN_IMAGES = 12
#: Added to each log-chromaticity axis's standard deviation (in quadrature, about 5 %): a reference
#: fitted on a few dozen stills understates the spread of the patients that follow (raised from 0.04
#: after PH2's first scored run showed it; see README, "The quality gate").
MIN_SD = 0.05
BEGIN = "# --- kiosk reference: written by `python -m edge calibrate`; do not edit by hand ---"
END = "# --- end of kiosk reference ---"


def measure(data: bytes, settings: QualitySettings) -> tuple[float, float, float] | str:
    """The still's skin log-chromaticity and focus ratio, or why it cannot be used for calibration."""
    rules = settings.dermoscopic
    try:
        sc = scene(data, settings, rules)
    except DecodeError as exc:
        return f"not a readable image ({exc})"
    from . import focus_value, skin_brightness  # the checks' own measures

    level = skin_brightness(sc)
    if not rules.exposure_min <= level <= rules.exposure_max:
        return f"skin brightness {level:.0f} outside {rules.exposure_min:.0f}-{rules.exposure_max:.0f}: " \
               "fix the exposure first"
    chroma = skin_chroma(sc)
    if chroma is None:
        return "no skin to measure"
    return chroma[0], chroma[1], focus_value(sc)


#: A still whose colour lies further than this (Mahalanobis distance, as the colour check measures)
#: from the other stills' is left out of the fit: one odd still (a sticker filling the view, a
#: mostly burnt-out frame) would widen the spread and let real casts pass.
OUTLIER_DISTANCE = 3.5


def colour_outliers(samples: list[tuple[float, float, float]]) -> list[tuple[int, float]]:
    """(index, distance) of the stills whose colour is unlike the others' (over ``OUTLIER_DISTANCE``),
    each measured against the mean and covariance of all the others."""
    x = np.asarray([(r, b) for r, b, _ in samples], float)
    out = []
    for i in range(len(x)):
        rest = np.delete(x, i, axis=0)
        if len(rest) < 3:
            break
        d = x[i] - rest.mean(axis=0)
        cov = np.cov(rest.T) + np.eye(2) * 1e-6
        dist = float(np.sqrt(d @ np.linalg.solve(cov, d)))
        if dist > OUTLIER_DISTANCE:
            out.append((i, dist))
    return out


def fit_reference(samples: list[tuple[float, float, float]], note: str = "") -> KioskReference:
    """Colour: mean and covariance of (ln R/G, ln B/G) without the ``colour_outliers``, MIN_SD added
    to the spread of each axis; sharpness: the median focus ratio of all the stills."""
    if len(samples) < MIN_IMAGES:
        raise ValueError(f"{len(samples)} usable stills: at least {MIN_IMAGES} are needed")
    focus = float(np.median([f for _, _, f in samples]))
    if focus <= 1.05:
        raise ValueError(f"the stills have almost no fine detail (median focus ratio {focus:.2f}): "
                         "check the dermatoscope's focus")
    odd = {i for i, _ in colour_outliers(samples)}
    colour = [s for i, s in enumerate(samples) if i not in odd]
    if len(colour) < MIN_IMAGES:
        raise ValueError(f"only {len(colour)} stills agree on the skin's colour: at least {MIN_IMAGES} are needed")
    x = np.asarray([(r, b) for r, b, _ in colour], float)
    mu, cov = x.mean(axis=0), np.cov(x.T)
    cov = cov + np.eye(2) * MIN_SD ** 2
    r = lambda v: round(float(v), 5)  # noqa: E731
    return KioskReference(chroma=(r(mu[0]), r(mu[1])), cov=((r(cov[0, 0]), r(cov[0, 1])), (r(cov[0, 1]), r(cov[1, 1]))),
                          focus=round(focus, 3), focus_thumbnail=round(focus, 3), images=len(samples),
                          note=note[:200])


def toml_block(ref: KioskReference) -> str:
    """The ``[quality.reference]`` table, between the marker comments."""
    (a, b), (_, d) = ref.cov
    note = ref.note.replace("\\", "\\\\").replace('"', '\\"')
    return (f"{BEGIN}\n[quality.reference]\n"
            f"chroma = [{ref.chroma[0]}, {ref.chroma[1]}]   # mean skin ln(R/G), ln(B/G)\n"
            f"cov = [[{a}, {b}], [{b}, {d}]]\n"
            f"focus = {ref.focus}   # median focus ratio (sharpness) of the stills\n"
            f"focus_thumbnail = {ref.focus_thumbnail}   # the same, whatever the frame's size\n"
            f"images = {ref.images}\n"
            f'note = "{note}"\n{END}\n')


def write_reference(config: Path, ref: KioskReference) -> None:
    """Put ``ref`` into ``config`` (replacing an earlier calibration); restore the file if it no longer loads."""
    from edge.config import ConfigError, load

    original = config.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    body = pattern.sub("", original).rstrip("\n")
    config.write_text(body + "\n\n" + toml_block(ref))
    try:
        load(config, check_files=False)
    except ConfigError as exc:
        config.write_text(original)
        raise ValueError(f"{config}: the calibrated file would not load ({exc}); left unchanged. "
                         "Remove any hand-written [quality.reference] table and run again") from None


def cli(config: str, images: list[str], note: str | None = None, dry_run: bool = False) -> int:
    """``python -m edge calibrate``: measure the stills, fit, write into the config; 0 done, 1 refused."""
    from edge.config import ConfigError, load

    path = Path(config)
    try:
        settings = load(path, check_files=False).quality
    except ConfigError as exc:
        print(f"configuration error: {exc}")
        return 2
    samples, used = [], []
    for name in images:
        try:
            got = measure(Path(name).read_bytes(), settings)
        except OSError as exc:
            got = f"cannot read the file: {exc.strerror or exc}"
        if isinstance(got, str):
            print(f"left out {name}: {got}")
        else:
            samples.append(got)
            used.append(name)
    for i, dist in colour_outliers(samples):
        print(f"left out of the colour fit {used[i]}: its skin colour is {dist:.1f} from the other stills' "
              f"(over {OUTLIER_DISTANCE}); check it was taken with the kiosk's own light and settings")
    note = note or f"{len(samples)} stills, {_dt.date.today().isoformat()}"
    try:
        ref = fit_reference(samples, note)
    except ValueError as exc:
        print(f"calibration refused: {exc}; take more stills of normal skin through this dermatoscope")
        return 1
    print(toml_block(ref), end="")
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
