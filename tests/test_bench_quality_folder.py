"""Another clinic's photographs as a bench source: ``--sources folder:PATH`` (``bench.quality_sources.folder_items``).

A folder of image files (JPEG, PNG, BMP, TIFF, WebP) is listed as the named sources are: each file its own key, split by the key's hash,
brought to a 1600-px still of its own shape, its blur graded in its own pixels up to PH2's width, its lesion mask
where one lies beside it. Tested on generated files: none of the shared data is needed.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
from PIL import Image

from bench.quality_degrade import DEGRADATIONS, blur
from bench.quality_eval import main as eval_main
from bench.quality_native_degraded import main as native_main
from bench.quality_sources import FOLDER_NATIVE, LONG_SIDE, Item, as_file, folder_items, load_source, part_of, still
from edge.camera import synth
from edge.quality import assess


def write_jpeg(path, width: int, height: int, seed: int) -> np.ndarray:
    """A generated dermoscopic frame of ``width`` x ``height`` written to ``path``; returns its pixels."""
    img = synth.lesion_image(width, height, seed)
    path.write_bytes(synth.encode_jpeg(img))
    return img


def write_mask(path, width: int, height: int) -> None:
    """A lesion mask (255 inside) of a disc in the middle."""
    m = np.zeros((height, width), np.uint8)
    cv2.circle(m, (width // 2, height // 2), min(width, height) // 6, 255, -1)
    cv2.imwrite(str(path), m)


def test_lists_each_photograph_with_its_shape_its_grading_and_its_mask(tmp_path):
    clinic = tmp_path / "clinic" / "images"
    clinic.mkdir(parents=True)
    write_jpeg(clinic / "A001.jpg", 700, 525, 1)
    write_mask(clinic / "A001_mask.png", 700, 525)  # beside it
    write_jpeg(clinic / "A002.JPEG", 3200, 2400, 2)  # a 7.7 MP original
    (tmp_path / "clinic" / "masks").mkdir()
    write_mask(tmp_path / "clinic" / "masks" / "A002_segmentation.png", 3200, 2400)  # in a masks folder beside it
    cv2.imwrite(str(clinic / "A003.png"), synth.lesion_image(600, 800, 3))  # portrait, PNG, no mask
    cv2.imwrite(str(clinic / "A005.bmp"), synth.lesion_image(765, 574, 5))  # a dermatoscope's BMP original, as PH2's
    cv2.imwrite(str(clinic / "A006.tif"), synth.lesion_image(640, 480, 6))
    (clinic / "notes.txt").write_text("not a photograph")
    (clinic / "A004.jpg").write_bytes(b"\xff\xd8 not really a JPEG")  # a clinic's stray broken file
    items = {it.key: it for it in folder_items(f"folder:{clinic}")}
    assert set(items) == {"A001", "A002", "A003", "A005", "A006"}  # the masks, the text and the broken file are not
    assert items["A001"].size == (LONG_SIDE, 1200) and items["A001"].native == 700
    assert items["A001"].mask == clinic / "A001_mask.png"
    assert items["A002"].size == (LONG_SIDE, 1200) and items["A002"].native == FOLDER_NATIVE
    assert items["A002"].mask == tmp_path / "clinic" / "masks" / "A002_segmentation.png"
    assert items["A003"].size == (1200, LONG_SIDE) and items["A003"].mask is None
    assert still(items["A003"]).shape == (LONG_SIDE, 1200, 3)
    assert items["A005"].size == (LONG_SIDE, 1201) and items["A006"].size == (LONG_SIDE, 1200)
    assert still(items["A005"]).shape == (1201, LONG_SIDE, 3)
    # the split is the named sources' own: by the key's hash, whatever the folder
    assert {it.key for it in load_source(f"folder:{clinic}", "score", None, 0)} == \
        {k for k in items if part_of(k) == "score"}


def test_a_large_original_is_blurred_as_much_in_view_as_a_frame_of_ph2s_width(tmp_path):
    write_jpeg(tmp_path / "big.jpg", 3200, 2400, 4)
    write_jpeg(tmp_path / "small.jpg", 765, 574, 5)
    items = {it.key: it for it in folder_items(f"folder:{tmp_path}")}
    # the same sigma in the still: without the cap, 3 px of the 3200-px original would be a quarter of it
    assert items["big"].size[0] / items["big"].native == pytest.approx(items["small"].size[0] / items["small"].native,
                                                                       rel=0.01)
    for item in items.values():  # and the strong defocus is one the gate refuses for focus
        strong = blur(still(item), item, 3.0)
        assert not assess(synth.encode_jpeg(strong), "dermoscopic").checks["focus"].ok, item.key


def test_a_large_original_judged_as_it_is_is_degraded_as_a_frame_of_ph2s_width(tmp_path):
    img = write_jpeg(tmp_path / "big.jpg", 3060, 2295, 8)
    (item,) = folder_items(f"folder:{tmp_path}")
    own = as_file(item, 3060, 2295)
    assert (own.size, own.native, own.glare_scale) == ((3060, 2295), FOLDER_NATIVE, 4.0)
    glare = dict((f, grades) for f, _, grades in DEGRADATIONS)["glare"]["strong"]
    spots = glare(img, own, None, random.Random(1))
    assert not assess(synth.encode_jpeg(spots), "dermoscopic").checks["glare"].ok  # spots PH2's size in the view
    # a named source's file is judged in its own pixels, whatever its width (PH2's are 761-769 px)
    ph2 = Item("ph2", "IMD000", tmp_path / "big.jpg", None, (1600, 1196), 765)
    assert (as_file(ph2, 769, 576).native, as_file(ph2, 769, 576).glare_scale) == (769, 1.0)


def test_a_photograph_stored_turned_is_listed_upright(tmp_path):
    img = synth.lesion_image(800, 600, 6)
    pil = Image.fromarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    exif = pil.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees to view": OpenCV reads it 600 wide, 800 high
    pil.save(tmp_path / "turned.jpg", exif=exif.tobytes())
    (item,) = folder_items(f"folder:{tmp_path}")
    assert item.size == (1200, LONG_SIDE)
    assert still(item).shape[:2] == (LONG_SIDE, 1200)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(SystemExit, match="no such folder"):
        folder_items(f"folder:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"no images for source folder:.*empty$"):
        load_source(f"folder:{tmp_path / 'empty'}", "all", None, 0)


def test_quality_eval_scores_a_folder_calibrated_on_its_fit_half(tmp_path, capsys):
    keys = [f"C{i:03d}" for i in range(34)]
    for i, key in enumerate(keys):
        write_jpeg(tmp_path / f"{key}.jpg", 800, 600, 400 + i)
        write_mask(tmp_path / f"{key}_lesion.png", 800, 600)
    source = f"folder:{tmp_path}"
    fit = sum(part_of(k) == "fit" for k in keys)
    assert fit >= 12  # a kiosk is calibrated on at least 12 stills
    assert eval_main(["--sources", source, "--n", "4", "--only", "none", "--jobs", "1",
                      "--out", str(tmp_path / "out.csv")]) == 0
    out = capsys.readouterr().out.splitlines()
    head = next(line for line in out if line.startswith("== "))
    assert head.startswith(f"== {source}: 4 originals of the score half (seed 0); kiosk reference calibrated on ")
    assert any(line.startswith(f"  {source} false rejects ") for line in out)
    iou = [line for line in out if line.startswith(f"  {source} ") and "IoU median" in line]
    assert len(iou) == 2 and iou[1].split()[2] == str(len(keys))  # score half, then all of them
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and all(row.startswith(f"{source},C") for row in rows[1:])


def test_native_degraded_judges_a_folders_files_as_they_are(tmp_path, capsys):
    for i in range(2):
        write_jpeg(tmp_path / f"D{i}.jpg", 800, 600, 700 + i)
    source = f"folder:{tmp_path}"
    assert native_main(["--sources", source, "--jobs", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"== {source}: 2 files as they are, uncalibrated: originals refused ")
    rows = {line.split()[0]: line.split()[1:] for line in out[2:] if line.startswith("  ")}
    assert rows["defocus_strong"] == ["2", "100.0%", "100.0%"]
    assert out[-1].startswith(f"native_strong_caught uncalibrated {source}=")


def test_a_folder_too_small_to_calibrate_on_says_so(tmp_path):
    keys = [f"E{i}" for i in range(8)]
    for i, key in enumerate(keys):
        write_jpeg(tmp_path / f"{key}.jpg", 800, 600, 900 + i)
    assert 0 < sum(part_of(k) == "fit" for k in keys) < 12 and any(part_of(k) == "score" for k in keys)
    source = f"folder:{tmp_path}"
    with pytest.raises(SystemExit, match=r"no kiosk reference can be fitted on its fit half .*--uncalibrated"):
        eval_main(["--sources", source, "--n", "4", "--only", "none", "--jobs", "1", "--out", str(tmp_path / "o.csv")])
    with pytest.raises(SystemExit, match=r"no kiosk reference can be fitted on its fit half .*leave out --calibrated"):
        native_main(["--sources", source, "--calibrated", "--jobs", "1"])
