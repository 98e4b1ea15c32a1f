"""bench.quality_native on generated files laid out as a source: the calibrated design at the files' own sizes."""

from __future__ import annotations

import numpy as np

from bench.quality_native import main
from bench.quality_sources import part_of
from edge.camera import synth

BLUE = (float(np.exp(0.4)), 1.0, 1.0)  # a strong cast towards blue


def test_scores_the_score_half_against_a_reference_fitted_on_the_fit_half(tmp_path, capsys):
    folder = tmp_path / "ham10000-masks"  # the layout bench.quality_sources reads for that source
    folder.mkdir()
    keys = [f"ISIC_{9000000 + i}" for i in range(40)]
    cast = next(k for k in keys if part_of(k) == "score")
    for i, key in enumerate(keys):
        img = synth.lesion_image(800, 600, 300 + i)
        (folder / f"{key}.jpg").write_bytes(synth.encode_jpeg(synth.degrade_cast(img, BLUE) if key == cast else img))
    scored = sum(part_of(k) == "score" for k in keys)
    assert main(["--data", str(tmp_path), "--sources", "ham10000-masks", "--seeds", "0",
                 "--fit-n", "40", "--n", "300"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"ham10000-masks seed 0: refused ") and f" of {scored} (" in out[0]
    assert f"{cast}:colour" in out[1]  # the calibration catches the cast its own stills do not have
    refused = int(out[0].split("refused ")[1].split(" of")[0])
    share = 100 * refused / scored
    assert out[-1] == f"native_calibrated_false_rejects ham10000-masks={share:.1f}-{share:.1f}%"
