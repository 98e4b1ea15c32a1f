"""A kiosk whose normal photographs hold their sharpness close is held to a stricter focus limit.

The calibration measures how much its stills' sharpness varies (``focus_spread``); where they vary less than
the sources the gate was fitted on, a photograph as soft as the configured limit lies further from this
kiosk's normal than it would from theirs, so the limit is raised (``KioskReference.focus_limit``). Generated
stills only.
"""

from __future__ import annotations

import math
import tomllib
from functools import lru_cache

import numpy as np
import pytest

from edge.__main__ import main as edge_main
from edge.camera import synth
from edge.config import load
from edge.quality import QualitySettings, assess
from edge.quality.calibrate import fit_reference, focus_spread, measure, toml_block
from wire.kioskconfig.quality import FOCUS_RAISE_MAX, KioskReference

from tests.test_quality_calibrate import config, stills  # noqa: F401 (the fixture: a new kiosk's config)


@lru_cache(maxsize=None)
def frame(seed: int, blur: float = 0.0) -> bytes:
    """A generated dermoscopic frame, blurred by ``blur`` pixels (Gaussian sigma) where asked."""
    img = synth.lesion_image(1200, 900, 300 + seed)
    return synth.encode_jpeg(synth.degrade_blur(img, blur) if blur else img)


@lru_cache(maxsize=None)
def steady() -> KioskReference:
    """A kiosk calibrated on 16 sharp generated stills (one camera, one light: they vary little)."""
    return fit_reference([measure(frame(i), QualitySettings()) for i in range(16)], "steady")


def settings_with(ref: KioskReference) -> QualitySettings:
    return QualitySettings().model_copy(update={"reference": ref})


def test_spread_is_the_standard_deviation_of_the_stills_detail_in_log():
    ratios = [1.5, 2.0, 3.0, 5.0]
    assert focus_spread(ratios) == pytest.approx(float(np.std(np.log([0.5, 1.0, 2.0, 4.0]), ddof=1)))
    # a still with no detail at all widens the spread (counted as 1.01), it does not break the fit
    assert focus_spread([0.9, 2.0, 2.1]) == pytest.approx(float(np.std(np.log([0.01, 1.0, 1.1]), ddof=1)))
    assert focus_spread([2.0]) == 0.0


@pytest.mark.parametrize("spread, images, dermoscopic", [
    (None, 40, 0.35),   # the built-in default or a calibration from before: as configured
    (0.50, 40, 0.35),   # stills as varied as ISIC 2017's many devices: not raised
    (0.45, 40, 0.35),   # ... nor lowered for stills varying more than the sources'
    (0.35, 40, 0.42),   # PH2's one dermatoscope
    (0.35, 12, 0.38),   # the same spread from few stills is trusted less
    (0.30, 40, 0.42),   # steadier still: raised, up to 1.2 times
    (0.10, 40, 0.42),
])
def test_the_limit_rises_as_the_stills_spread_narrows(spread, images, dermoscopic):
    ref = KioskReference(focus_spread=spread, images=images)
    assert ref.focus_limit(0.35) == pytest.approx(dermoscopic)
    # every view in proportion: the regional view's laxer 0.25 by the same factor
    assert ref.focus_limit(0.25) / 0.25 == pytest.approx(ref.focus_limit(0.35) / 0.35, abs=0.04)
    assert ref.focus_limit(0.35) <= round(0.35 * FOCUS_RAISE_MAX, 2)


def test_calibration_records_the_spread_and_the_config_reads_it_back():
    ref = steady()
    ratios = [measure(frame(i), QualitySettings()).focus for i in range(16)]
    assert ref.focus_spread == pytest.approx(focus_spread(ratios), abs=1e-3)
    assert 0.0 < ref.focus_spread < 0.4  # generated stills from one "camera" vary little
    back = KioskReference(**tomllib.loads(toml_block(ref))["quality"]["reference"])
    assert back.focus_spread == ref.focus_spread and back.focus_limit(0.35) == ref.focus_limit(0.35) > 0.35
    # a table written before the spread was measured has none: its limits stay as configured
    old = toml_block(ref).replace(f"focus_spread = {ref.focus_spread}", "")
    assert KioskReference(**tomllib.loads(old)["quality"]["reference"]).focus_limit(0.35) == 0.35


def test_a_softer_frame_is_refused_on_a_steady_kiosk_and_quotes_its_limit():
    ref = steady()
    limit = ref.focus_limit(0.35)
    before = ref.model_copy(update={"focus_spread": None})  # the same kiosk calibrated before: limit 0.35
    # a frame blurred until its sharpness lies between the configured limit and the raised one
    soft = next(b for b in np.arange(2.0, 3.6, 0.1)
                if 0.35 < assess(frame(100, round(b, 1)), "dermoscopic", settings_with(before)).checks["focus"].value
                < limit - 0.01)
    old = assess(frame(100, round(soft, 1)), "dermoscopic", settings_with(before)).checks["focus"]
    new = assess(frame(100, round(soft, 1)), "dermoscopic", settings_with(ref)).checks["focus"]
    assert old.ok and not new.ok and new.value == old.value  # the same sharpness, judged against a higher limit
    assert f"needs {limit:.0%}" in new.message and f"sharpness {new.value:.0%}" in new.message
    # a sharp frame of the same kiosk passes, and so does a frame only a little soft
    assert assess(frame(100), "dermoscopic", settings_with(ref)).checks["focus"].ok
    assert assess(frame(100, 1.2), "dermoscopic", settings_with(ref)).checks["focus"].ok
    # the regional view's laxer limit is raised in proportion, and the soft frame still passes there
    regional = assess(frame(100, round(soft, 1)), "regional", settings_with(ref)).checks["focus"]
    assert regional.ok and math.isclose(ref.focus_limit(0.25) / 0.25, limit / 0.35, abs_tol=0.04)


def test_a_kiosk_whose_stills_vary_widely_keeps_the_configured_limit():
    # some of the installer's stills a little soft, some sharp: as varied as a clinic of many devices
    varied = fit_reference([measure(frame(i, blur), QualitySettings())
                            for i, blur in enumerate([0, 0, 0, 0, 0, 0, 1.8, 1.8, 2.0, 2.0, 2.2, 2.2, 0, 0])])
    assert varied.focus_spread > steady().focus_spread
    assert varied.focus_limit(0.35) == 0.35


def test_calibrate_command_says_the_limits_it_sets(config, tmp_path, capsys):  # noqa: F811
    assert edge_main(["calibrate", "--config", str(config), *stills(tmp_path, 14)]) == 0
    out = capsys.readouterr().out
    ref = load(config, check_files=False).quality.reference
    assert ref.focus_spread is not None and f"focus_spread = {ref.focus_spread}" in out
    limits = dict(part.rsplit(" ", 1) for part in out.split("focus limits with it: ")[1].split(" of the")[0].split(", "))
    assert float(limits["dermoscopic"]) == ref.focus_limit(0.35) > 0.35
    assert float(limits["regional"]) == ref.focus_limit(0.25)


def test_calibrate_command_names_a_soft_still_among_the_installers(config, tmp_path, capsys):  # noqa: F811
    paths = stills(tmp_path, 14)
    soft = tmp_path / "cal-soft.jpg"
    soft.write_bytes(frame(200, 3.0))  # out of focus: the calibrated gate would refuse it
    assert edge_main(["calibrate", "--config", str(config), *paths, str(soft), "--dry-run"]) == 0
    out = capsys.readouterr().out
    named = [line for line in out.splitlines() if line.startswith("soft still ")]
    assert len(named) == 1 and str(soft) in named[0] and "take it again" in named[0]
