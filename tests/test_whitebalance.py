"""White balance from a grey card (`python -m edge white-balance`), the first step of a kiosk's colour calibration.

The camera is the only thing faked: ``card_still`` renders what a Pi camera with fixed colour gains makes of a
grey card under a dermatoscope light of a given colour (linear light times the gains, the sRGB curve, the
dermatoscope's dark rim, sensor noise, JPEG). The config is a copy of the Pi kiosk's own, read back by the
kiosk's own loader.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.__main__ import main as edge_main
from edge.camera.whitebalance import read_card
from edge.config import load

ROOT = Path(__file__).resolve().parents[1]
PI = ROOT / "firmware_config" / "kiosk.pi.toml"
DEMO = ROOT / "firmware_config" / "kiosk.demo.toml"
#: The dermatoscope's light, relative (red, green, blue): warm LEDs. Balanced gains: (1 / 0.6, 1 / 0.5).
WARM = (0.6, 1.0, 0.5)


def card_still(light=WARM, gains=(1.9, 1.6), grey=0.18, colour=(1.0, 1.0, 1.0), seed=0) -> bytes:
    """A still of a matte card (reflectance ``grey`` times ``colour``) through the dermatoscope, as a camera
    with fixed (red, blue) ``gains`` renders it under ``light``."""
    rng = np.random.default_rng(seed)
    h, w = 900, 1200
    yy, xx = np.mgrid[0:h, 0:w]
    rim = np.clip(1.6 - np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)), 0, 1)  # dark corners
    exposure = 1.5  # the fixed exposure that puts the balanced card near the middle of the range
    lin = [grey * colour[i] * light[i] * g * exposure * rim for i, g in enumerate((gains[0], 1.0, gains[1]))]
    rgb = np.stack(lin, axis=-1) * (1 + rng.normal(0, 0.01, (h, w, 1)))
    c = np.clip(rgb, 0, 1)
    srgb = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    bgr = np.ascontiguousarray((srgb[..., ::-1] * 255 + 0.5).astype(np.uint8))
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(PI.read_text())
    return path


def test_a_grey_card_sets_the_gains_that_make_it_grey(config, tmp_path, capsys):
    card = tmp_path / "card.jpg"
    card.write_bytes(card_still(gains=(1.9, 1.6)))  # taken with the config's gains: too red, too yellow
    assert edge_main(["white-balance", "--config", str(config), str(card)]) == 0
    out = capsys.readouterr().out
    assert "red/green 1.14" in out and "written to" in out, out
    gains = load(config, check_files=False).camera.picamera2.colour_gains
    assert gains == pytest.approx((1 / 0.6, 1 / 0.5), rel=0.03)
    text = config.read_text()
    assert text.count("colour_gains") == 1 and "from a grey card" in text  # replaced, not added
    # as the installer does: take the card again with the new gains and run it again, until the card is grey
    for step in range(1, 4):
        card.write_bytes(card_still(gains=load(config, check_files=False).camera.picamera2.colour_gains, seed=step))
        before = config.read_text()
        assert edge_main(["white-balance", "--config", str(config), str(card)]) == 0
        if "the card is grey" in capsys.readouterr().out:
            assert config.read_text() == before  # nothing more to change
            break
    else:
        pytest.fail("the card never came out grey")
    assert load(config, check_files=False).camera.picamera2.colour_gains == pytest.approx((1 / 0.6, 2.0), rel=0.02)


def test_a_kiosk_on_auto_white_balance_is_told_what_to_do(config, tmp_path, capsys):
    config.write_text(config.read_text().replace("colour_gains = [1.9, 1.6]", "# no fixed gains"))
    card = tmp_path / "card.jpg"
    card.write_bytes(card_still(gains=(1.0, 1.0)))
    assert edge_main(["white-balance", "--config", str(config), str(card)]) == 2
    assert "has no fixed colour_gains" in capsys.readouterr().out
    # told the gains the still was taken with, it adds the line under the table's header
    assert edge_main(["white-balance", "--config", str(config), str(card), "--gains", "1.0,1.0"]) == 0
    assert load(config, check_files=False).camera.picamera2.colour_gains == pytest.approx((1 / 0.6, 2.0), rel=0.03)


def test_what_is_not_a_grey_card_is_refused_and_nothing_is_written(config, tmp_path, capsys):
    original = config.read_text()
    cases = {
        "far from grey": card_still(colour=(1.0, 0.3, 0.25)),  # skin, a red sticker: not a card
        "too dark": card_still(grey=0.01),
        "uneven": cv2.imencode(".jpg", np.tile(np.linspace(30, 230, 1200, dtype=np.uint8)[None, :, None], (900, 1, 3)))[1]
        .tobytes(),
        "not a readable image": b"not a jpeg",
    }
    for why, data in cases.items():
        card = tmp_path / "card.jpg"
        card.write_bytes(data)
        assert edge_main(["white-balance", "--config", str(config), str(card)]) == 1, why
        out = capsys.readouterr().out
        assert "white balance refused" in out and why in out, (why, out)
    assert config.read_text() == original
    # --dry-run says the gains and changes nothing
    card.write_bytes(card_still())
    assert edge_main(["white-balance", "--config", str(config), str(card), "--dry-run"]) == 0
    assert "colour_gains = [" in capsys.readouterr().out and config.read_text() == original


def test_a_kiosk_without_a_pi_camera_table_is_told_and_left_unchanged(tmp_path, capsys):
    config = tmp_path / "kiosk.toml"
    config.write_text(DEMO.read_text())  # the demo kiosk: a replay camera
    original = config.read_text()
    card = tmp_path / "card.jpg"
    card.write_bytes(card_still(gains=(1.0, 1.0)))
    assert edge_main(["white-balance", "--config", str(config), str(card), "--gains", "1,1"]) == 1
    assert "has no [camera.picamera2] table" in capsys.readouterr().out
    assert config.read_text() == original


def test_the_card_is_read_in_linear_light():
    # a balanced camera: the card's colour ratios are 1 whatever its grey level (the sRGB curve is undone)
    for grey in (0.08, 0.18, 0.4):
        reading = read_card(card_still(gains=(1 / 0.6, 2.0), grey=grey), (1 / 0.6, 2.0))
        assert reading.grey and reading.red_ratio == pytest.approx(1.0, abs=0.02), grey


def patch_still(light=WARM, gains=(1.9, 1.6), patch=(0.5, 0.9, 0.05), seed=0) -> bytes:
    """A still of skin through a dermatoscope whose contact plate shows a matte grey patch (reflectance 0.18) at
    ``patch`` (x, y, radius as in [quality.grey_patch]), as a camera with fixed (red, blue) ``gains`` renders it."""
    rng = np.random.default_rng(seed)
    h, w = 900, 1200
    yy, xx = np.mgrid[0:h, 0:w]
    skin = np.array([0.55, 0.33, 0.26])  # linear reflectance (red, green, blue): pale skin
    refl = np.broadcast_to(skin, (h, w, 3)).copy()
    inside = np.hypot(xx - patch[0] * (w - 1), yy - patch[1] * (h - 1)) <= patch[2] * min(h, w)
    refl[inside] = 0.18
    gain = np.array([gains[0], 1.0, gains[1]]) * np.array(light) * 1.5
    rgb = np.clip(refl * gain * (1 + rng.normal(0, 0.01, (h, w, 1))), 0, 1)
    srgb = np.where(rgb <= 0.0031308, 12.92 * rgb, 1.055 * rgb ** (1 / 2.4) - 0.055)
    bgr = np.ascontiguousarray((srgb[..., ::-1] * 255 + 0.5).astype(np.uint8))
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def test_a_dermatoscope_with_a_grey_patch_needs_no_card(config, tmp_path, capsys):
    still = tmp_path / "still.jpg"
    still.write_bytes(patch_still())
    # no table saying where the patch is: named, nothing written
    assert edge_main(["white-balance", "--config", str(config), "--patch", str(still)]) == 2
    assert "has no [quality.grey_patch] table" in capsys.readouterr().out
    config.write_text(config.read_text() + "\n[quality.grey_patch]\nx = 0.5\ny = 0.9\nradius = 0.05\n")
    # read on the patch (not on the skin in the middle, as a card would be), the light's colour is found
    assert edge_main(["white-balance", "--config", str(config), "--patch", str(still)]) == 0
    out = capsys.readouterr().out
    assert "red/green 1.14" in out and "written to" in out, out
    gains = load(config, check_files=False).camera.picamera2.colour_gains
    assert gains == pytest.approx((1 / 0.6, 1 / 0.5), rel=0.03)
    # taken again with those gains, the patch is grey
    still.write_bytes(patch_still(gains=gains))
    assert edge_main(["white-balance", "--config", str(config), "--patch", str(still)]) == 0
    assert "the card is grey" in capsys.readouterr().out
