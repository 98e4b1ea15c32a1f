"""Darker skin is not under-exposure: for a patient recorded with brown to black skin, the exposure check's lower
limit follows the skin's own pigment.

With the kiosk's exposure fixed, a darker patient's skin is dimmer in every channel; it is also redder (green
and blue are absorbed more than red), which under-exposure never makes it. Generated stills
(``synth.darker_skin``), the real gate, the real calibration.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

from edge.camera import synth
from edge.quality import DARK_SKIN_LEAST, KioskReference, QualitySettings, assess
from edge.quality.calibrate import fit_reference, measure
from edge.service import KioskService
from tests.appointment_kit import PHOTOGRAPHER, PIN, appointment_config, fill_details
from tests.test_kiosk_service import MODEL_DIR
from wire.kioskconfig.quality import PIGMENT_SLOPE

PALE = [s for s in range(300, 500) if np.random.default_rng(s).integers(len(synth.SKIN_TONES)) == 0]


def still(seed: int, melanin: float = 0.0, stops: float = 0.0) -> bytes:
    """A generated still of the palest generated skin with ``melanin`` more pigment, under-exposed by ``stops``."""
    img = synth.darker_skin(synth.lesion_image(1200, 900, seed), melanin)
    return synth.encode_jpeg(synth.degrade_exposure(img, -stops) if stops else img)


@pytest.fixture(scope="module")
def kiosk() -> QualitySettings:
    """A kiosk calibrated on 16 people with pale to light skin (0 to 0.3 units of pigment)."""
    samples = [measure(still(PALE[i], (i % 4) * 0.1), QualitySettings()) for i in range(16)]
    return QualitySettings(reference=fit_reference(samples, "hub 3"))


def test_a_darker_patient_passes_where_the_same_darkness_from_the_light_is_refused(kiosk):
    limit = kiosk.dermoscopic.exposure_min
    # A patient recorded as Fitzpatrick V, with far more pigment than any still (1.2 units): their skin's red reads
    # under the flat limit ...
    darker = still(PALE[20], 1.2)
    check = assess(darker, "dermoscopic", kiosk, "V").checks["exposure"]
    assert check.value < limit, check
    # ... and is the brightness expected of skin that dark and that red: it passes, as does the whole gate.
    whole = assess(darker, "dermoscopic", kiosk, "V")
    assert check.ok and whole.ok, {k: c.message for k, c in whole.checks.items() if not c.ok}
    # Recorded as type II, or not recorded, the same photograph is held to the flat limit: the skin's colour
    # alone does not tell darker skin from a dim photograph of redder, warmly lit skin.
    for skin_type in ("II", None):
        pale = assess(darker, "dermoscopic", kiosk, skin_type).checks["exposure"]
        assert not pale.ok and f"needs at least {limit:.0f}" in pale.message, (skin_type, pale)
        # where a paler type was recorded, the refusal names the type as what may be wrong
        assert ("correct the skin type" in pale.message) == (skin_type is not None), pale
    # The same patient's photograph under-exposed by two stops is refused: the pigment explains part of the
    # dimness, not all. So is a pale patient's under-exposed photograph, whatever skin type is recorded: its
    # colour is the pale skin's (the light, not the patient), so the flat limit stands.
    both = assess(still(PALE[20], 1.2, stops=2.0), "dermoscopic", kiosk, "V").checks["exposure"]
    assert not both.ok and "too dark" in both.message, both
    for skin_type in ("II", "VI"):
        dim = assess(still(PALE[20], 0.0, stops=2.0), "dermoscopic", kiosk, skin_type).checks["exposure"]
        assert not dim.ok and f"needs at least {limit:.0f}" in dim.message, (skin_type, dim)
        assert "skin type" not in dim.message, dim  # pale skin's colour: the light, not a wrong type


def test_the_limit_goes_no_lower_than_its_least_share(kiosk):
    # Darker still than the darkest skin under this light (2.5 units): more light is needed whatever the skin.
    check = assess(still(PALE[20], 2.5), "dermoscopic", kiosk, "VI").checks["exposure"]
    least = DARK_SKIN_LEAST * kiosk.dermoscopic.exposure_min
    assert not check.ok and f"needs at least {least:.0f}" in check.message, check


def test_the_uncalibrated_kiosk_expects_darker_skin_too():
    # The built-in reference knows the clinics' mean skin: a darker patient at a kiosk never calibrated passes,
    # under-exposure does not.
    darker = still(PALE[21], 1.2)
    assert not assess(darker, "dermoscopic").checks["exposure"].ok
    assert assess(darker, "dermoscopic", skin_type="VI").checks["exposure"].ok
    assert not assess(still(PALE[21], 0.0, stops=2.0), "dermoscopic", skin_type="VI").checks["exposure"].ok


def test_the_calibration_tells_a_darker_volunteer_from_an_exposure_to_fix():
    # A darker volunteer's still is left out of the calibration, as the gate holds a patient of unrecorded skin
    # type to the flat limit, but the installer is not told to fix an exposure that pale skin needs ...
    darker = measure(still(PALE[22], 1.2), QualitySettings())
    assert isinstance(darker, str) and "as darker skin is" in darker and "keep the exposure" in darker, darker
    # ... while a pale volunteer's still under-exposed as dim is an exposure to fix.
    dim = measure(still(PALE[22], 0.0, stops=2.0), QualitySettings())
    assert isinstance(dim, str) and "fix the exposure first" in dim and "darker skin" not in dim, dim


def test_pigment_darkening_is_the_darkening_the_skin_s_redness_vouches_for():
    ref = KioskReference(chroma=(0.3, -0.1), cov=((0.01, 0.0), (0.0, 0.01)), lightness=5.0, lightness_sd=0.1,
                         slope=(-0.5, 0.1), images=30)
    redder = 0.2  # ln R/G above the stills' mean
    assert ref.pigment_darkening(0.3 + redder, 4.0) == pytest.approx(redder / -PIGMENT_SLOPE)
    assert ref.pigment_darkening(0.3 + redder, 4.9) == pytest.approx(0.1)  # no more than the skin is darker
    assert ref.pigment_darkening(0.3 + redder, 5.2) == 0.0  # paler: red skin, not darker skin
    assert ref.pigment_darkening(0.29, 4.0) == 0.0  # darker but no redder: the light, not the skin
    assert ref.model_copy(update={"lightness": None}).pigment_darkening(0.9, 4.0) == 0.0  # a calibration from before
    assert ref.pigment_darkening(0.9, None) == 0.0


@contextmanager
def desk_photographing(tmp_path, frames: list[bytes], skin_type: str):
    """An appointment desk whose replay camera (the only faked part) delivers ``frames``, signed in, the details
    filled in with ``skin_type`` and one lesion added: yields the desk."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, data in enumerate(frames):
        (folder / f"{i}.jpg").write_bytes(data)
    with KioskService(appointment_config(tmp_path, camera={"replay": {"folder": str(folder)}}),
                      with_link=False) as svc:
        svc.desk.sign_in(PHOTOGRAPHER, PIN)
        fill_details(svc.desk, fitzpatrick=skin_type, ai=False)
        svc.desk.add_lesion(PHOTOGRAPHER, site="anterior torso", laterality="left")
        yield svc.desk


@pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")
def test_the_desk_judges_a_photograph_by_the_skin_type_it_recorded(tmp_path):
    # Two photographs of darker-skinned patients, the skin type recorded as VI.
    with desk_photographing(tmp_path, [still(PALE[20], 1.2), still(PALE[21], 1.2)], "VI") as desk:
        shot = desk.capture(PHOTOGRAPHER, 1, "dermoscopic")
        assert shot.quality.checks["exposure"].ok, shot.quality.checks["exposure"]
        # The skin type corrected to II at the desk: the next photograph is held to the flat limit.
        desk.set_skin_type(PHOTOGRAPHER, "II")
        retake = desk.capture(PHOTOGRAPHER, 1, "dermoscopic").quality.checks["exposure"]
        # The photographer is told what would change the verdict: the skin type, if it is wrong, or the light.
        assert not retake.ok and retake.message.startswith("Image is too dark") and "for skin type II" in retake.message
        assert "if the skin is darker than type II, correct the skin type" in retake.message, retake
        # The correction to II judged the first photograph again too: it fails now.
        entries = lambda: [e.detail for e in desk.audit.entries(referral_id=desk.current().referral_id)  # noqa: E731
                           if e.action == "skin-type"]
        assert entries()[-1] == "II; judged again: 0 photograph(s) now pass, 1 now fail"
        # Corrected back to VI: both photographs are judged again and pass; the one chosen to send stays chosen.
        appt = desk.set_skin_type(PHOTOGRAPHER, "VI")
        shots = appt.lesions[0].shots["dermoscopic"]
        assert [s.quality.checks["exposure"].ok for s in shots] == [True, True]
        assert [s.selected for s in shots] == [True, False]
        assert entries()[-1] == "VI; judged again: 2 photograph(s) now pass, 0 now fail"
        # The same type again judges nothing again.
        desk.set_skin_type(PHOTOGRAPHER, "VI")
        assert entries()[-1] == "VI"


@pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")
def test_a_corrected_skin_type_chooses_the_photograph_that_now_passes(tmp_path):
    # First an under-exposed photograph (refused whatever the type), then a darker patient's, both under type II.
    with desk_photographing(tmp_path, [still(PALE[23], 0.0, stops=2.0), still(PALE[24], 1.2)], "II") as desk:
        first, second = (desk.capture(PHOTOGRAPHER, 1, "dermoscopic") for _ in range(2))
        assert not first.passed and not second.passed
        shots = desk.current().lesions[0].shots["dermoscopic"]
        assert [s.selected for s in shots] == [True, False]  # the first, as a capture chooses with nothing passing
        assert "L1: the dermoscopic photograph failed the quality check: retake it, or choose a reason to send it " \
               "as it is." in desk.missing()
        # The type corrected to V: the second passes now and is chosen in place of the first, which cannot be sent.
        shots = desk.set_skin_type(PHOTOGRAPHER, "V").lesions[0].shots["dermoscopic"]
        assert [s.passed for s in shots] == [False, True] and [s.selected for s in shots] == [False, True]
        assert not [m for m in desk.missing() if m.startswith("L1: the dermoscopic")], desk.missing()
