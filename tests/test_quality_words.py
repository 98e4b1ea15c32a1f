"""The quality gate's settings, its CLI, and its words: one rule per check, the value it tested quoted,
the same message at the kiosk and at the centre (split from test_quality.py)."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from edge.camera import synth
from edge.quality import MESSAGES, NOT_JUDGED, QualitySettings, assess, cli_main
from edge.quality.words import at_least, at_most, cut_words
from tests.test_quality import calibrated, good, jpeg
from wire import tomlconfig
from wire.messages import Quality


# --- settings -----------------------------------------------------------------------------------

def test_settings_view_tables_keep_their_view_defaults(tmp_path):
    path = tmp_path / "q.toml"
    path.write_text('[close-up]\nfocus_min = 0.8\n[regional]\nchecks = ["focus"]\n')
    s = tomlconfig.load(path, QualitySettings)
    assert s.close_up.focus_min == 0.8
    assert s.close_up.lesion_min_area == QualitySettings().close_up.lesion_min_area == 0.003
    assert s.regional.checks == ["focus"] and s.regional.focus_min == QualitySettings().regional.focus_min
    assert s.dermoscopic == QualitySettings().dermoscopic
    # stricter focus rule now fails a mildly blurred image in close-up only
    blurred = jpeg(synth.degrade_blur(good(0), 1.5))
    assert assess(blurred, "dermoscopic", s).checks["focus"].ok
    assert not assess(blurred, "close-up", s).checks["focus"].ok


def test_settings_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[dermoscopic]\nchecks = ["focus", "sharpness"]\n')
    with pytest.raises(tomlconfig.ConfigError, match="bad.toml: dermoscopic: .*unknown checks"):
        tomlconfig.load(bad, QualitySettings)
    bad.write_text('[dermoscopic]\nfocus_minimum = 2\n')
    with pytest.raises(tomlconfig.ConfigError, match="dermoscopic.focus_minimum: unknown field"):
        tomlconfig.load(bad, QualitySettings)
    with pytest.raises(ValidationError):
        QualitySettings(dermoscopic={"exposure_min": 200, "exposure_max": 100})
    with pytest.raises(ValidationError):
        QualitySettings(reference={"cov": [[1, 2], [2, 1]]})
    bad.write_text('[dermoscopic]\ncolour_max_chroma = 40\n')  # a rule that no longer exists is named
    with pytest.raises(tomlconfig.ConfigError, match="dermoscopic.colour_max_chroma: unknown field"):
        tomlconfig.load(bad, QualitySettings)


# --- CLI ----------------------------------------------------------------------------------------

def test_cli_prints_one_json_object_per_image(tmp_path, capsys):
    ok_path = tmp_path / "good.jpg"
    ok_path.write_bytes(jpeg(good(0)))
    blur_path = tmp_path / "blurred.jpg"
    blur_path.write_bytes(jpeg(synth.degrade_blur(good(0), 10)))
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\x00garbage")
    missing = tmp_path / "missing.jpg"
    rc = cli_main([str(ok_path), str(blur_path), str(junk), str(missing)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 1 and len(lines) == 4
    objs = [json.loads(line) for line in lines]
    for obj, path in zip(objs, [ok_path, blur_path, junk, missing]):
        assert list(obj) == ["image", "ok", "checks"] and obj["image"] == str(path)
        for c in obj["checks"].values():
            assert list(c) == ["value", "ok", "message"]
    assert objs[0]["ok"] is True and objs[0]["checks"]["focus"]["ok"] is True
    assert objs[1]["ok"] is False and objs[1]["checks"]["focus"]["ok"] is False
    assert "blurred" in objs[1]["checks"]["focus"]["message"]
    assert objs[2] == {"image": str(junk), "ok": False, "checks": {"decode": {
        "value": None, "ok": False, "message": "The file is not a readable image: take the picture again"}}}
    assert objs[3]["checks"]["decode"]["ok"] is False and "cannot read" in objs[3]["checks"]["decode"]["message"]
    assert cli_main([str(ok_path)]) == 0
    assert cli_main([]) == 2


# --- one rule per check; the same words at the kiosk and at the centre ----------------------------

FIGURE = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)(%?)")  # the first figure in a message is the value


def _degraded_set():
    base = good(0)
    return [synth.degrade_blur(base, 8), synth.degrade_motion(base, 40, 10), synth.degrade_exposure(base, -2.5),
            synth.degrade_exposure(base, 2.5), synth.degrade_glare(base, 12, 22, seed=5),
            synth.degrade_cast(base, (0.8, 1.2, 0.8)), synth.lesion_image(1600, 1200, 2, vignette=False,
                                                                        centre=(0.9, 0.5), size=0.2),
            synth.lesion_image(1600, 1200, 1, size=0.03), synth.lesion_image(1600, 1200, 1, vignette_radius=0.25)]


def test_every_refusal_quotes_the_value_its_rule_tested_and_says_what_to_change():
    seen = set()
    for img in _degraded_set():
        q = assess(jpeg(img), "dermoscopic", calibrated())
        for name, c in q.checks.items():
            if c.ok or c.value is None or name == "lesion" and c.value == 0:
                continue
            m = FIGURE.search(c.message)
            assert m, c.message
            quoted = float(m.group(1)) / (100 if m.group(2) else 1)
            decimals = len(m.group(1).split(".")[1]) if "." in m.group(1) else 0
            assert abs(quoted - c.value) <= 0.51 * 10 ** -decimals / (100 if m.group(2) else 1), (name, c)
            assert "tap again" in c.message
            seen.add(name)
    assert seen >= {"fov", "focus", "shake", "exposure", "clipping", "glare", "colour", "lesion", "framing"}, seen


#: The refusals whose rule is "at most the limit", and those whose rule is "at least"; with a limit of each's kind.
AT_MOST = {"bright": 253, "bright_fill": 253, "clip_white": 0.05, "clip_black": 0.05, "glare": 0.02, "colour": 3.5,
           "cut": 0.5, "patch_colour": 0.1, "patch_bright": 0.7}
AT_LEAST = {"fov": 0.9, "focus": 0.35, "shake": 0.3, "dark": 130, "dark_type": 112.37, "dark_fill": 130, "no_colour": 6,
            "small": 0.004, "faint": 6.0, "patch_dark": -0.7}
LIMIT = re.compile(r"(?:at most|needs at least|needs) (-?[0-9]+(?:\.[0-9]+)?)(%?)")


#: The cut's words for a lesion cut by the right edge (the framing check passes them).
RIGHT = cut_words(("right",))


def _quoted(message: str, pattern: re.Pattern) -> float:
    m = pattern.search(message)
    assert m, message
    return float(m.group(1)) / (100 if m.group(2) else 1)


@pytest.mark.parametrize("beyond", [1e-4, 3e-4, 4.9e-3, 0.03])
def test_a_refusal_never_quotes_its_figure_as_its_limit(beyond):
    # a photograph refused just past a limit (a cast of 3.5035 against 3.5) said "3.5 ..., at most 3.5"
    assert set(AT_MOST) | set(AT_LEAST) == {k for k, text in MESSAGES.items() if "{lim" in text}
    for text in MESSAGES.values():  # the value and its limit are quoted alike
        assert re.findall(r"\{v(:[^}]*)\}", text) == re.findall(r"\{lim(:[^}]*)\}", text), text
    for key, limit in AT_MOST.items():
        c = at_most(limit + beyond, key, limit, direction="yellow", skin_type="III", **RIGHT)
        assert not c.ok and _quoted(c.message, FIGURE) > _quoted(c.message, LIMIT), c.message
    for key, limit in AT_LEAST.items():
        c = at_least(limit - beyond, key, limit, skin_type="III")
        assert not c.ok and _quoted(c.message, FIGURE) < _quoted(c.message, LIMIT), c.message
    assert "cast: 3.503 from" in at_most(3.5035, "colour", 3.5, direction="yellow").message
    assert "sharpness 34.97% of" in at_least(0.3497, "focus", 0.35).message
    assert "sharpness 30% of" in at_least(0.30, "focus", 0.35).message  # the template's precision where it tells
    assert "brightness 112.3 in its brightest colour, needs at least 112.4 for" in \
        at_least(112.34, "dark_type", 112.37, skin_type="III").message  # not "112.3 ..., needs at least 112"


def test_the_reported_value_gives_the_rule_s_verdict():
    # a framing computed as 0.5000000000000001 was reported as 0.5 against "at most 0.50", and refused
    assert at_most(0.5000000000000001, "cut", 0.5, **RIGHT).ok
    for value, ok, shown in [(0.50003, False, 0.50003), (0.5, True, 0.5), (0.49996, True, 0.5), (0.50006, False, 0.5001),
                             (0.500000004, False, 0.500000004), (0.5000000004, True, 0.5)]:
        c = at_most(value, "cut", 0.5, **RIGHT)
        assert c.ok is ok and c.value == shown and (c.value <= 0.5) is ok, (value, c)
    assert "cut 0.50003, at most 0.50" in at_most(0.50003, "cut", 0.5, **RIGHT).message
    glare = at_most(0.00404, "glare", 0.004)  # 4 decimals would report it as the limit
    assert not glare.ok and glare.value == 0.00404 and "cover 0.404% of" in glare.message
    for value, ok, shown in [(0.34996, False, 0.34996), (0.35, True, 0.35), (0.350004, True, 0.35), (0.34994, False, 0.3499)]:
        c = at_least(value, "focus", 0.35)
        assert c.ok is ok and c.value == shown and (c.value >= 0.35) is ok, (value, c)
    # a limit with more decimals than a report (the darker skin's exposure floor): a passing value stays on its side
    c = at_least(112.37124, "dark", 112.37123)
    assert c.ok and c.value >= 112.37123
    c = at_least(112.37121, "dark", 112.37123)
    assert not c.ok and c.value < 112.37123 and "needs at least 112.37123" in c.message, c.message


def test_every_message_template_names_what_to_change():
    for key, text in MESSAGES.items():
        assert ": " in text and ("tap again" in text or "take the picture again" in text), key


def test_the_centre_shows_the_kiosk_s_words():
    """The dashboard's referral page lists a failed check as "name: message", the message as sent."""
    from dashboard.referralview import _image

    q = assess(jpeg(synth.degrade_blur(good(0), 8)), "dermoscopic", calibrated())
    im = {"sha256": "0" * 64, "view": "dermoscopic", "width": 1600, "height": 1200, "size": 1, "shot": 1,
          "captured_at": "2026-12-04T10:00:00Z", "quality": Quality.model_validate_json(q.model_dump_json())}
    flags = _image(im)["flags"]
    assert flags == [f"{k}: {c.message}" for k, c in q.checks.items() if not c.ok]
    assert any("Image is blurred (sharpness" in f for f in flags)


