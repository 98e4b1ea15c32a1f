"""bench.quality_focus_even on generated files laid out as a source with expert masks: both focus measures read per
band of the lesion's share of the frame, and on copies with glare spots."""

from __future__ import annotations

import re

import cv2
import numpy as np

from bench.quality_focus_even import main
from edge.camera import synth


def test_reads_both_measures_per_band_and_on_glare_copies(tmp_path, capsys):
    folder = tmp_path / "ham10000-masks"  # the layout bench.quality_sources reads for that source
    folder.mkdir()
    for i, size in enumerate((0.08, 0.09, 0.45, 0.5)):
        img, lesion = synth.lesion_image_and_truth(800, 600, 700 + i, size=size)
        (folder / f"ISIC_{9100000 + i}.jpg").write_bytes(synth.encode_jpeg(img))
        m = np.zeros(img.shape[:2], np.uint8)
        cv2.circle(m, (round(lesion.cx), round(lesion.cy)), round(lesion.radius), 255, -1)
        cv2.imwrite(str(folder / f"ISIC_{9100000 + i}_expert.png"), m)
    assert main(["--data", str(tmp_path), "--sources", "ham10000-masks", "--jobs", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ham10000-masks: 4 originals at their own size"
    bands = [line.split()[0] for line in out[1:] if "median ratio" in line]
    assert bands == ["lesion", ">"]  # two small lesions, two over 35 % of the frame, none between
    m = re.fullmatch(r"focus_even glare_kept energy=(\d+\.\d\d)-(\d+\.\d\d) even=(\d+\.\d\d)-(\d+\.\d\d) \| "
                     r"large_over_small ham10000-masks=\d+\.\d\d/\d+\.\d\d", out[-1])
    assert m, out[-1]
    lo, hi = float(m[3]), float(m[4])
    assert 0.3 < lo <= hi < 1.2  # glare hides some detail, and the even measure reads it so on every copy
