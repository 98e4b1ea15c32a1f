"""The contact plate's grey patch (``[quality.grey_patch]``): the colour check reads the light's colour on it, no other
check reads its pixels, and the calibration measures its normal colour. Generated frames with a drawn patch (the
hardware is faked, as the camera is)."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path

import cv2
import pytest

from edge.__main__ import main as edge_main
from edge.camera import synth
from edge.config import ConfigError, load
from edge.quality import MESSAGES, QualitySettings, assess
from edge.quality.calibrate import BEGIN, END, measure
from edge.quality.patch import locate
from edge.quality.scene import scene
from wire.kioskconfig.quality import GreyPatch, KioskReference

DEMO = Path(__file__).resolve().parents[1] / "firmware_config" / "kiosk.demo.toml"
PATCH = GreyPatch(x=0.5, y=0.9, radius=0.05)
WITH_PATCH = QualitySettings(grey_patch=PATCH)


@lru_cache(maxsize=None)
def frame(seed: int = 3, level: float = 150.0, light=(1.0, 1.0, 1.0)):
    """A generated dermoscopic frame with the patch drawn under a light of ``light`` (B, G, R gains)."""
    return synth.grey_patch(synth.lesion_image(1600, 1200, seed), PATCH.x, PATCH.y, PATCH.radius, level, light, seed)


def jpeg(img) -> bytes:
    return synth.encode_jpeg(img)


def test_a_cast_is_read_on_the_patch_and_a_patients_skin_colour_is_not_a_cast():
    q = assess(jpeg(frame()), "dermoscopic", WITH_PATCH)
    assert q.ok, {k: c.message for k, c in q.checks.items() if not c.ok}
    assert q.checks["colour"].value < 0.03
    # darker skin moves the skin's colour along the pigment's direction, the light's colour not at all
    darker = synth.grey_patch(synth.darker_skin(synth.lesion_image(1600, 1200, 3), 0.8), PATCH.x, PATCH.y,
                              PATCH.radius, 150.0, (1.0, 1.0, 1.0), 3)
    assert assess(jpeg(darker), "dermoscopic", WITH_PATCH).checks["colour"].value < 0.03
    # a moderate cast (28 % more blue, the seed tables' moderate grade) moves the patch by its own size
    for gains, direction in (((1.284, 1.0, 1.0), "blue"), ((0.779, 1.0, 1.0), "yellow"), ((1.0, 1.0, 1.284), "red")):
        c = assess(jpeg(synth.degrade_cast(frame(), gains)), "dermoscopic", WITH_PATCH).checks["colour"]
        assert not c.ok and c.value == pytest.approx(0.25, abs=0.03), (direction, c.value)
        assert c.message == MESSAGES["patch_colour"].format(direction=direction, v=c.value, lim=0.1), c.message
    # the same casts read on this skin alone pass the built-in reference: the patch is what tells them apart
    assert assess(jpeg(synth.degrade_cast(frame(), (1.284, 1.0, 1.0))), "dermoscopic").checks["colour"].ok


def test_the_kiosks_normal_patch_colour_is_the_reference_and_the_limit_is_configurable():
    tinted = frame(light=(1.1, 1.0, 0.92))  # a light bluer than the camera's gains expect
    assert not assess(jpeg(tinted), "dermoscopic", WITH_PATCH).checks["colour"].ok  # against neutral grey
    ref = KioskReference(patch_chroma=(math.log(0.92), math.log(1.1)))
    calibrated = WITH_PATCH.model_copy(update={"reference": ref})
    assert assess(jpeg(tinted), "dermoscopic", calibrated).checks["colour"].value < 0.03
    loose = QualitySettings(grey_patch=PATCH, dermoscopic={"patch_colour_max": 0.5})
    assert assess(jpeg(synth.degrade_cast(frame(), (1.284, 1.0, 1.0))), "dermoscopic", loose).checks["colour"].ok


def test_an_unreadable_patch_is_refused_in_words_and_a_lesion_filling_the_view_still_has_its_colour_judged():
    burnt = synth.grey_patch(synth.lesion_image(1600, 1200, 3), PATCH.x, PATCH.y, PATCH.radius, 255.0)
    c = assess(jpeg(burnt), "dermoscopic", WITH_PATCH).checks["colour"]
    assert not c.ok and c.value is None and c.message == MESSAGES["no_patch_colour"]
    # with no skin in view the skin cannot show the light's colour, but the patch does
    cast = jpeg(synth.degrade_cast(frame(), (1.284, 1.0, 1.0)))
    assert not assess(cast, "dermoscopic", WITH_PATCH, fills_view=True).checks["colour"].ok
    assert assess(cast, "dermoscopic", fills_view=True).checks["colour"].message.startswith("not judged")
    # the close-up is not taken through the dermatoscope: no patch there, the skin is read as before
    assert assess(jpeg(frame()), "close-up", WITH_PATCH).checks["colour"].value > 0.3  # a Mahalanobis distance


def test_no_other_check_reads_the_patch_and_a_lesion_under_it_is_cut():
    # the field of view the checks read (``inner``) leaves the patch out, with a margin for its printed edge
    settings = QualitySettings()
    img = frame()
    sc = scene(jpeg(img), settings, settings.dermoscopic, text=False, patch=PATCH)
    h, w = sc.fov.inner.shape
    cx, cy, r = round(PATCH.x * (w - 1)), round(PATCH.y * (h - 1)), PATCH.radius * min(h, w)
    assert sc.fov.inner[cy, cx] == 0 and sc.fov.inner[cy, round(cx + 1.2 * r)] == 0
    assert sc.fov.inner[cy, round(cx + 1.6 * r)] == 255 and not sc.skin[cy, cx]
    assert sc.fov.mask[cy, cx] == 255  # still the dermatoscope's field: its coverage is as before
    assert scene(jpeg(img), settings, settings.dermoscopic, text=False).fov.inner[cy, cx] == 255
    # a lesion that runs under the patch is hidden there: the photographer moves it away, as from the frame's edge
    under = synth.grey_patch(synth.lesion_image(1600, 1200, 5, centre=(0.5, 0.8), size=0.07), PATCH.x, PATCH.y,
                             PATCH.radius, 150.0)
    assert assess(jpeg(under), "dermoscopic").checks["framing"].ok  # read as skin without the patch's place
    c = assess(jpeg(under), "dermoscopic", WITH_PATCH).checks["framing"]
    assert not c.ok and "bottom" in c.message, c.message


def test_the_patch_says_how_much_light_there_was_so_darker_skin_is_not_a_dim_photograph():
    settings = WITH_PATCH.model_copy(update={"reference": KioskReference(patch_level=150.0)})
    q = assess(jpeg(frame()), "dermoscopic", settings)
    assert q.checks["exposure"].ok and abs(q.checks["exposure"].value) < 0.1
    # whoever reads the value beside a passing check (the centre's checks table) is told what it measures
    assert q.checks["exposure"].message == "ok (stops from the grey patch's normal brightness)"
    assert q.checks["colour"].message == "ok (the light's colour, read on the dermatoscope's grey patch)"
    # a darker patient under the same light: the skin is dim, the patch is not
    dark_skin = synth.grey_patch(synth.darker_skin(synth.lesion_image(1600, 1200, 3), 1.4), PATCH.x, PATCH.y,
                                 PATCH.radius, 150.0, (1.0, 1.0, 1.0), 3)
    assert not assess(jpeg(dark_skin), "dermoscopic").checks["exposure"].ok  # read on the skin: "too dark"
    assert assess(jpeg(dark_skin), "dermoscopic", settings).checks["exposure"].ok
    # less light, or more: the patch darkens or brightens with the skin, by the stops the camera lost or gained
    for stops, key in ((-2.0, "patch_dark"), (-1.0, "patch_dark"), (1.0, "patch_bright")):
        c = assess(jpeg(synth.degrade_exposure(frame(), stops)), "dermoscopic", settings).checks["exposure"]
        assert not c.ok and c.value == pytest.approx(stops, abs=0.15), (stops, c.value)
        lim = -0.7 if stops < 0 else 0.7
        assert c.message == MESSAGES[key].format(v=c.value, lim=lim), c.message
    assert assess(jpeg(synth.degrade_exposure(frame(), 0.4)), "dermoscopic", settings).checks["exposure"].ok
    # a lesion filling the view is dark, not the photograph
    fill = synth.grey_patch(synth.lesion_image(1600, 1200, 3, size=0.6), PATCH.x, PATCH.y, PATCH.radius, 150.0)
    assert not assess(jpeg(fill), "dermoscopic", fills_view=True).checks["exposure"].ok  # its brightest tenth: dim
    assert assess(jpeg(fill), "dermoscopic", settings, fills_view=True).checks["exposure"].ok
    # a fair patient whose skin's red burns out under the kiosk's normal light: the patient's, not the photograph's
    fair = synth.grey_patch(synth.degrade_cast(synth.lesion_image(1600, 1200, 3), (1.1, 1.2, 1.6)), PATCH.x, PATCH.y,
                            PATCH.radius, 150.0, (1.0, 1.0, 1.0), 3)
    assert assess(jpeg(fair), "dermoscopic").checks["exposure"].message.startswith("Image is too bright (skin")
    assert assess(jpeg(fair), "dermoscopic", settings).checks["exposure"].ok
    # a kiosk with a patch but not calibrated on it keeps the skin's limits
    assert not assess(jpeg(dark_skin), "dermoscopic", WITH_PATCH).checks["exposure"].ok


def uncalibrated_demo() -> str:
    """The demo kiosk's config without its calibration."""
    return re.sub(re.escape(BEGIN) + ".*?" + re.escape(END) + "\n?", "", DEMO.read_text(), flags=re.S)


