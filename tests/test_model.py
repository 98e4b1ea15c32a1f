"""The shipped lesion model: full-integer int8, within size, manifest honest, classifier behaves.

These tests read the real committed model with the real LiteRT interpreter.
Images are generated here (never taken from ../shared/data).
"""

from __future__ import annotations

import hashlib
import json
import shutil

import cv2
import numpy as np
import pytest

from edge.classifier import DEFAULT_MODEL_DIR, Classifier, ImageError, ModelError, lesion_square, load_manifest
from models.convert import INT8_OPS, check_int8, op_list
from wire.messages import LABELS, TIER_OF_LABEL, TIERS, Classification, tier_for

MODEL = DEFAULT_MODEL_DIR / "model.tflite"


@pytest.fixture(scope="module")
def clf():
    return Classifier(DEFAULT_MODEL_DIR, threads=2)


def lesion_image(seed: int = 0, size: int = 600) -> np.ndarray:
    """A generated skin-coloured image with a dark irregular blob (BGR)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = (150 + rng.integers(-10, 10), 170 + rng.integers(-10, 10), 215)
    pts = [(size // 2 + int(r * np.cos(a)), size // 2 + int(r * np.sin(a)))
           for a, r in zip(np.linspace(0, 2 * np.pi, 14, endpoint=False), rng.integers(size // 8, size // 4, 14))]
    cv2.fillPoly(img, [np.array(pts, np.int32)], (60, 70, 110))
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def test_model_is_small_and_full_int8():
    data = MODEL.read_bytes()
    assert len(data) <= 5 * 1024 * 1024
    assert check_int8(data) == []
    ops = op_list(data)
    names = {o["op"] for o in ops}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "FULLY_CONNECTED"} <= names
    assert "DEQUANTIZE" not in names
    for o in ops:
        if o["op"] in INT8_OPS:
            assert set(o["inputs"][: INT8_OPS[o["op"]]] + o["outputs"]) <= {"int8"}, o
    # 9 residual adds in EfficientNet-Lite0, all int8
    assert sum(o["op"] == "ADD" for o in ops) == 9


def test_check_int8_catches_a_float_model(tmp_path):
    """The op check must be able to fail: a float model is refused."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401 - same runtime as the kiosk

    it = Interpreter(model_content=MODEL.read_bytes())
    assert it.get_input_details()[0]["dtype"] == np.int8
    fake = [{"op": "CONV_2D", "inputs": ["float32", "float32"], "outputs": ["float32"]}]
    import models.convert as conv

    orig = conv.op_list
    conv.op_list = lambda _b: fake
    try:
        assert any("CONV_2D" in p for p in check_int8(MODEL.read_bytes()))
    finally:
        conv.op_list = orig


def test_manifest_matches_model():
    m = load_manifest(DEFAULT_MODEL_DIR)
    raw = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    assert m.sha256 == hashlib.sha256(MODEL.read_bytes()).hexdigest()
    assert tuple(m.labels) == LABELS
    assert "scc" in m.labels
    assert raw["risk_tiers"]["cancer"] == ["mel", "bcc", "scc"]
    assert {lab: t for t, labs in raw["risk_tiers"].items() for lab in labs} == TIER_OF_LABEL
    assert m.input.size == 224 and m.input.dtype == "int8"
    assert m.input.crop in ("centre-square", "lesion-square")
    assert 0 < m.thresholds["cancer"] < 1 and 0 < m.thresholds["pre-cancer"] <= 1
    for key in ("quantization", "training_data", "date", "metrics", "version"):
        assert raw[key], key
    assert raw["metrics"]["test"]["melanoma_auc"] > 0.5
    # the second model's evaluation: per source, leave one source out, PH2 as the external test
    assert set(raw["metrics"]["validation"]["per_source"]) >= {"ham10000", "isic2019-bcn", "isic2017"}
    assert set(raw["metrics"]["loso"]) == {"ham10000", "isic2019-bcn", "isic2017"}
    assert raw["metrics"]["external_ph2"]["centre-square"]["mel_vs_nv_auc"] > 0.5


def test_classifier_output(clf):
    c = clf.classify(lesion_image(1))
    assert set(c.probabilities) == set(LABELS)
    assert abs(sum(c.probabilities.values()) - 1) < 0.01
    assert c.risk in TIERS
    assert c.model == clf.version
    assert c.risk == tier_for(c.probabilities, clf.thresholds)


def test_classifier_is_deterministic_and_input_sensitive(clf):
    a, b = clf.probabilities(lesion_image(2)), clf.probabilities(lesion_image(2))
    assert np.array_equal(a, b)
    grey = np.full((300, 300, 3), 128, np.uint8)
    assert not np.allclose(a, clf.probabilities(grey), atol=1e-3)


