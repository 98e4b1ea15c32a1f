"""A shaken photograph is refused however sharp the optics (the ``shake`` check).

The focus check holds the fine detail in the worst direction to the kiosk's normal. Optics sharper than that normal
(PH2's dermatoscope against the built-in camera normal, on an uncalibrated kiosk) keep enough of it under a strong
shake to pass: PH2's files shaken 16 px at their own size were caught 91 %. A straight shake blurs along its own
direction only, and the other keeps the optics' own sharpness, so the share of detail left along the worst direction
against the best (``measures.focus_ratios``) tells a shake from sharp optics without any normal. Every camera-sized
original of PH2 and HAM10000 with masks reads 0.42 or more; defocus lowers both directions alike.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.__main__ import main as edge_main
from edge.camera import synth
from edge.quality import QualitySettings, assess, focus_values
from edge.quality.calibrate import BEGIN, END
from edge.quality.measures import focus_ratios
from edge.quality.scene import scene
from wire.kioskconfig.quality import CHECKS, FOCUS_MEASURE_FLAGS, KioskReference, ViewRules

DEMO = Path(__file__).resolve().parents[1] / "firmware_config" / "kiosk.demo.toml"

#: A kiosk whose normal is far below its optics' sharpness, as an uncalibrated kiosk meets PH2's dermatoscope (measured
#: as a calibration of today measures: every flag of ``FOCUS_MEASURE_FLAGS`` set).
SOFT_NORMAL = QualitySettings(reference=KioskReference(focus=1.3, **dict.fromkeys(FOCUS_MEASURE_FLAGS, True)))


def judged(img, settings: QualitySettings = SOFT_NORMAL):
    """The gate's verdict on ``img`` saved as a JPEG."""
    return assess(synth.encode_jpeg(img), "dermoscopic", settings)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_shake_that_leaves_more_than_the_normal_is_refused_for_movement(seed):
    frame = synth.lesion_image(1600, 1200, seed, hairs=4)
    original = judged(frame)
    assert original.ok and original.checks["shake"].value > 0.6
    shaken = judged(synth.degrade_motion(frame, 32, 30 + 50 * seed))
    assert shaken.checks["focus"].ok  # sharper optics than the kiosk's normal: enough detail left the worst way
    assert not shaken.checks["shake"].ok and not shaken.ok
    assert shaken.checks["shake"].value < 0.3
    msg = shaken.checks["shake"].message
    assert msg.startswith("Image is blurred by movement (sharpness along the movement ") and "needs 30%" in msg
    assert "hold the dermatoscope and the patient's skin still" in msg


@pytest.mark.parametrize("seed", [0, 1])
def test_defocus_blurs_every_way_alike_and_is_the_focus_checks_alone(seed):
    frame = synth.lesion_image(1600, 1200, seed, hairs=4)
    for sigma in (2.0, 4.0, 8.0):
        q = judged(synth.degrade_blur(frame, sigma), QualitySettings())
        assert q.checks["shake"].ok, (sigma, q.checks["shake"])
    assert not judged(synth.degrade_blur(frame, 4.0), QualitySettings()).checks["focus"].ok


def test_the_shake_reads_the_focus_checks_own_measure_once():
    data = synth.encode_jpeg(synth.degrade_motion(synth.lesion_image(1600, 1200, 2, hairs=4), 16, 60))
    settings = QualitySettings()
    sc = scene(data, settings, settings.rules("dermoscopic"))
    ratios = focus_values(sc)
    assert 1.0 < ratios.worst < ratios.best and 1.0 < ratios.even_worst < ratios.even_best
    assert focus_values(sc) is focus_values(sc)  # measured once, read by both checks
    q = assess(data, "dermoscopic", settings)
    ref = settings.reference
    assert q.checks["focus"].value == pytest.approx((ratios.worst - 1) / (ref.normal_focus((1600, 1200)) - 1),
                                                    abs=1e-4)
    assert q.checks["shake"].value == pytest.approx((ratios.even_worst - 1) / (ratios.even_best - 1), abs=1e-4)


def straight_hairs(seed: int, count: int, width: int) -> np.ndarray:
    """A generated frame with ``count`` straight hairs, ``width`` px wide, all within 5-15 degrees of lying across it."""
    img = synth.lesion_image(1600, 1200, seed)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        y, tilt = int(rng.uniform(0, 1200)), np.deg2rad(rng.uniform(5, 15) * rng.choice([-1, 1]))
        cv2.line(img, (0, y), (1599, int(y + 1600 * np.tan(tilt))), (25, 30, 40), width, cv2.LINE_AA)
    return img


