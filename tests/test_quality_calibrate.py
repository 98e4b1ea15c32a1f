"""The kiosk reference (normal colour and sharpness) taken at installation: `python -m edge calibrate`.

Generated stills only: the reference is fitted on good ones, written into a copy of the demo kiosk
config, read back by the kiosk's own config loader, and then decides what the gate calls a cast
or a blur on that kiosk.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from edge.__main__ import main as edge_main
from edge.camera import synth
from edge.config import load
from edge.quality import QualitySettings, assess
from edge.quality.calibrate import BEGIN, MIN_IMAGES, END, colour_outliers, fit_reference, measure, toml_block
from wire.kioskconfig.quality import FOCUS_MEASURE_FLAGS, FocusMeasure, KioskReference

DEMO = Path(__file__).resolve().parents[1] / "firmware_config" / "kiosk.demo.toml"


@lru_cache(maxsize=None)
def still(seed: int, gains: tuple[float, float, float] | None = None) -> bytes:
    img = synth.lesion_image(1200, 900, 300 + seed)
    if gains is not None:
        img = synth.degrade_cast(img, gains)
    return synth.encode_jpeg(img)


def stills(tmp_path: Path, n: int, gains=None) -> list[str]:
    paths = []
    for i in range(n):
        p = tmp_path / f"cal-{i:02d}.jpg"
        p.write_bytes(still(i, gains))
        paths.append(str(p))
    return paths


#: A kiosk's table written by ``python -m edge calibrate`` on 2026-12-04 (the demo kiosk's then): no lightness, no flag
#: of the focus measure.
OLD_TABLE = """[quality.reference]
chroma = [0.31003, -0.02161]
cov = [[0.00302, -0.00024], [-0.00024, 0.0046]]
focus = 2.12
focus_thumbnail = 2.12
images = 16
note = "demo replay camera (generated stills), 2026-12-04"
"""


@pytest.fixture
def config(tmp_path) -> Path:
    """A new kiosk's config: the demo's, without its calibration."""
    path = tmp_path / "kiosk.toml"
    text = DEMO.read_text()
    assert text.count(BEGIN) == 1  # the demo kiosk is calibrated on its replay camera's stills
    path.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END) + "\n?", "", text, flags=re.S))
    return path


def test_calibrate_writes_the_reference_the_kiosk_then_uses(config, tmp_path, capsys):
    before = load(config, check_files=False).quality.reference
    assert before.images == 0  # the built-in default
    rc = edge_main(["calibrate", "--config", str(config), *stills(tmp_path, 14), "--note", "hub 3, installation"])
    out = capsys.readouterr().out
    assert rc == 0, out
    ref = load(config, check_files=False).quality.reference
    assert ref.images == 14 and ref.note == "hub 3, installation"
    assert ref.chroma != before.chroma and ref.focus > 1.0
    # measured as the gate measures: the mean of the stills' own values (those that agree on the colour)
    got = [measure(still(i), QualitySettings()) for i in range(14)]
    odd = {i for i, _ in colour_outliers(got)}
    assert np.allclose(ref.chroma, np.mean([g[:2] for i, g in enumerate(got) if i not in odd], axis=0), atol=1e-4)
    assert ref.lightness == pytest.approx(np.mean([g.lightness for i, g in enumerate(got) if i not in odd]), abs=1e-4)
    assert ref.focus == pytest.approx(float(np.median([g[2] for g in got])), abs=1e-3)
    text = config.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert "sign-config" in out  # says how it reaches the kiosk
    # a second calibration replaces the first, it does not add a table
    assert edge_main(["calibrate", "--config", str(config), *stills(tmp_path, 12)]) == 0
    assert config.read_text().count(BEGIN) == 1
    assert load(config, check_files=False).quality.reference.images == 12


def test_calibrated_kiosk_passes_its_normal_stills_and_catches_a_moderate_cast(tmp_path):
    samples = [measure(still(i), QualitySettings()) for i in range(16)]
    settings = QualitySettings(reference=fit_reference(samples, "test"))
    for i in range(16, 20):  # stills the reference was not fitted on
        q = assess(still(i), "dermoscopic", settings)
        assert q.ok, {k: c for k, c in q.checks.items() if not c.ok}
    # a cast of about 28 % (e^0.25) towards blue: the pooled default accepts it, this kiosk does not
    cast = still(17, (float(np.exp(0.25)), 1.0, 1.0))
    assert assess(cast, "dermoscopic").checks["colour"].ok
    q = assess(cast, "dermoscopic", settings)
    assert not q.checks["colour"].ok and "blue cast" in q.checks["colour"].message


def test_unusable_stills_are_named_and_left_out_and_too_few_are_refused(config, tmp_path, capsys):
    original = config.read_text()
    good = stills(tmp_path, MIN_IMAGES - 1)
    dark = tmp_path / "dark.jpg"
    dark.write_bytes(synth.encode_jpeg(synth.degrade_exposure(synth.lesion_image(1200, 900, 3), -3)))
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a picture")
    rc = edge_main(["calibrate", "--config", str(config), *good, str(dark), str(junk), str(tmp_path / "gone.jpg")])
    out = capsys.readouterr().out
    assert rc == 1
    assert f"left out {dark}: skin brightness" in out and "fix the exposure first" in out
    assert f"left out {junk}: not a readable image" in out
    assert "gone.jpg: cannot read the file" in out
    assert f"calibration refused: {MIN_IMAGES - 1} usable stills: at least {MIN_IMAGES} are needed" in out
    assert config.read_text() == original  # nothing written


def test_dry_run_changes_nothing_and_a_clashing_table_is_refused(config, tmp_path, capsys):
    original = config.read_text()
    assert edge_main(["calibrate", "--config", str(config), "--dry-run", *stills(tmp_path, 12)]) == 0
    assert "[quality.reference]" in capsys.readouterr().out
    assert config.read_text() == original
    config.write_text(original + "\n[quality.reference]\nfocus = 2.0\n")  # hand-written, outside the markers
    clashing = config.read_text()
    assert edge_main(["calibrate", "--config", str(config), *stills(tmp_path, 12)]) == 1
    assert "left unchanged" in capsys.readouterr().out
    assert config.read_text() == clashing


def test_reference_is_validated():
    with pytest.raises(ValueError, match="positive-definite"):
        QualitySettings(reference={"cov": [[0.01, 0.02], [0.02, 0.01]]})
    with pytest.raises(ValueError):
        QualitySettings(reference={"focus": 0.9})
    with pytest.raises(ValueError, match="slope must lie within"):
        QualitySettings(reference={"lightness": 5.0, "lightness_sd": 0.1, "slope": [4.0, 0.0]})
    with pytest.raises(ValueError, match="at least"):
        fit_reference([(0.3, 0.0, 2.0)] * (MIN_IMAGES - 1))
    with pytest.raises(ValueError, match="no fine detail"):
        fit_reference([(0.3, 0.0, 1.01)] * MIN_IMAGES)


def test_an_odd_still_is_left_out_of_the_colour_fit_and_named(config, tmp_path, capsys):
    paths = stills(tmp_path, 14)
    odd = tmp_path / "odd.jpg"
    odd.write_bytes(still(20, (1.3, 1.0, 0.7)))  # taken under another light: strongly blue (not so strong as to clip blue)
    samples = [measure(Path(p).read_bytes(), QualitySettings()) for p in [*paths, str(odd)]]
    assert [i for i, _ in colour_outliers(samples)] == [14]
    with_odd, without = fit_reference(samples), fit_reference(samples[:14])
    assert with_odd.chroma == without.chroma and with_odd.cov == without.cov and with_odd.images == 15
    rc = edge_main(["calibrate", "--config", str(config), *paths, str(odd), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and f"left out of the colour fit {odd}: its skin colour is " in out, out
    # A blue cast the odd still would have hidden is still caught by the reference fitted without it.
    settings = QualitySettings(reference=with_odd)
    assert not assess(still(21, (1.35, 1.0, 0.8)), "dermoscopic", settings).checks["colour"].ok


PALE = [s for s in range(300, 500) if np.random.default_rng(s).integers(len(synth.SKIN_TONES)) == 0]


def skin(seed: int, melanin: float, gains: tuple[float, float, float] | None = None) -> bytes:
    """A generated still of the palest generated skin with ``melanin`` more pigment (and a cast of ``gains``)."""
    img = synth.darker_skin(synth.lesion_image(1200, 900, seed), melanin)
    return synth.encode_jpeg(img if gains is None else synth.degrade_cast(img, gains))


def test_a_darker_patient_is_expected_redder_and_a_cast_is_still_caught():
    # The kiosk is calibrated on 16 people with pale to light skin (0 to 0.3 units of pigment) ...
    samples = [measure(skin(PALE[i], (i % 4) * 0.1), QualitySettings()) for i in range(16)]
    ref = fit_reference(samples, "hub 3")
    assert ref.lightness is not None and ref.slope[0] < -0.2  # darker (lower lightness) is redder
    settings = QualitySettings(reference=ref)
    flat = QualitySettings(reference=ref.model_copy(update={"lightness": None, "slope": (0.0, 0.0)}))
    # ... then a patient with darker skin than any of them (0.9 units): the rule before (colour alone) took
    # their skin for a red cast; now it is the colour expected of skin that dark.
    darker = skin(PALE[20], 0.9)
    before = assess(darker, "dermoscopic", flat).checks["colour"]
    assert not before.ok and "red cast" in before.message
    now = assess(darker, "dermoscopic", settings)
    assert now.ok, {k: c.message for k, c in now.checks.items() if not c.ok}
    # Casts on skin like the stills' are caught as before: red (which pigment does not explain without the
    # darkening that goes with it), blue, green, yellow.
    for gains, word in (((1.0, 1.0, float(np.exp(0.4))), "red"), ((float(np.exp(0.25)), 1.0, 1.0), "blue"),
                        ((1.0, float(np.exp(0.177)), 1.0), "green"), ((float(np.exp(-0.25)), 1.0, 1.0), "yellow")):
        check = assess(skin(PALE[21], 0.1, gains), "dermoscopic", settings).checks["colour"]
        assert not check.ok and f"{word} cast" in check.message, (word, check.message)
    # Paler skin than the stills' is held to their mean colour, not carried along the slope (a green cast
    # brightens green as paler skin does), and so is skin within one standard deviation darker than theirs
    # (the stills' own spread of colour holds it); beyond that the slope is followed.
    assert ref.expected(ref.lightness + 0.3) == (ref.chroma, 1.0)
    assert ref.expected(ref.lightness - 0.9 * ref.lightness_sd) == (ref.chroma, 1.0)
    (r, _), grow = ref.expected(ref.lightness - 0.3)
    assert r == pytest.approx(ref.chroma[0] + (ref.lightness_sd - 0.3) * ref.slope[0]) and grow > 1.0


def test_a_calibration_from_before_lightness_judges_colour_alone_and_the_built_in_one_pools_a_slope():
    # a calibration that predates lightness (the demo kiosk's table until 2026-12-07): its own colour, no slope
    # (not the built-in one's)
    ref = KioskReference(**tomllib.loads(OLD_TABLE)["quality"]["reference"])
    assert ref.images > 0 and ref.lightness is None and ref.expected(4.0) == (ref.chroma, 1.0)
    # the built-in reference of an uncalibrated kiosk expects skin darker than most of any clinic's to be redder
    built_in = QualitySettings().reference
    assert built_in.lightness is not None and built_in.slope[0] < 0
    assert built_in.expected(built_in.lightness) == (built_in.chroma, 1.0)
    (r, _), grow = built_in.expected(built_in.lightness - 3 * built_in.lightness_sd)
    assert r == pytest.approx(built_in.chroma[0] - 2 * built_in.lightness_sd * built_in.slope[0]) and grow == 1.0


@pytest.mark.parametrize("flag", FOCUS_MEASURE_FLAGS)
def test_a_new_calibration_writes_how_its_sharpness_was_measured(flag):
    """Each change to the focus measure gives the reference a flag; a new calibration sets it, its TOML says so,
    and the table reads back with it (a table without it is a calibration from before, measured the old way)."""
    ref = fit_reference([measure(still(i), QualitySettings()) for i in range(12)], "generated stills")
    assert getattr(ref, flag) is True
    block = toml_block(ref)
    assert f"{flag} = true" in block
    assert getattr(KioskReference(**tomllib.loads(block)["quality"]["reference"]), flag) is True



def test_a_reference_says_how_it_measures_focus_and_whether_that_is_outdated():
    """``KioskReference.focus_measure`` gathers its ``FOCUS_MEASURE_FLAGS`` for the focus check; a calibration of
    today measures as ``FocusMeasure.today()``, one from before a change (a table without that flag) as that
    release did, and only such a calibration is outdated (the built-in normals are measured as they were fitted)."""
    today = fit_reference([measure(still(i), QualitySettings()) for i in range(12)], "generated stills")
    assert today.focus_measure == FocusMeasure.today() and not today.focus_outdated
    built_in = QualitySettings().reference
    assert built_in.focus_measure == FocusMeasure() and not built_in.focus_outdated
    assert FocusMeasure() == FocusMeasure.today()._replace(even=False)  # weighed by energy, as they were fitted
    block = tomllib.loads(toml_block(today))["quality"]["reference"]
    del block["focus_cored"]  # a calibration from before the 8-bit steps were cored
    old = KioskReference(**block)
    assert old.focus_measure == FocusMeasure.today()._replace(cored=False) and old.focus_outdated
