"""`python -m edge classify|quality|capture-demo|check-config|snap`: stable one-JSON-per-line output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.camera.synth import encode_jpeg, lesion_image
from wire.messages import LABELS, TIERS

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(os.environ.get("DERMKIOSK_TEST_MODEL_DIR", ROOT / "models" / "lesion"))
needs_model = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")


def edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@needs_model
def test_classify_prints_one_json_per_image_and_survives_a_corrupt_one(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(encode_jpeg(lesion_image(640, 480, seed=1)))
    b.write_bytes(encode_jpeg(lesion_image(640, 480, seed=2)))
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    r = edge("classify", str(a), str(bad), str(b), "--model-dir", str(MODEL_DIR))
    assert r.returncode == 1, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["image"] for x in lines] == [str(a), str(bad), str(b)]
    assert "error" in lines[1] and set(lines[1]) == {"image", "error"}
    for x in (lines[0], lines[2]):
        assert set(x) == {"image", "probabilities", "risk", "model"}
        assert set(x["probabilities"]) == set(LABELS) and x["risk"] in TIERS and x["model"]
        assert abs(sum(x["probabilities"].values()) - 1) < 0.02


@needs_model
def test_classify_all_good_exits_0(tmp_path):
    a = tmp_path / "a.jpg"
    a.write_bytes(encode_jpeg(lesion_image(640, 480, seed=3)))
    r = edge("classify", str(a), "--model-dir", str(MODEL_DIR))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1


def test_quality_delegates_to_the_gate(tmp_path):
    a = tmp_path / "a.jpg"
    a.write_bytes(encode_jpeg(lesion_image(800, 600, seed=4)))
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"nope")
    r = edge("quality", str(a), str(bad))
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["image"] for x in lines] == [str(a), str(bad)]
    assert set(lines[0]) == {"image", "ok", "checks"} and lines[1]["ok"] is False
    assert r.returncode == 1


def test_check_config_and_usage_errors(tmp_path):
    r = edge("check-config", "--config", "firmware_config/kiosk.pi.toml", "--syntax-only")
    assert r.returncode == 0 and "kiosk-0001" in r.stdout
    r = edge("check-config", "--config", "firmware_config/kiosk.pi.toml")
    assert r.returncode == 2 and "broker.ca_file" in r.stderr
    assert edge("classify").returncode == 2                 # argparse: IMAGE required
    assert edge("capture-demo", "--config", str(tmp_path / "missing.toml")).returncode == 2


def test_snap_takes_calibration_stills_with_the_kiosks_camera_and_calibrate_fits_on_them(tmp_path):
    # the demo kiosk's camera (replay, generated stills: the hardware faked behind the camera interface)
    demo = str(ROOT / "firmware_config" / "kiosk.demo.toml")
    out = tmp_path / "skin"
    r = edge("snap", "--config", demo, "--out", str(out), "--count", "12")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(out / f"still-{i:03d}.jpg") for i in range(1, 13)]
    # a second run goes on numbering: nothing already taken is overwritten
    r = edge("snap", "--config", demo, "--out", str(out))
    assert r.returncode == 0 and r.stdout.strip() == str(out / "still-013.jpg"), r.stderr
    r = edge("calibrate", "--config", demo, "--dry-run", *sorted(str(p) for p in out.glob("*.jpg")))
    assert r.returncode == 0 and "[quality.reference]" in r.stdout and "images = 13" in r.stdout, r.stdout
    r = edge("snap", "--config", demo, "--out", str(out), "--count", "0")
    assert r.returncode == 2 and "at least one still" in r.stderr