def test_the_centre_notes_the_checks_the_kiosk_did_not_make():
    """A lesion larger than the view, so marked at the kiosk: the referral page notes each check that was not made,
    in the kiosk's words, beside the photograph (it failed nothing, so it has no flag)."""
    from dashboard.referralview import _image
    from tests.test_quality_fills_view import filled

    q = assess(jpeg(filled(0)), "dermoscopic", fills_view=True)
    im = {"sha256": "0" * 64, "view": "dermoscopic", "width": 1200, "height": 900, "size": 1, "shot": 1,
          "captured_at": "2026-12-04T10:00:00Z", "quality": Quality.model_validate_json(q.model_dump_json())}
    shown = _image(im)
    assert q.ok and shown["flags"] == []
    assert shown["notes"] == [f"{k}: {NOT_JUDGED[k]}" for k in ("colour", "lesion", "framing")]
    # an unmarked photograph that passed has no notes
    plain = {**im, "quality": assess(jpeg(good(0)), "dermoscopic", calibrated())}
    assert _image(plain)["notes"] == []


def test_the_sample_cases_speak_the_gate_s_words():
    """The demo's and the tests' sample cases (``dashboard.sample``) carry the gate's check names and its message."""
    from dashboard import sample

    q = sample.gate_result(True)
    assert set(q.checks) == set(QualitySettings().dermoscopic.checks)
    limit = QualitySettings().dermoscopic.focus_min
    assert q.checks["focus"].message == MESSAGES["focus"].format(v=q.checks["focus"].value, lim=limit)
    assert sample.gate_result(False).ok and all(c.message == "ok" for c in sample.gate_result(False).checks.values())


