"""bench.quality_patch on generated files laid out as a source: two kiosks calibrated on the same fit-half stills, one
reading the skin and one a drawn grey patch, judge the same score-half stills and their casts and exposures."""

from __future__ import annotations

import random
import re

import numpy as np

from bench.quality_patch import main, summary, with_patch
from bench.quality_sources import part_of
from edge.camera import synth


def test_both_kiosks_judge_the_same_stills_and_the_patch_catches_every_cast(tmp_path, capsys):
    folder = tmp_path / "ham10000-masks"  # the layout bench.quality_sources reads for that source
    folder.mkdir()
    keys = [f"ISIC_{9200000 + i}" for i in range(40)]
    fit = [k for k in keys if part_of(k) == "fit"]
    score = [k for k in keys if part_of(k) == "score"]
    assert len(fit) >= 12 and len(score) >= 2
    for i, key in enumerate(fit[:12] + score[:2]):
        (folder / f"{key}.jpg").write_bytes(synth.encode_jpeg(synth.lesion_image(800, 600, 800 + i)))
    assert main(["--data", str(tmp_path), "--sources", "ham10000-masks", "--n", "2", "--fit-n", "12",
                 "--jobs", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    head = next(line for line in out if line.startswith("== ham10000-masks: 2 score-half stills"))
    assert "(0 fit stills' patches unreadable)" in head
    rows = {line.split()[0]: line.split()[1:] for line in out if line.startswith("  cast_") or
            line.startswith("  under") or line.startswith("  over")}
    for name in ("cast_red", "cast_blue", "cast_green", "cast_yellow", "under", "over"):
        assert rows[name][-4:] == ["100.0", "/", "100.0", "%"], (name, rows[name])  # the patch's columns
    assert re.fullmatch(r"patch_caught casts=100\.0/100\.0% exposure=100\.0/100\.0% \(skin casts=\d+\.\d/\d+\.\d% "
                        r"exposure=\d+\.\d/\d+\.\d%\) \| originals_refused patch=\d+\.\d% skin=\d+\.\d%", out[-1]), out[-1]


def test_the_patch_lies_inside_the_frame_and_the_view_below_its_centre():
    img = synth.lesion_image(1600, 1200, 5)  # a round field of view, dark corners
    drawn, patch = with_patch(img, random.Random(0))
    assert 0.5 < patch.y < 1.0 and abs(patch.x - 0.5) < 0.02
    y, x = round(patch.y * 1199), round(patch.x * 1599)
    assert np.abs(drawn[y, x].astype(int) - drawn[y, x].mean()).max() < 12  # grey at its centre
    assert (drawn != img).any(axis=2).mean() < 0.02  # and nowhere much else


def test_summary_pools_every_source():
    caught = {(k, f, g): v for k in ("patch", "skin") for f in ("cast_red", "cast_blue", "cast_green", "cast_yellow",
                                                                 "under", "over")
              for g, v in (("moderate", 10 if k == "patch" else 5), ("strong", 10 if k == "patch" else 8))}
    counts = [{"n": 10, "refused": {"patch": 1, "skin": 2}, "caught": caught}] * 2
    assert summary(counts) == ("patch_caught casts=100.0/100.0% exposure=100.0/100.0% (skin casts=50.0/80.0% "
                               "exposure=50.0/80.0%) | originals_refused patch=10.0% skin=20.0%")
