"""bench.quality_native_degraded on generated files laid out as a source: the files judged at their own size, with
degraded copies made at that size, by an uncalibrated kiosk."""

from __future__ import annotations

import re

from bench.quality_degrade import DEGRADATIONS, GRADES
from bench.quality_native_degraded import main, summary
from edge.camera import synth


def test_judges_each_file_and_its_copies_at_their_own_size(tmp_path, capsys):
    folder = tmp_path / "ham10000-masks"  # the layout bench.quality_sources reads for that source
    folder.mkdir()
    for i in range(3):
        (folder / f"ISIC_{9100000 + i}.jpg").write_bytes(synth.encode_jpeg(synth.lesion_image(800, 600, 700 + i)))
    assert main(["--data", str(tmp_path), "--sources", "ham10000-masks", "--jobs", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("== ham10000-masks: 3 files as they are, uncalibrated: originals refused ")
    rows = {line.split()[0]: line.split()[1:] for line in out[2:] if line.startswith("  ")}
    # every degradation at both grades (a cut needs room to slide: it may be left out)
    assert {f"{f}_{g}" for f, _, _ in DEGRADATIONS for g in GRADES if f != "cut"} <= set(rows)
    for name in ("defocus_strong", "under_strong", "glare_strong"):  # what any kiosk refuses, calibrated or not
        assert rows[name] == ["3", "100.0%", "100.0%"], (name, rows[name])
    assert re.fullmatch(r"native_strong_caught uncalibrated ham10000-masks=\d+\.\d%:\w+ \| casts "
                        r"ham10000-masks=\d+\.\d-\d+\.\d%", out[-1]), out[-1]


def test_summary_names_the_weakest_strong_degradation_and_the_casts_range():
    tables = {"ph2": {"defocus_strong": (1.0, 1.0, 10), "motion_strong": (0.92, 0.92, 10),
                      "motion_moderate": (0.1, 0.1, 10), "cast_red_strong": (0.05, 0.5, 10),
                      "cast_yellow_strong": (0.57, 0.6, 10)}}
    assert summary(tables, False) == "native_strong_caught uncalibrated ph2=92.0%:motion | casts ph2=5.0-57.0%"
    assert summary(tables, True).startswith("native_strong_caught calibrated ")
