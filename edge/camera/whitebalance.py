"""White balance from a grey card: the first step of a kiosk's colour calibration, at installation.

    python -m edge white-balance --config /etc/dermkiosk/kiosk.toml CARD.jpg [--gains R,B] [--dry-run]
    python -m edge white-balance --config /etc/dermkiosk/kiosk.toml --patch STILL.jpg [--gains R,B] [--dry-run]

The installer presses the dermatoscope on a neutral grey card (a photographer's grey card, or any matte
mid-grey), takes a still with the kiosk's fixed camera settings, and runs this on it. A grey card should
come out grey; how far its colour is from grey is the camera's white-balance error. This sets the Pi
camera's fixed ``colour_gains`` (``[camera.picamera2]``: the red and blue gains it applies with auto white
balance off) so that the card comes out grey, and writes them into the config, to be signed and delivered
like any config change. The camera's colour matrix and tone curve make one step approximate: take the
card again with the new gains and run this again until it says the card is grey (within
``GREY_WITHIN``). Then photograph skin for the quality gate's reference (``python -m edge calibrate``),
which is what the colour check compares photographs with: the gains make every kiosk's camera render
the same skin alike; the reference says what this kiosk's normal skin looks like.

The card is read over the middle of the frame (``CARD_REGION`` of each side, inside the dermatoscope's
light), in linear light (the JPEG's sRGB curve undone), without clipped pixels. A dermatoscope whose contact plate
shows a grey patch (``[quality.grey_patch]``) needs no card: with ``--patch`` any still through it is read over the
patch's middle (``PATCH_READ`` of its radius) instead, so the white balance can be checked again on any photograph.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wire.kioskconfig.quality import GreyPatch

#: The card is read over this middle share of the frame's width and height.
CARD_REGION = 0.5
#: The card is grey when each of its colour ratios (red/green, blue/green, in linear light) is within this
#: of 1 (about 2 %: under the colour check's notice, a tenth of a moderate cast).
GREY_WITHIN = 0.02
#: Refused as not a grey card (or a camera far off balance): a colour ratio beyond e^0.7 (a channel doubled).
NOT_GREY = 0.7
#: The card's green, in the JPEG's 0-255, must lie within these: too dark or clipped hides its colour.
LEVELS = (40.0, 235.0)
#: The card must be even: the spread of its green over the region, relative to its mean, under this.
UNEVEN = 0.2
#: A grey patch is read over this share of its radius (its printed edge left out).
PATCH_READ = 0.7

_TABLE = "[camera.picamera2]"


@dataclass(frozen=True)
class CardReading:
    """What the card says: its colour ratios in linear light and the gains that make it grey."""

    red_ratio: float  #: red / green of the card, linear light (1 = balanced)
    blue_ratio: float  #: blue / green
    gains: tuple[float, float]  #: the new (red, blue) colour gains

    @property
    def grey(self) -> bool:
        """Whether the card already reads grey with the gains it was taken with."""
        return max(abs(np.log(self.red_ratio)), abs(np.log(self.blue_ratio))) <= GREY_WITHIN


def srgb_to_linear(channel: np.ndarray) -> np.ndarray:
    """sRGB 0-255 (a channel, or a whole image) to linear light 0-1."""
    c = channel.astype(np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def read_card(jpeg: bytes, gains: tuple[float, float], patch: GreyPatch | None = None) -> CardReading:
    """Read a grey card's still taken with ``gains`` (red, blue), or the contact plate's grey ``patch`` in any still
    through the dermatoscope; ValueError says why it cannot be used."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("not a readable image")
    h, w = img.shape[:2]
    if patch is None:
        mh, mw = int(h * (1 - CARD_REGION) / 2), int(w * (1 - CARD_REGION) / 2)
        mid = img[mh:h - mh, mw:w - mw].reshape(-1, 3)
    else:
        cx, cy, r = patch.circle(w, h)
        region = np.zeros((h, w), np.uint8)
        cv2.circle(region, (cx, cy), max(1, round(PATCH_READ * r)), 255, -1)
        mid = img[region > 0]
    usable = np.all((mid > 4) & (mid < 250), axis=1)
    if usable.mean() < 0.6:
        where = "the middle of the picture" if patch is None else "the grey patch"
        raise ValueError(f"only {usable.mean():.0%} of {where} is neither black nor burnt out: "
                         "press the dermatoscope flat on the card with its light on, and fix the exposure")
    b, g, r = (mid[usable, c] for c in range(3))
    level = float(g.mean())
    if not LEVELS[0] <= level <= LEVELS[1]:
        raise ValueError(f"the card's green level is {level:.0f} (needs {LEVELS[0]:.0f}-{LEVELS[1]:.0f}): "
                         f"{'too dark: check the light' if level < LEVELS[0] else 'too bright: reduce the exposure'}")
    if g.std() / level > UNEVEN:
        raise ValueError(f"the middle of the picture is uneven ({g.std() / level:.0%} spread): photograph a plain, "
                         "matte grey card filling the view")
    rl, gl, bl = (float(srgb_to_linear(c).mean()) for c in (r, g, b))
    red_ratio, blue_ratio = rl / gl, bl / gl
    if max(abs(np.log(red_ratio)), abs(np.log(blue_ratio))) > NOT_GREY:
        raise ValueError(f"the card is far from grey (red/green {red_ratio:.2f}, blue/green {blue_ratio:.2f}): "
                         "use a neutral grey card, and check the gains the still was taken with")
    return CardReading(red_ratio, blue_ratio, (round(gains[0] / red_ratio, 3), round(gains[1] / blue_ratio, 3)))