@pytest.fixture
def patch_config(tmp_path) -> Path:
    """The demo kiosk's config without its calibration, for a dermatoscope with a grey patch."""
    path = tmp_path / "kiosk.toml"
    path.write_text(uncalibrated_demo() + f"\n[quality.grey_patch]\nx = {PATCH.x}\ny = {PATCH.y}\n"
                                          f"radius = {PATCH.radius}\n")
    return path


def test_calibration_measures_the_patch_and_the_kiosk_then_judges_by_it(patch_config, tmp_path, capsys):
    light = (1.05, 1.0, 0.97)
    files = []
    for i in range(13):
        p = tmp_path / f"cal-{i:02d}.jpg"
        p.write_bytes(jpeg(synth.grey_patch(synth.lesion_image(1200, 900, 300 + i), PATCH.x, PATCH.y, PATCH.radius,
                                            150.0, light, i)))
        files.append(str(p))
    covered = tmp_path / "covered.jpg"  # the patch burnt out: named and left out
    covered.write_bytes(jpeg(synth.grey_patch(synth.lesion_image(1200, 900, 340), PATCH.x, PATCH.y, PATCH.radius,
                                              255.0)))
    assert edge_main(["calibrate", "--config", str(patch_config), *files, str(covered)]) == 0
    out = capsys.readouterr().out
    assert f"left out {covered}: the grey patch cannot be read" in out
    assert "the grey patch lies at" not in out and "could not be found" not in out  # where the config says
    ref = load(patch_config, check_files=False).quality.reference
    assert ref.patch_chroma == pytest.approx((math.log(0.97), math.log(1.05)), abs=0.01)
    assert ref.patch_level == pytest.approx(150.0 * 1.05, abs=3)  # the brightest channel, blue under this light
    settings = load(patch_config, check_files=False).quality
    same_light = jpeg(synth.grey_patch(synth.lesion_image(1200, 900, 360), PATCH.x, PATCH.y, PATCH.radius, 140.0,
                                       light, 9))
    assert assess(same_light, "dermoscopic", settings).checks["colour"].ok
    assert not assess(jpeg(synth.degrade_cast(synth.grey_patch(synth.lesion_image(1200, 900, 360), PATCH.x, PATCH.y,
                                                                 PATCH.radius, 140.0, light, 9), (1.2, 1.0, 1.0))),
                      "dermoscopic", settings).checks["colour"].ok