def energy_weighed_share(img) -> float:
    """The shake check's share as it read before the twenty-ninth round: every pixel weighed by its energy."""
    settings = QualitySettings()
    ratios = focus_values(scene(synth.encode_jpeg(img), settings, settings.rules("dermoscopic")))
    return (ratios.worst - 1) / (ratios.best - 1)


def test_straight_hairs_lying_one_way_are_not_a_shake():
    """Their sharp edges are most of an energy-weighed sum, so its best direction was theirs: a sharp frame read as
    shaken. Weighed evenly, the skin's texture round them has its say."""
    frame = straight_hairs(2, 6, 3)
    assert energy_weighed_share(frame) < 0.3  # the trap the even weighing takes the check out of
    q = judged(frame)
    assert q.checks["shake"].ok and q.checks["shake"].value > 0.5


def test_a_shake_along_straight_hairs_is_caught():
    """Hairs lying nearly along a shake keep their sharp edges across it, which an energy-weighed sum read as the
    worst direction's detail."""
    shaken = synth.degrade_motion(straight_hairs(3, 10, 5), 24, 0.0)
    assert energy_weighed_share(shaken) > 0.3  # the miss the even weighing closes
    q = judged(shaken)
    assert not q.checks["shake"].ok and q.checks["shake"].value < 0.25


def test_the_ratios_worst_and_best_directions():
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.standard_normal((300, 300)).astype(np.float32), (0, 0), 1.5)
    texture = (128 + 40 * noise / noise.std()).clip(0, 255).astype(np.uint8)
    roi = np.full(texture.shape, 255, np.uint8)
    worst, best, even_worst, even_best = focus_ratios(texture, roi, noise_floor=False)
    assert best / worst < 1.2 and even_best / even_worst < 1.2  # the same every way
    streaks = cv2.GaussianBlur(texture.astype(np.float32), (61, 1), sigmaX=8.0, sigmaY=0.1)  # along x only
    worst, best, even_worst, even_best = focus_ratios(streaks, roi, noise_floor=False)
    assert (worst - 1) < 0.3 * (best - 1) and (even_worst - 1) < 0.3 * (even_best - 1)


def test_an_archive_thumbnail_is_not_judged_for_shake():
    q = judged(synth.lesion_image(300, 225, 0), QualitySettings())
    assert q.checks["shake"].ok and q.checks["shake"].value is None
    assert q.checks["shake"].message.startswith("not judged: an archive's thumbnail")


def test_a_frame_without_detail_is_left_to_the_focus_check():
    q = judged(synth.degrade_blur(synth.lesion_image(1600, 1200, 0), 40.0), QualitySettings())
    assert not q.checks["focus"].ok
    assert q.checks["shake"].ok and q.checks["shake"].message.startswith("not judged: no fine detail")


def test_the_shake_check_and_its_limit_in_the_config():
    assert CHECKS.index("shake") == CHECKS.index("focus") + 1
    assert "shake" in QualitySettings().rules("dermoscopic").checks
    assert "shake" not in QualitySettings().rules("close-up").checks  # measured on dermoscopy only
    with pytest.raises(ValueError, match="shake_min"):  # in a kiosk's config: tests/test_kiosk_config.py
        ViewRules(shake_min=1.5)
    frame = synth.degrade_motion(synth.lesion_image(1600, 1200, 1, hairs=6), 5, 30)  # a little shaken: a value
    value = judged(frame).checks["shake"].value  # with room for a limit either side of it
    assert 0.1 < value < 0.85
    assert not judged(frame, QualitySettings(dermoscopic=ViewRules(shake_min=value + 0.01))).checks["shake"].ok
    assert judged(frame, QualitySettings(dermoscopic=ViewRules(shake_min=value - 1e-4))).checks["shake"].ok


def test_a_shaken_calibration_still_is_named(tmp_path, capsys):
    """Named as a soft still is, not left out: a kiosk's stills are calibrated as the installer took them."""
    config = tmp_path / "kiosk.toml"
    config.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END) + "\n?", "", DEMO.read_text(), flags=re.S))
    paths = []
    for i in range(12):
        path = tmp_path / f"cal-{i:02d}.jpg"
        path.write_bytes(synth.encode_jpeg(synth.lesion_image(1200, 900, 300 + i, hairs=3)))
        paths.append(str(path))
    shaken = tmp_path / "shaken.jpg"
    shaken.write_bytes(synth.encode_jpeg(synth.degrade_motion(synth.lesion_image(1200, 900, 320, hairs=3), 24, 20)))
    assert edge_main(["calibrate", "--config", str(config), *paths, str(shaken), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"shaken still {shaken}: sharpness along the movement " in out and "under the limit 30%" in out
    assert "take it again, the dermatoscope held still" in out
    assert not any(f"shaken still {p}" in out for p in paths)