def set_gains(config: Path, gains: tuple[float, float], note: str) -> None:
    """Write ``colour_gains`` into the config's ``[camera.picamera2]`` table (replacing the line there, or adding
    it under the header); the file is loaded again and restored if it no longer validates. ValueError when the
    file has no such table or would not load."""
    from edge.config import ConfigError, rewrite

    original = config.read_text()
    lines = original.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == _TABLE)
    except StopIteration:
        raise ValueError(f"{config} has no {_TABLE} table: the grey card sets the Pi camera's colour gains (a USB "
                         "dermatoscope's white balance is set with its own tool)") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    entry = f"colour_gains = [{gains[0]}, {gains[1]}]   # red, blue: from a grey card ({note})\n"
    at = next((i for i in range(start + 1, end) if re.match(r"\s*colour_gains\s*=", lines[i])), None)
    if at is None:
        lines.insert(start + 1, entry)
    else:
        lines[at] = entry
    try:
        rewrite(config, original, "".join(lines))
    except ConfigError as exc:
        raise ValueError(f"{config}: the file would not load with the new gains ({exc}); left unchanged") from None


def cli(config: str, card: str, gains: str | None = None, dry_run: bool = False, patch: bool = False) -> int:
    """``python -m edge white-balance``: read the card (``patch``: the config's grey patch in the still), say how far
    from grey it is, write the new gains."""
    from edge.config import ConfigError, load

    path = Path(config)
    try:
        settings = load(path, check_files=False)
    except ConfigError as exc:
        print(f"configuration error: {exc}")
        return 2
    if gains:
        try:
            taken = tuple(float(g) for g in gains.split(","))
            if len(taken) != 2 or not all(0 < g <= 32 for g in taken):
                raise ValueError
        except ValueError:
            print(f"--gains {gains!r}: give the red and blue gains the card was taken with, e.g. --gains 1.9,1.6")
            return 2
    elif settings.camera.picamera2.colour_gains is not None:
        taken = settings.camera.picamera2.colour_gains
    else:
        print(f"{path} has no fixed colour_gains, so the card's white balance is unknown: set colour_gains in "
              f"{_TABLE} (e.g. [1.9, 1.6]), take the card again with them, or give them with --gains R,B")
        return 2
    plate = settings.quality.grey_patch
    if patch and plate is None:
        print(f"--patch: {path} has no [quality.grey_patch] table saying where the dermatoscope's grey patch is")
        return 2
    try:
        reading = read_card(Path(card).read_bytes(), taken, plate if patch else None)
    except OSError as exc:
        print(f"cannot read {card}: {exc.strerror or exc}")
        return 1
    except ValueError as exc:
        print(f"white balance refused: {card}: {exc}")
        return 1
    print(f"{card}: red/green {reading.red_ratio:.3f}, blue/green {reading.blue_ratio:.3f} in linear light with "
          f"gains {list(taken)}")
    if reading.grey:
        print(f"the card is grey (within {GREY_WITHIN:.0%}): white balance done; colour_gains stay {list(taken)}")
        return 0
    print(f"colour_gains = [{reading.gains[0]}, {reading.gains[1]}]")
    if dry_run:
        return 0
    try:
        set_gains(path, reading.gains, _dt.date.today().isoformat())
    except ValueError as exc:
        print(str(exc))
        return 1
    print(f"written to {path}: take the card again with these gains and run this again until the card is grey; "
          "then photograph skin for `python -m edge calibrate`")
    return 0
