"""models.robustness: the perturbations (pure, uint8, they change the image) and the per-condition table.

Generated images only: the dataset is never read here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models import robustness as rb
from models.data import LABELS

MODEL = Path(__file__).resolve().parent.parent / "models" / "lesion"


def _image(seed: int = 0, h: int = 224, w: int = 224) -> np.ndarray:
    """A skin-toned, textured RGB image with a dark off-centre blob (not symmetric under rotation)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.full((h, w), 200.0), np.full((h, w), 150.0), np.full((h, w), 130.0)], -1)
    r2 = ((yy - 0.45 * h) ** 2 + (xx - 0.6 * w) ** 2) / (0.2 * min(h, w)) ** 2
    base *= 1 - 0.6 * np.exp(-r2)[..., None]
    base += 0.2 * xx[..., None] + rng.normal(0, 12, (h, w, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", [n for n in rb.CONDITIONS if n != "clean"])
def test_each_perturbation_keeps_shape_dtype_changes_image_and_is_pure(name):
    img = _image(1, 180, 240)  # not square: catches transposed sizes
    before = img.copy()
    out = rb.CONDITIONS[name][0](img)
    assert np.array_equal(img, before), "the perturbation modified its input"
    assert out.dtype == np.uint8
    if name == "rotation 90":
        assert out.shape == (img.shape[1], img.shape[0], 3)
    else:
        assert out.shape == img.shape
        assert np.abs(out.astype(int) - img.astype(int)).mean() > 1.0, "the image barely changed"
    # pure: the same input gives the same output
    assert np.array_equal(out, rb.CONDITIONS[name][0](img))


def test_clean_is_the_identity():
    img = _image(2)
    assert np.array_equal(rb.CONDITIONS["clean"][0](img), img)


@pytest.mark.parametrize("fn, neutral", [
    (rb.colour_cast, {"gains": (1.0, 1.0, 1.0)}), (rb.gamma, {"g": 1.0}), (rb.contrast, {"factor": 1.0}),
    (rb.defocus, {"sigma": 0}), (rb.resolution_loss, {"factor": 1}), (rb.rotate90, {"k": 0}),
])
def test_neutral_strength_is_the_identity(fn, neutral):
    img = _image(3)
    assert np.array_equal(fn(img, **neutral), img)


def test_directions_of_the_tone_and_colour_shifts():
    img = _image(4)
    mean = img.reshape(-1, 3).mean(0)
    assert rb.CONDITIONS["darker"][0](img).mean() < img.mean() < rb.CONDITIONS["brighter"][0](img).mean()
    warm = rb.CONDITIONS["warm cast"][0](img).reshape(-1, 3).mean(0)
    cool = rb.CONDITIONS["cool cast"][0](img).reshape(-1, 3).mean(0)
    assert warm[0] > mean[0] and warm[2] < mean[2] and cool[0] < mean[0] and cool[2] > mean[2]
    assert rb.CONDITIONS["low contrast"][0](img).std() < 0.7 * img.std()
    # blur and resolution loss remove fine detail: the Laplacian's energy drops
    lap = lambda x: np.abs(np.diff(x.astype(float), 2, axis=0)).mean()  # noqa: E731
    for name in ("defocus blur", "resolution / 4"):
        assert lap(rb.CONDITIONS[name][0](img)) < 0.5 * lap(img)


def test_rotation_is_exact():
    img = _image(5, 120, 160)
    r = rb.CONDITIONS["rotation 90"][0](img)
    assert np.array_equal(r, np.rot90(img))
    assert np.array_equal(r[:, 0], img[0, ::-1])  # top row becomes the left column
    four = img
    for _ in range(4):
        four = rb.rotate90(four)
    assert np.array_equal(four, img)
    assert r.flags["C_CONTIGUOUS"]


def test_jpeg_quality_orders_the_error():
    img = _image(6)
    err = lambda q: np.abs(rb.jpeg(img, q).astype(int) - img.astype(int)).mean()  # noqa: E731
    assert err(95) < err(40) < err(10)


def test_table_with_the_real_model_on_generated_images():
    """Every condition comes back with every figure; the clean row has no change and full agreement."""
    pytest.importorskip("sklearn", reason="the metrics reuse models.metrics (scikit-learn, training venv)")
    imgs = np.stack([_image(10 + i) for i in range(2 * len(LABELS))])
    y = np.arange(len(imgs)) % len(LABELS)  # every class twice: both AUCs are defined
    thresholds = json.loads((MODEL / "manifest.json").read_text())["thresholds"]
    preds = rb.predict_conditions(MODEL, imgs)
    assert list(preds) == list(rb.CONDITIONS)
    for p in preds.values():
        assert p.shape == (len(imgs), len(LABELS)) and np.allclose(p.sum(1), 1, atol=1e-4)
    table = rb.robustness_table(y, preds, thresholds, boots=3)
    assert list(table) == list(rb.CONDITIONS)
    for name, row in table.items():
        assert set(rb.FIGURES) <= set(row) and set(rb.FIGURES) == set(row["delta"])
        assert {"melanomas_missed", "melanomas_lost_vs_clean", "melanomas_gained_vs_clean"} <= set(row)
        for k in rb.FIGURES:
            assert 0.0 <= row[k] <= 1.0, (name, k, row[k])
        assert (name == "clean") != ("delta_ci95" in row)
    assert table["clean"]["top1_agreement_with_clean"] == 1.0
    assert all(v == 0 for v in table["clean"]["delta"].values())
    # the figures follow their definitions, computed here independently
    from sklearn.metrics import roc_auc_score

    mel, p0 = LABELS.index("mel"), preds["clean"]
    assert table["clean"]["melanoma_auc"] == pytest.approx(roc_auc_score(y == mel, p0[:, mel]), abs=1e-4)
    cancer = p0[:, [LABELS.index("mel"), LABELS.index("bcc"), LABELS.index("scc")]].sum(1) >= thresholds["cancer"]
    pre = p0[:, LABELS.index("akiec")] >= thresholds["pre-cancer"]
    assert table["clean"]["melanomas_missed"] == int(((y == mel) & ~cancer & ~pre).sum())
    # the deltas are the differences of the figures
    blur = table["defocus blur"]
    assert blur["delta"]["melanoma_auc"] == pytest.approx(blur["melanoma_auc"] - table["clean"]["melanoma_auc"],
                                                          abs=2e-4)
