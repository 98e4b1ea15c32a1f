"""The model's input canvas, identical in training and on the kiosk: lesion square and colour constancy.

The training side (``models.canvas`` boxes, ``models.sources.decode_pack``) and the kiosk
(``edge.classifier.Classifier.canvas``, read from the real committed model's manifest) are run on the
same generated frame; the options of a GPU run (mixing, the committed plan) are checked without a GPU.
Images are generated here (never taken from ../shared/data).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.classifier import DEFAULT_MODEL_DIR, Classifier, lesion_square
from edge.colour import apply_colour, shades_of_gray
from models.canvas import compute_boxes, load_boxes
from models.sources import decode_pack, to_canvas


def cast_frame(w: int = 192, h: int = 144, cx: int = 115, cy: int = 65, r: int = 28, seed: int = 0) -> np.ndarray:
    """A BGR frame of skin under a bluish light (a colour cast) with a dark lesion off the centre."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (190, 170, 160)  # BGR: blue-heavy skin, as under a cold LED
    cv2.circle(img, (cx, cy), r, (80, 60, 70), -1)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def test_shades_of_gray_evens_out_the_channels_and_keeps_grey():
    rgb = cast_frame()[:, :, ::-1].copy()
    out = shades_of_gray(rgb, 6.0)
    norms = lambda x: np.mean((x.astype(np.float64) / 255) ** 6, axis=(0, 1)) ** (1 / 6)  # noqa: E731
    before, after = norms(rgb), norms(out)
    assert before.max() / before.min() > 1.15  # the cast is there ...
    assert after.max() / after.min() < 1.02  # ... and gone
    grey = np.full((32, 32, 3), 90, np.uint8)
    assert np.array_equal(shades_of_gray(grey), grey)
    black = np.zeros((8, 8, 3), np.uint8)
    assert np.array_equal(shades_of_gray(black), black)
    assert apply_colour(rgb, "none") is rgb
    with pytest.raises(ValueError, match="uint8"):
        shades_of_gray(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="unknown colour constancy"):
        apply_colour(rgb, "grey-world")


def _one_image_pack(path, bgr: np.ndarray) -> None:
    """A pack (models.sources' layout) holding ``bgr`` as lossless WebP, so that decoding gives it back exactly."""
    ok, enc = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert ok
    data = enc.ravel()
    np.savez(path, data=data, offsets=np.array([0, len(data)], np.int64), isic_id=np.array(["GEN_0"]),
             label=np.array([4]), group=np.array(["GEN_0"]), source=np.array(["ham10000"]),
             labels=np.array(["akiec", "bcc", "bkl", "df", "mel", "nv", "scc", "vasc"]))


@pytest.mark.parametrize("crop,colour", [("lesion-square", "shades-of-gray"), ("centre-square", "shades-of-gray"),
                                         ("lesion-square", "none")])
def test_training_canvas_is_the_kiosks_canvas(tmp_path, crop, colour):
    frame = cast_frame()
    pack = tmp_path / "pack.npz"
    _one_image_pack(pack, frame)
    np.savez(tmp_path / "boxes.npz", **compute_boxes(pack))
    boxes = load_boxes(tmp_path / "boxes.npz", np.array(["GEN_0"]))
    assert tuple(boxes[0]) == lesion_square(frame) != (24, 0, 144)  # the lesion square, not the centre one
    trained = decode_pack(pack, 224, threads=1, boxes=boxes if crop == "lesion-square" else None, colour=colour)[0][0]

    clf = Classifier(DEFAULT_MODEL_DIR, threads=1)
    clf.manifest.input.crop, clf.manifest.input.colour = crop, colour
    kiosk = clf.canvas(frame)
    assert kiosk.shape == trained.shape == (224, 224, 3)
    assert np.array_equal(kiosk, trained)
    # the options change what the model sees (so the equality above is not of two untouched images)
    clf.manifest.input.crop, clf.manifest.input.colour = "centre-square", "none"
    plain = clf.canvas(frame)
    assert not np.array_equal(plain, kiosk)
    # and the kiosk quantizes exactly that canvas
    clf.manifest.input.crop, clf.manifest.input.colour = crop, colour
    spec = clf.manifest.input
    q = np.clip(np.rint(kiosk.astype(np.float32) / (spec.std * spec.scale) + spec.zero_point
                        - spec.mean / (spec.std * spec.scale)), -128, 127).astype(np.int8)
    assert np.array_equal(clf.preprocess(frame)[0], q)


def test_the_shipped_manifest_leaves_colour_alone():
    clf = Classifier(DEFAULT_MODEL_DIR, threads=1)
    frame = cast_frame()
    assert clf.manifest.input.colour == "none"
    assert np.array_equal(clf.canvas(frame), to_canvas(frame[:, :, ::-1], 224))


def test_boxes_of_another_pack_are_refused(tmp_path):
    np.savez(tmp_path / "boxes.npz", isic_id=np.array(["A", "B"]), box=np.zeros((2, 3), np.int32))
    with pytest.raises(SystemExit, match="make them again"):
        load_boxes(tmp_path / "boxes.npz", np.array(["A", "C"]))
    with pytest.raises(ValueError, match="does not lie inside"):
        to_canvas(np.zeros((50, 60, 3), np.uint8), 32, box=(20, 0, 50))


def test_committed_plan_parses_and_fits_the_return_limits(tmp_path):
    from models.gpu_run import MAX_WEIGHTS, parse_args, read_plan

    plan = read_plan("models/plans/h200.json")
    assert len(plan["weights"]) <= MAX_WEIGHTS
    for r in plan["runs"]:  # every run's options are real options of a child (a typo fails here, not on the GPU)
        a = parse_args(["child", "--name", r["name"], "--pack", "p", "--out", "o", *r["args"]])
        assert a.select == "best" and a.ph2
    bad = json.loads(open("models/plans/h200.json").read())
    bad["ensembles"] = {"e": ["reg-a", "nope"]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(SystemExit, match="nope"):
        read_plan(tmp_path / "bad.json")


def test_cutmix_and_mixup_weights():
    torch = pytest.importorskip("torch", reason="training venv")
    from models.augment import mix_batch

    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 20, 20).contiguous()
    rng = np.random.default_rng(0)
    same, perm, lam = mix_batch(x, None, rng, 0.0, 0.0)
    assert same is x and perm is None and lam == 1.0 and rng.random() == np.random.default_rng(0).random()
    for seed in range(5):
        out, perm, lam = mix_batch(x, None, np.random.default_rng(seed), 0.0, 1.0, p=1.0)  # CutMix only
        kept = (out == x).all(1).float().mean((1, 2))  # share of each image's own pixels
        moved = perm != torch.arange(4)
        assert torch.allclose(kept[moved], torch.full_like(kept[moved], lam), atol=1e-6)
        out, perm, lam = mix_batch(x, None, np.random.default_rng(seed), 0.4, 0.0, p=1.0)  # mixup only
        assert torch.allclose(out, lam * x + (1 - lam) * x[perm])