def test_classifier_crop_still_uses_the_gate_s_segmentation():
    from edge.classifier import lesion_square

    img, les = synth.lesion_image_and_truth(1600, 1200, 12, centre=(0.35, 0.6), size=0.15)
    x0, y0, side = lesion_square(img)
    assert x0 <= les.cx <= x0 + side and y0 <= les.cy <= y0 + side
    assert side < 1200


@pytest.mark.parametrize("size", [(10, 10), (4000, 60), (60, 4000)])
def test_a_picture_too_small_or_narrow_to_judge_says_so_with_its_size(size):
    """Readable but with nothing to judge: not called unreadable (which it is not), but named with its size."""
    img = synth.cv2.resize(good(0), size, interpolation=synth.cv2.INTER_AREA)
    q = assess(jpeg(img), "dermoscopic")
    assert not q.ok and list(q.checks) == ["decode"]
    c = q.checks["decode"]
    assert c.message == MESSAGES["too_small"].format(w=size[0], h=size[1]) and f"{size[0]} x {size[1]} pixels" in c.message
    assert "not a readable image" not in c.message
    assert assess(b"\x00garbage", "dermoscopic").checks["decode"].message.startswith("The file is not a readable image")


def featureless_thumbnail() -> bytes:
    """An 84-px archive thumbnail of a round view holding nothing but a small, very soft pale patch: its fine-to-coarse
    ratio reads under 1 (0.04), less fine detail than none."""
    import cv2
    import numpy as np

    n = 84
    img = np.full((n, n, 3), (178, 177, 203), np.float32)
    cv2.circle(img, (38, 44), 5, (187, 185, 104), -1)
    img = cv2.GaussianBlur(img, (0, 0), 5.0) + np.random.default_rng(0).normal(0, 0.55, (n, n, 3))
    yy, xx = np.mgrid[0:n, 0:n]
    img[np.hypot(xx - n / 2, yy - n / 2) > 0.45 * n] = 10
    return synth.encode_jpeg(np.clip(img, 0, 255).astype(np.uint8), 83)


def test_sharpness_is_never_quoted_below_none():
    # "sharpness -18% of this kiosk's normal" (413 of BCN20000's thumbnails read so) says nothing a photographer can
    # use: no fine detail is 0 %, and the verdict is the same, as every focus limit is above 0.
    c = assess(featureless_thumbnail(), "dermoscopic").checks["focus"]
    assert not c.ok and c.value == 0.0
    assert "sharpness 0% of this kiosk's normal" in c.message
