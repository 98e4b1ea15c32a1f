"""`python -m edge quality --calibrate STILLS IMAGE...`: another clinic's photographs scored as a kiosk calibrated on
others of theirs would score them, in one command and without a config file; and the refusals summed up for people.

Generated stills only. The verdicts must be exactly those of a kiosk whose config `python -m edge calibrate` wrote
from the same stills.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from edge.__main__ import main as edge_main
from edge.camera import synth
from edge.quality import refusal_summary
from edge.quality.calibrate import BEGIN, END, MIN_IMAGES
from wire.kioskconfig.quality import THUMBNAIL_SIDE

from tests.test_quality_calibrate import DEMO, still, stills

BLUE = (float(np.exp(0.25)), 1.0, 1.0)  # a cast of about 28 % towards blue: the built-in reference lets it pass


@pytest.fixture
def folder(tmp_path) -> Path:
    """A folder of 14 calibration stills (and a note that is not an image, which is passed over)."""
    cal = tmp_path / "calibration"
    cal.mkdir()
    stills(cal, 14)
    (cal / "README.txt").write_text("stills of normal skin, hub 3")
    return cal


@pytest.fixture
def scored(tmp_path) -> list[str]:
    """Two stills the calibration has not seen, and one of them with a moderate blue cast."""
    paths = []
    for name, data in (("a.jpg", still(16)), ("b.jpg", still(17)), ("b-blue.jpg", still(17, BLUE))):
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    return paths


def run(capsys, *argv: str) -> tuple[int, list[dict], str]:
    rc = edge_main(["quality", *argv])
    got = capsys.readouterr()
    return rc, [json.loads(line) for line in got.out.splitlines()], got.err


def test_scored_against_the_stills_exactly_as_a_kiosk_calibrated_on_them(folder, scored, tmp_path, capsys):
    rc, calibrated, err = run(capsys, "--calibrate", str(folder), *scored)
    assert rc == 1
    assert [x["ok"] for x in calibrated] == [True, True, False]
    colour = calibrated[2]["checks"]["colour"]
    assert not colour["ok"] and "blue cast" in colour["message"]
    assert "calibrated on 14 stills" in err and "README.txt" not in err and "thumbnails" not in err
    assert "refused 1 of 3 (33.3 %): colour 1" in err
    # the built-in reference (no --calibrate) passes the cast: the stills are what catch it
    rc, built_in, _ = run(capsys, *scored)
    assert rc == 0 and all(x["ok"] for x in built_in)
    # a kiosk whose config `calibrate` wrote from the same stills gives the same lines, value for value
    config = tmp_path / "kiosk.toml"
    config.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END) + "\n?", "", DEMO.read_text(), flags=re.S))
    assert edge_main(["calibrate", "--config", str(config), *sorted(str(p) for p in folder.glob("*.jpg"))]) == 0
    capsys.readouterr()
    _, from_config, _ = run(capsys, "--config", str(config), *scored)
    _, both, _ = run(capsys, "--config", str(config), "--calibrate", str(folder), *scored)
    assert from_config == calibrated == both


def test_stills_that_cannot_calibrate_are_named_and_nothing_is_scored(folder, scored, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, lines, err = run(capsys, "--calibrate", str(empty), *scored)
    assert (rc, lines) == (2, []) and f"calibration refused: {empty}: no image files" in err
    rc, lines, err = run(capsys, "--calibrate", str(tmp_path / "gone"), *scored)
    assert (rc, lines) == (2, []) and "gone: no such file or folder" in err
    few = tmp_path / "few"
    few.mkdir()
    stills(few, MIN_IMAGES - 1)
    (few / "junk.jpg").write_bytes(b"not a picture")
    rc, lines, err = run(capsys, "--calibrate", str(few), *scored)
    assert (rc, lines) == (2, [])
    assert f"left out {few / 'junk.jpg'}: not a readable image" in err
    assert f"calibration refused: {MIN_IMAGES - 1} usable stills: at least {MIN_IMAGES} are needed" in err


def test_files_and_folders_add_up_and_scoring_a_calibration_still_is_flagged(folder, tmp_path, capsys):
    extra = tmp_path / "more"
    extra.mkdir()
    more = stills(extra, 2)  # cal-00.jpg and cal-01.jpg again, in another folder: two more stills
    rc, lines, err = run(capsys, "--calibrate", str(folder), "--calibrate", more[0], "--calibrate", more[1],
                         str(folder / "cal-03.jpg"))
    assert rc == 0 and lines[0]["ok"]
    assert "calibrated on 16 stills" in err
    assert "1 of the images scored are also calibration stills" in err
    assert "refused" not in err  # one image: its JSON line says it all


def test_the_summary_counts_each_failing_check_once_per_image():
    assert refusal_summary([], 4) == "refused 0 of 4 (0.0 %)"
    assert refusal_summary([["focus", "colour"], ["colour"], ["exposure"]], 200) == \
        "refused 3 of 200 (1.5 %): colour 2, exposure 1, focus 1"


def test_stills_that_are_thumbnails_are_said_to_make_an_unsteady_normal(tmp_path, scored, capsys):
    small = tmp_path / "archive"
    small.mkdir()
    for i in range(MIN_IMAGES):
        (small / f"t-{i:02d}.jpg").write_bytes(synth.encode_jpeg(synth.lesion_image(300, 225, 300 + i)))
    _, lines, err = run(capsys, "--calibrate", str(small), *scored)
    assert len(lines) == 3 and "calibrated on 12 stills" in err
    assert f"12 of the 12 stills are thumbnails (under {THUMBNAIL_SIDE} pixels" in err