@pytest.mark.parametrize("table, words", [("x = 1.5\ny = 0.9\nradius = 0.05", "grey_patch.x"),
                                          ("x = 0.5\ny = 0.9", "grey_patch.radius"),
                                          ("x = 0.5\ny = 0.9\nradius = 0.05\nsize = 3", "grey_patch.size")])
def test_a_wrong_patch_field_is_named(tmp_path, table, words):
    path = tmp_path / "kiosk.toml"
    path.write_text(uncalibrated_demo() + "\n[quality.grey_patch]\n" + table + "\n")
    with pytest.raises(ConfigError, match=re.escape(words)):
        load(path, check_files=False)


def test_a_missing_patch_is_named_as_such_not_as_a_cast():
    bare = jpeg(synth.lesion_image(1600, 1200, 3))  # another dermatoscope, or a configuration copied to the wrong kiosk
    c = assess(bare, "dermoscopic", WITH_PATCH).checks["colour"]
    assert not c.ok and c.value is None and c.message == MESSAGES["no_patch"]
    for gains in ((1.5, 1.0, 1.0), (0.67, 1.0, 1.0), (1.0, 1.33, 1.0)):  # a strong cast moves the patch and the skin alike
        c = assess(jpeg(synth.degrade_cast(frame(), gains)), "dermoscopic", WITH_PATCH).checks["colour"]
        assert c.message.startswith("Colours look wrong"), c.message
    for level in (60.0, 200.0):  # darker or paler than the skin, the patch is there
        assert assess(jpeg(frame(level=level)), "dermoscopic", WITH_PATCH).checks["colour"].ok, level
    assert measure(bare, WITH_PATCH).startswith("no grey patch where [quality.grey_patch] says")  # not calibrated on