def test_classify_jpeg_large_frame_and_tta(clf):
    big = cv2.resize(lesion_image(3), (4056, 3040))
    ok, jpg = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    c = clf.classify_jpeg(jpg.tobytes())
    t = clf.classify_jpeg(jpg.tobytes(), tta=True)
    assert c.risk in TIERS and t.risk in TIERS
    with pytest.raises(ImageError):
        clf.classify_jpeg(b"\xff\xd8 not really a jpeg")


def test_tier_is_most_severe_passing_not_argmax():
    th = {"cancer": 0.2, "pre-cancer": 0.3}
    probs = {lab: 0.0 for lab in LABELS}
    probs.update(nv=0.7, mel=0.25, akiec=0.05)
    assert tier_for(probs, th) == "cancer"  # argmax is nv (benign)
    probs.update(mel=0.1, akiec=0.2, nv=0.7)
    assert tier_for(probs, th) == "benign"
    probs.update(mel=0.05, akiec=0.35, nv=0.6)
    assert tier_for(probs, th) == "pre-cancer"


def test_tampered_model_is_refused(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL_DIR, d, ignore=shutil.ignore_patterns("report"))
    data = bytearray((d / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        Classifier(d)


def test_missing_manifest_field_is_named(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL_DIR, d, ignore=shutil.ignore_patterns("report"))
    raw = json.loads((d / "manifest.json").read_text())
    del raw["thresholds"]
    (d / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="thresholds"):
        Classifier(d)


def test_scc_is_cancer_and_travels():
    th = {"cancer": 0.3, "pre-cancer": 0.3}
    probs = {lab: 0.0 for lab in LABELS}
    probs.update(nv=0.6, scc=0.2, bcc=0.15, akiec=0.05)
    assert tier_for(probs, th) == "cancer"  # scc + bcc pass the cancer threshold together
    c = Classification(probabilities=probs, risk="cancer", model="m")
    assert c.probabilities["scc"] == 0.2
    old = {lab: p for lab, p in probs.items() if lab != "scc"}  # a first-model kiosk's seven labels
    assert Classification(probabilities=old, risk="benign", model="m").probabilities == old


def test_a_seven_label_manifest_still_loads_but_not_a_reordered_one(tmp_path):
    from edge.classifier import Manifest

    raw = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    d = tmp_path / "m"
    d.mkdir()
    raw["labels"] = [lab for lab in LABELS if lab != "scc"]
    (d / "manifest.json").write_text(json.dumps(raw))
    assert isinstance(load_manifest(d), Manifest)
    raw["labels"] = list(reversed(LABELS))
    (d / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="ordered subset"):
        load_manifest(d)


def _frame_with_lesion(cx: int, cy: int, r: int, w: int = 800, h: int = 600) -> np.ndarray:
    """A generated skin-coloured BGR frame with one dark round lesion at (cx, cy)."""
    rng = np.random.default_rng(5)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (150, 170, 215)
    cv2.circle(img, (cx, cy), r, (60, 70, 110), -1)
    return np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)


def test_lesion_square_centres_the_lesion_inside_the_frame():
    x0, y0, s = lesion_square(_frame_with_lesion(560, 260, 60), margin=1.5)
    assert 0 <= x0 and 0 <= y0 and x0 + s <= 800 and y0 + s <= 600
    assert abs(x0 + s / 2 - 560) < 15 and abs(y0 + s / 2 - 260) < 15
    assert 0.35 * 600 - 1 <= s <= 1.5 * 120 * 1.2
    # near an edge the square is shifted into the frame, not cut
    x0, y0, s = lesion_square(_frame_with_lesion(770, 300, 25), margin=1.5)
    assert x0 + s <= 800 and s >= 0.35 * 600 - 1


def test_lesion_square_falls_back_to_the_centre_square():
    flat = np.full((600, 800, 3), (150, 170, 215), np.uint8)
    assert lesion_square(flat) == (100, 0, 600)


def test_preprocess_follows_the_manifests_crop(clf):
    frame = _frame_with_lesion(600, 200, 50)
    centre = clf.preprocess(frame) if clf.manifest.input.crop == "centre-square" else None
    m = clf.manifest.input
    old = (m.crop, m.crop_margin)
    try:
        m.crop = "centre-square"
        a = clf.preprocess(frame)
        m.crop = "lesion-square"
        b = clf.preprocess(frame)
    finally:
        m.crop, m.crop_margin = old
    assert a.shape == b.shape == (1, 224, 224, 3) and not np.array_equal(a, b)
    if centre is not None:
        assert np.array_equal(centre, a)
