"""`python -m edge run` picks an applied configuration update, and sets aside one that cannot start."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.update import config_override_path
from tests.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "lesion"
pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no shipped model")


def toml(tmp_path: Path, broker_url: str, port: int, model_dir: Path = MODEL_DIR) -> str:
    return f"""
device_id = "kiosk-c1"
site = "hub-c"
model_dir = "{model_dir}"
data_dir = "{tmp_path / 'data'}"
classifier_threads = 1
[broker]
url = "{broker_url}"
[camera]
source = "replay"
[web]
port = {port}
[retention]
min_free_mb = 0
"""


def run_until_page(cfg: Path) -> tuple[str, str]:
    """Start the kiosk, wait for its page line, stop it with SIGTERM; return that line and its stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("kiosk page:"), line + proc.stderr.read()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return line, err


def test_applied_config_is_used_and_a_broken_one_set_aside(broker, tmp_path):
    base_port, new_port = free_port(), free_port()
    base = tmp_path / "kiosk.toml"
    base.write_text(toml(tmp_path, broker.url, base_port))
    override = config_override_path(tmp_path / "data")
    override.parent.mkdir(parents=True)
    override.write_text(toml(tmp_path, broker.url, new_port))
    line, err = run_until_page(base)
    assert "running on the updated configuration" in err and f":{new_port}/" in line
    # an update whose model folder does not exist here: set aside, the installed config runs
    override.write_text(toml(tmp_path, broker.url, new_port, model_dir=tmp_path / "nowhere"))
    line, err = run_until_page(base)
    assert "updated configuration set aside" in err and "model_dir" in err and f":{base_port}/" in line
    assert not override.exists() and override.with_suffix(".toml.failed").exists()