def test_the_calibration_says_where_the_patch_really_lies(patch_config, tmp_path, capsys):
    # the camera sits a little to one side on this kiosk: the patch is 1.5 % of the width right of the plate's spec
    files = []
    for i in range(13):
        p = tmp_path / f"cal-{i:02d}.jpg"
        p.write_bytes(jpeg(synth.grey_patch(synth.lesion_image(1200, 900, 400 + i), PATCH.x + 0.015, PATCH.y,
                                            PATCH.radius, 150.0, (1.0, 1.0, 1.0), i)))
        files.append(str(p))
    assert edge_main(["calibrate", "--config", str(patch_config), "--dry-run", *files]) == 0
    out = capsys.readouterr().out
    m = re.search(r"the grey patch lies at x = ([0-9.]+), y = ([0-9.]+), radius = ([0-9.]+), not where", out)
    assert m, out
    assert float(m.group(1)) == pytest.approx(PATCH.x + 0.015, abs=0.004)
    assert float(m.group(2)) == pytest.approx(PATCH.y, abs=0.004)
    assert float(m.group(3)) == pytest.approx(PATCH.radius, abs=0.004)
    # stills without a patch at all: each is named, and too few are left to calibrate on
    bare = []
    for i in range(13):
        p = tmp_path / f"bare-{i:02d}.jpg"
        p.write_bytes(jpeg(synth.lesion_image(1200, 900, 500 + i)))
        bare.append(str(p))
    assert edge_main(["calibrate", "--config", str(patch_config), "--dry-run", *bare]) == 1
    assert out.count("no grey patch where") == 0 and capsys.readouterr().out.count("no grey patch where") == 13


def test_locate_finds_what_stays_the_same_between_patients_and_nothing_where_nothing_does():
    def small(img):
        return cv2.resize(img, (400, 300), interpolation=cv2.INTER_AREA)
    near = GreyPatch(x=0.5, y=0.9, radius=0.05)
    true = GreyPatch(x=0.47, y=0.88, radius=0.045)
    with_it = [small(synth.grey_patch(synth.lesion_image(1200, 900, 600 + i), true.x, true.y, true.radius, 140.0,
                                      (1.0, 1.0, 1.0), i)) for i in range(12)]
    found = locate(with_it, near)
    assert found is not None and abs(found.x - true.x) < 0.005 and abs(found.y - true.y) < 0.005
    assert abs(found.radius - true.radius) < 0.005
    assert locate([small(synth.lesion_image(1200, 900, 600 + i)) for i in range(12)], near) is None
