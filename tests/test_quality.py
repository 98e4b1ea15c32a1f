"""Quality gate on generated images: good ones pass, each degradation fails the right check."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from edge.camera import synth
from edge.quality import QualitySettings, assess
from edge.quality.analysis import decode, masked_median
from edge.quality.calibrate import fit_reference, measure
from edge.quality.measures import glare_fraction
from edge.quality.scene import scene
from wire.messages import Quality

SEEDS = (0, 1, 2)


@lru_cache(maxsize=None)
def calibrated() -> QualitySettings:
    """A kiosk calibrated at installation on 14 generated good stills (seeds the tests do not use)."""
    base = QualitySettings()
    samples = [measure(synth.encode_jpeg(synth.lesion_image(1600, 1200, 200 + i)), base) for i in range(14)]
    return QualitySettings(reference=fit_reference(samples, "generated stills"))


@lru_cache(maxsize=None)
def good(seed: int, **kw) -> np.ndarray:
    return synth.lesion_image(1600, 1200, seed, **kw)


def jpeg(img: np.ndarray) -> bytes:
    return synth.encode_jpeg(img, 92)


def failed(q: Quality) -> set[str]:
    return {k for k, c in q.checks.items() if not c.ok}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("view", ["dermoscopic", "close-up", "regional"])
def test_good_image_passes_every_check(seed, view):
    q = assess(jpeg(good(seed)), view, QualitySettings())
    assert isinstance(q, Quality)
    assert q.ok, {k: c for k, c in q.checks.items() if not c.ok}
    assert all(c.message == "ok" and c.value is not None for c in q.checks.values())


def test_good_image_without_vignette_and_with_hairs_passes():
    q = assess(jpeg(synth.lesion_image(1600, 1200, 4, vignette=False, hairs=4)), "dermoscopic")
    assert q.ok, failed(q)
    assert q.checks["fov"].value == 1.0


def test_views_run_their_own_checks():
    img = jpeg(good(0))
    assert set(assess(img, "dermoscopic").checks) == {"fov", "focus", "shake", "exposure", "clipping", "glare", "colour",
                                                      "lesion", "framing"}
    assert "fov" not in assess(img, "close-up").checks
    assert set(assess(img, "regional").checks) == {"focus", "exposure", "clipping", "colour"}
    with pytest.raises(ValueError, match="unknown view"):
        assess(img, "selfie")


#: Each degradation of a good still (by seed), the checks that must refuse it, and words their message holds.
DEGRADED = [
    ("blur", lambda seed: synth.degrade_blur(good(seed), 8), {"focus"}, "blurred"),
    ("motion", lambda seed: synth.degrade_motion(good(seed), 40, 30), {"focus", "shake"}, "blurred"),
    ("motion_vertical", lambda seed: synth.degrade_motion(good(seed), 40, 90), {"focus", "shake"}, "blurred"),
    ("under", lambda seed: synth.degrade_exposure(good(seed), -2), {"exposure"}, "too dark"),
    ("glare", lambda seed: synth.degrade_glare(good(seed), 14, 20, seed=3), {"glare"}, "glare"),
    ("glare_on_lesion", lambda seed: synth.degrade_glare(good(seed), 8, 16, seed=3, region=(0.4, 0.4, 0.6, 0.6)),
     {"glare"}, "glare"),
    ("cast_blue", lambda seed: synth.degrade_cast(good(seed), (1.4, 1.0, 0.7)), {"colour"}, "cast"),
    ("cast_green", lambda seed: synth.degrade_cast(good(seed), (0.85, 1.3, 0.8)), {"colour"}, "green cast"),
    # the dermatoscope set down beside the lesion: photographed as sharp, the lesion at the view's left edge (a
    # corner of the still enlarged, ``synth.degrade_offcentre``, would be softer too, and rightly refused for it)
    ("offcentre", lambda seed: good(seed, centre=(0.1, 0.5)), {"framing"}, "lesion"),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name,fn,expect,words", DEGRADED, ids=[d[0] for d in DEGRADED])
def test_degradation_fails_the_right_check(seed, name, fn, expect, words):
    assert assess(jpeg(good(seed)), "dermoscopic", calibrated()).ok
    q = assess(jpeg(fn(seed)), "dermoscopic", calibrated())
    assert not q.ok
    bad = failed(q)
    if name == "offcentre" and "framing" not in bad:  # slid out of the view altogether: the lesion check says so
        expect = {"lesion"}
    assert expect <= bad, (name, {k: q.checks[k] for k in bad})
    # only the check in charge (and framing/lesion for off-centre) should complain
    assert bad <= expect | {"lesion"}, (name, bad)
    msg = " ".join(q.checks[c].message for c in expect)
    assert words in msg and "tap again" in msg


@pytest.mark.parametrize("seed", SEEDS)
def test_overexposure_is_caught_by_exposure_and_clipping(seed):
    assert "exposure" in failed(assess(jpeg(synth.degrade_exposure(good(seed), 2)), "dermoscopic"))
    q = assess(jpeg(synth.degrade_exposure(good(seed), 2.5)), "dermoscopic")
    assert {"exposure", "clipping"} <= failed(q)
    assert "too bright" in q.checks["exposure"].message and "burnt out white" in q.checks["clipping"].message


@pytest.mark.parametrize("seed", [0, 2])
def test_over_exposure_that_burns_out_the_skins_red_is_too_bright(seed):
    # +1.5 stops: the skin's grey level stays moderate (the grey-median rule passed it, and nothing is
    # white) while its brightest channel, red, is clipped over most of it: the skin's colour is lost.
    img = synth.degrade_exposure(good(seed), 1.5)
    settings = QualitySettings()
    sc = scene(jpeg(img), settings, settings.dermoscopic)
    assert masked_median(sc.gray, sc.skin) < 235 and masked_median(sc.work.small[..., 2], sc.skin) >= 254
    assert assess(jpeg(good(seed)), "dermoscopic").checks["exposure"].ok
    q = assess(jpeg(img), "dermoscopic")
    check = q.checks["exposure"]
    assert q.checks["clipping"].ok and not check.ok and check.value >= 254
    assert f"skin brightness {check.value:.0f} in its brightest colour, at most 253" in check.message


def test_clipping_reports_the_value_it_tests_and_names_white_or_black():
    img = good(0).copy()
    rules = QualitySettings().dermoscopic
    red = img.copy()
    red[300:900, 200:1400, 2] = 255  # the red channel saturated over ~40 %: colour lost, not burnt out
    q = assess(jpeg(red), "dermoscopic")
    assert q.checks["clipping"].ok and q.checks["clipping"].value <= rules.clipping_max
    white = img.copy()
    white[540:640, 200:1400] = 255  # a band burnt out white across the lesion: no detail left there
    q = assess(jpeg(white), "dermoscopic")
    c = q.checks["clipping"]
    assert not c.ok and 0.05 < c.value < 0.25 and rules.clipping_max <= 0.05
    assert c.message.startswith(f"Parts of the image are burnt out white ({c.value:.1%} of the lesion and its "
                                f"surroundings, at most {rules.clipping_max:.1%})")
    black = img.copy()
    black[540:640, 200:1400] = 0
    c = assess(jpeg(black), "dermoscopic").checks["clipping"]
    assert not c.ok and c.message.startswith(f"Parts of the image are black ({c.value:.1%} of the lesion and")


def test_burnt_out_skin_away_from_the_lesion_passes_and_glare_spots_are_not_burnt_out_areas():
    # A patch of pale skin burnt out at the rim of the view (as in bright PH2 frames) hides nothing ...
    img = good(0).copy()
    img[250:420, 330:520] = 255
    q = assess(jpeg(img), "dermoscopic")
    assert q.checks["clipping"].ok and q.checks["clipping"].value == 0.0
    # ... a larger one over the lesion does not pass.
    img = good(0).copy()
    img[470:790, 600:1000] = 255
    assert not assess(jpeg(img), "dermoscopic").checks["clipping"].ok
    # A few specular spots over the lesion are glare (its own check), too few to be a burnt-out area.
    q = assess(jpeg(synth.degrade_glare(good(0), 14, 20, seed=3)), "dermoscopic")
    assert not q.checks["glare"].ok and q.checks["clipping"].ok


@pytest.mark.parametrize("seed", SEEDS)
def test_reflections_away_from_the_lesion_pass(seed):
    # The same few reflections that fail over the lesion pass in a corner of the field: nothing hidden.
    q = assess(jpeg(synth.degrade_glare(good(seed), 8, 16, seed=3, region=(0.15, 0.1, 0.3, 0.25))), "dermoscopic")
    assert q.checks["glare"].ok and q.checks["glare"].value == 0.0


def test_saturated_specks_in_pale_burnt_out_skin_are_not_glare_but_reflections_are():
    """PH2's bright frames: a broad near-white hot spot of pale skin, speckled with saturated pixels, or
    one running to the rim of the view, is not glare; the same specks on darker skin, and small
    reflections, are."""
    skin = np.zeros((600, 800, 3), np.uint8)
    skin[:] = (170, 180, 215)
    fov = np.full((300, 400), 255, np.uint8)

    def specks(img, y0, y1, x0, x1):
        for y in range(y0 + 4, y1 - 4, 12):
            for x in range(x0 + 4, x1 - 4, 12):
                img[y:y + 4, x:x + 4] = 255
        return img

    broad = skin.copy()
    broad[100:400, 200:600] = 242  # 25 % of the view, near-white
    assert glare_fraction(specks(broad, 100, 400, 200, 600), fov) == 0.0
    at_rim = skin.copy()
    at_rim[250:330, 0:60] = 242  # small, but reaching the rim of the view
    assert glare_fraction(specks(at_rim, 250, 330, 0, 60), fov) == 0.0
    # the same specks on skin that is not near-white are reflections
    darker = specks(skin.copy(), 100, 400, 200, 600)
    assert glare_fraction(darker, fov) > 0.02
    # a few small reflections (a saturated disc with a bright halo) on the skin are glare
    spots = skin.copy()
    for cx in (300, 400, 500):
        synth.cv2.circle(spots, (cx, 300), 9, (245, 245, 245), -1)
        synth.cv2.circle(spots, (cx, 300), 6, (255, 255, 255), -1)
    assert glare_fraction(spots, fov) > 0.0005


def test_mild_blur_passes_and_strong_blur_scores_lower():
    values = [assess(jpeg(synth.degrade_blur(good(1), s) if s else good(1)), "dermoscopic").checks["focus"].value
              for s in (0, 1, 4, 8, 16)]
    assert values == sorted(values, reverse=True), values
    assert values[1] >= QualitySettings().dermoscopic.focus_min


def test_focus_is_scale_normalised():
    """The same scene at 12 MP and at 1600x1200 gives about the same focus value."""
    a = synth.lesion_image(4056, 3040, 7)
    b = synth.cv2.resize(a, (1600, 1200), interpolation=synth.cv2.INTER_AREA)
    fa = assess(jpeg(a), "dermoscopic").checks["focus"].value
    fb = assess(jpeg(b), "dermoscopic").checks["focus"].value
    assert abs(fa - fb) / fb < 0.15, (fa, fb)


def test_uncalibrated_kiosk_expects_a_camera_frames_sharpness_and_less_of_a_thumbnail():
    """Without a calibration a camera frame is held to the built-in camera normal, an archive thumbnail
    (under ``THUMBNAIL_SIDE`` px) to the thumbnail one; a calibrated kiosk has one normal for both."""
    from wire.kioskconfig.quality import THUMBNAIL_SIDE, KioskReference

    ref = KioskReference()
    assert ref.normal_focus((1600, 1200)) == ref.focus > ref.focus_thumbnail == ref.normal_focus((256, 256))
    assert ref.normal_focus((THUMBNAIL_SIDE, 300)) == ref.focus
    # blurred 4 px (2 px where it is measured): sharp enough by the thumbnail's normal (1.78: ratio 1.38 is
    # 0.48 of it), not for a camera's
    blurred = assess(jpeg(synth.degrade_blur(good(0), 4)), "dermoscopic").checks["focus"]
    assert not blurred.ok and "blurred" in blurred.message
    assert blurred.value * (ref.focus - 1) / (ref.focus_thumbnail - 1) >= 0.35
    # the good frame as a 320-px thumbnail passes against the thumbnail normal
    for seed in SEEDS:
        thumb = synth.cv2.resize(good(seed), (320, 240), interpolation=synth.cv2.INTER_AREA)
        assert assess(jpeg(thumb), "dermoscopic").checks["focus"].ok, seed
    cal = calibrated().reference
    assert cal.focus_thumbnail == cal.focus and cal.images == 14


def test_12mp_uses_dct_reduced_decode_and_passes():
    data = jpeg(synth.lesion_image(4056, 3040, 8))
    w = decode(data, 800, 800, 400)
    assert w.reduction == 4 and w.full_size == (4056, 3040)
    assert w.focus.shape[1] == 800 and w.small.shape[1] == 400
    assert assess(data, "dermoscopic").ok


def test_dermatoscope_pushed_to_one_side_is_refused():
    q = assess(jpeg(synth.lesion_image(1600, 1200, 1, vignette_centre=(0.8, 0.5))), "dermoscopic")
    assert "fov" in failed(q) and "press it flat" in q.checks["fov"].message
    assert q.checks["fov"].value < QualitySettings().dermoscopic.fov_min
    # the same round field, centred, passes
    assert assess(jpeg(synth.lesion_image(1600, 1200, 1)), "dermoscopic").checks["fov"].value == 1.0


def test_dermatoscope_tilted_field_cut_by_a_chord_is_refused():
    img = synth.lesion_image(1600, 1200, 1, vignette_radius=0.6)  # round field as wide as the shorter side
    assert assess(jpeg(img), "dermoscopic").checks["fov"].ok
    img[:, :520] = 3  # a dark cap over the left quarter of the field (not pressed flat on that side)
    q = assess(jpeg(img), "dermoscopic")
    assert "fov" in failed(q) and "cut off" in q.checks["fov"].message
    assert q.checks["fov"].value < QualitySettings().dermoscopic.fov_min


@pytest.mark.parametrize("radius", [0.4, 0.5, 0.6])
def test_small_round_centred_field_of_view_passes(radius):
    # BCN20000's optics: a field 0.67 to 1.0 of the shorter side wide inside a black vignette
    q = assess(jpeg(synth.lesion_image(1600, 1200, 1, vignette_radius=radius, size=0.1)), "dermoscopic")
    assert q.checks["fov"].ok and q.checks["fov"].value >= 0.99, q.checks["fov"]


def test_field_of_view_too_small_to_read_is_refused():
    q = assess(jpeg(synth.lesion_image(1600, 1200, 1, vignette_radius=0.25, size=0.08)), "dermoscopic")
    assert "fov" in failed(q)  # 500 px wide: 0.42 of the shorter side
    assert q.checks["fov"].value < 0.8
    assert f"covers only {q.checks['fov'].value:.0%} of the middle" in q.checks["fov"].message


@pytest.mark.parametrize("seed", [0, 2])
def test_red_cast_is_caught_even_where_it_saturates_the_red_channel(seed):
    # Brighter skin: a red cast saturates red over much of it, which hides how far the cast went;
    # a clipped channel counts as beyond what it reads, so the cast is still seen.
    bright = synth.degrade_exposure(good(seed), 0.6)
    settings = calibrated()
    assert assess(jpeg(bright), "dermoscopic", settings).checks["colour"].ok
    red = synth.degrade_cast(bright, (1.0, 1.0, 1.35))
    assert (red[..., 2] >= 250).mean() > 0.3
    q = assess(jpeg(red), "dermoscopic", settings)
    assert not q.checks["colour"].ok and "red cast" in q.checks["colour"].message


@pytest.mark.parametrize("gains,direction", [((0.8, 0.8, 1.3), "red"), ((1.35, 1.0, 0.75), "blue"),
                                             ((0.85, 1.3, 0.8), "green"), ((0.7, 1.1, 1.15), "yellow")])
def test_colour_cast_message_names_its_direction(gains, direction):
    q = assess(jpeg(synth.degrade_cast(good(0), gains)), "dermoscopic", calibrated())
    assert not q.checks["colour"].ok
    assert f"({direction} cast: " in q.checks["colour"].message


@pytest.mark.parametrize("data, says", [(b"", "not a readable image"), (b"not an image", "not a readable image"),
                                        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "not a readable image"),
                                        (synth.encode_jpeg(np.zeros((8, 8, 3), np.uint8)), "too small or narrow")])
def test_unreadable_bytes_give_a_decode_check_not_an_exception(data, says):
    q = assess(data, "dermoscopic")
    assert not q.ok and set(q.checks) == {"decode"}
    assert says in q.checks["decode"].message  # an 8 x 8 picture is readable, but too small to judge


def test_truncated_jpeg_is_a_decode_failure():
    data = jpeg(good(0))
    q = assess(data[: len(data) * 2 // 3], "dermoscopic")
    assert set(q.checks) == {"decode"} and "truncated" in q.checks["decode"].message
    assert assess(data + b"\x00" * 16, "dermoscopic").ok  # padding after the end marker is fine
