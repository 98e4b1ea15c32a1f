"""A black-and-white photograph has no colour to read: the colour check refuses it by name.

Before this rule a greyscale JPEG passed the whole gate on an uncalibrated kiosk: its grey skin lies
within the built-in reference's spread (a distance of 1.4 against the limit 3.5). Generated stills only.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.__main__ import main as edge_main
from edge.camera import synth
from edge.quality import MESSAGES, QualitySettings, assess
from edge.quality.measures import COLOUR_LEAST, colourfulness
from tests.test_quality import calibrated, good, jpeg
from tests.test_quality_calibrate import config, stills  # noqa: F401 (the fixture)


def grey_jpeg(img: np.ndarray, one_channel: bool) -> bytes:
    """``img`` as a camera left in black and white writes it: a one-component JPEG, or three equal channels."""
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return synth.encode_jpeg(g if one_channel else cv2.cvtColor(g, cv2.COLOR_GRAY2BGR), 92)


@pytest.mark.parametrize("one_channel", [True, False])
@pytest.mark.parametrize("settings", [QualitySettings(), calibrated()], ids=["built-in", "calibrated"])
def test_a_black_and_white_photograph_is_refused_for_colour_and_says_so(one_channel, settings):
    colour = assess(jpeg(good(0)), "dermoscopic", settings)
    assert colour.ok, {k: c for k, c in colour.checks.items() if not c.ok}
    q = assess(grey_jpeg(good(0), one_channel), "dermoscopic", settings)
    c = q.checks["colour"]
    assert not q.ok and not c.ok
    assert c.value is not None and c.value < COLOUR_LEAST
    assert c.message == MESSAGES["no_colour"].format(v=c.value, lim=COLOUR_LEAST)
    assert "set the camera to colour" in c.message
    # the other checks see the same picture: only colour fails
    assert [k for k, chk in q.checks.items() if not chk.ok] == ["colour"]


@pytest.mark.parametrize("gains", [(1.0, 1.0, 1.5), (1.5, 1.0, 1.0), (1.0, 1.5, 1.0), (0.67, 1.0, 1.0)],
                         ids=["red", "blue", "green", "yellow"])
def test_a_strong_cast_is_still_a_cast_not_a_missing_colour(gains):
    """A cast changes the channels' gains, not whether the picture has colour: it is named as a cast."""
    q = assess(jpeg(synth.degrade_cast(good(1), gains)), "dermoscopic", calibrated())
    c = q.checks["colour"]
    assert not c.ok and "cast" in c.message and "no colour" not in c.message


def test_pale_grey_skin_round_a_small_coloured_lesion_has_colour():
    """The 99th percentile, not the median: nearly grey skin (ISIC 2017's palest) round a small brown
    lesion, a few per cent of the view, still has colour to read."""
    img = cv2.cvtColor(cv2.cvtColor(good(2), cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    cv2.circle(img, (w // 2, h // 2), int(0.09 * h), (60, 90, 150), -1)  # brown, about 2 % of the frame
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    everywhere = np.full(gray.shape, 255, np.uint8)
    assert colourfulness(img, everywhere, gray) >= COLOUR_LEAST
    assert colourfulness(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), everywhere, gray) == 0
    c = assess(jpeg(img), "dermoscopic").checks["colour"]
    assert "no colour" not in c.message


def test_calibration_leaves_a_black_and_white_still_out_and_names_it(config, tmp_path, capsys):  # noqa: F811
    grey = tmp_path / "grey.jpg"
    grey.write_bytes(grey_jpeg(synth.lesion_image(1200, 900, 301), one_channel=True))
    rc = edge_main(["calibrate", "--config", str(config), *stills(tmp_path, 12), str(grey)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"left out {grey}: no colour (black and white" in out and "set the camera to colour first" in out


@pytest.mark.parametrize("stops", [-7.0, 8.0], ids=["black", "burnt-out"])
def test_a_picture_too_dark_or_burnt_out_to_tell_is_not_called_black_and_white(stops):
    """Nearly black or burnt-out white pixels show no colour whatever the camera's mode: the exposure and
    clipping checks speak for such a picture, not the colour check's first rule."""
    q = assess(jpeg(synth.degrade_exposure(good(3), stops)), "dermoscopic")
    assert not q.ok
    assert not q.checks["exposure"].ok or not q.checks["clipping"].ok
    assert "no colour" not in q.checks["colour"].message


def test_skin_burnt_out_in_every_pixel_is_named_not_given_a_cast_of_nan():
    """Where no skin pixel keeps all three channels (+5 stops), there is no colour to measure a distance for:
    the colour check says so and what to change, instead of quoting a cast of "nan"."""
    q = assess(jpeg(synth.degrade_exposure(good(3), 5.0)), "dermoscopic")
    c = q.checks["colour"]
    assert not c.ok and c.value is None
    assert c.message == MESSAGES["no_skin_colour"] and "nan" not in c.message
    assert "reduce the light or exposure" in c.message
