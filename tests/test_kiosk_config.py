"""Kiosk configuration: every kind of error names the file and the field; example files are valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import ConfigError, KioskConfig, load
from wire import tomlconfig

ROOT = Path(__file__).resolve().parents[1]

def base_tables(tmp_path: Path, model_dir: Path) -> dict[str, dict[str, str]]:
    """A valid config as {table: {key: raw TOML value}}."""
    return {
        "": {"device_id": '"kiosk-1"', "site": '"hub-a"', "data_dir": f'"{tmp_path / "data"}"',
             "model_dir": f'"{model_dir}"'},
        "broker": {"url": '"mqtt://127.0.0.1:1883"'},
        "camera": {"source": '"replay"'},
    }


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "manifest.json").write_text("{}")
    return d


def write(tmp_path, model_dir: Path, **changes: dict[str, str | None]) -> Path:
    """Write the base config with ``changes`` ({table: {key: raw value or None to delete}})."""
    tables = base_tables(tmp_path, model_dir)
    for table, items in changes.items():
        for k, v in items.items():
            if v is None:
                tables[table].pop(k)
            else:
                tables.setdefault(table, {})[k] = v
    p = tmp_path / "kiosk.toml"
    p.write_text(render({t.replace("__", "."): v for t, v in tables.items()}))
    return p


def error_of(path: Path, check_files=True) -> str:
    with pytest.raises(ConfigError) as exc:
        load(path, check_files=check_files)
    return str(exc.value)


def test_good_config_loads_with_defaults(tmp_path, model_dir):
    cfg = load(write(tmp_path, model_dir))
    assert cfg.device_id == "kiosk-1" and cfg.broker.port == 1883 and not cfg.broker.tls
    assert cfg.web.host == "127.0.0.1"            # loopback unless told otherwise
    assert cfg.broker.max_inflight >= 1 and cfg.retention.keep_delivered_s == 0


def render(tables: dict[str, dict[str, str]]) -> str:
    """TOML text from {table: {key: raw TOML value}} ("" is the top level)."""
    out = [f"{k} = {v}" for k, v in tables.get("", {}).items()]
    for name, items in tables.items():
        if name:
            out.append(f"[{name}]")
            out += [f"{k} = {v}" for k, v in items.items()]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("table,key,value,field,words", [
    ("", "device_id", '"Kiosk 1"', "device_id", "a-z"),                       # bad identifier
    ("", "site", '"hub/a"', "site", "a-z"),                                   # would break a topic
    ("", "colour", '"red"', "colour", "unknown field"),                       # typo at top level
    ("broker", "urll", '"x"', "broker.urll", "unknown field"),                # typo in a table
    ("broker", "url", '"http://h"', "broker.url", "mqtt://"),                 # wrong scheme
    ("broker", "max_inflight", "0", "broker.max_inflight", "greater than or equal"),  # out of range
    ("broker", "keepalive", '"soon"', "broker.keepalive", "integer"),         # wrong type
    ("broker", "ca_file", '"/ca.pem"', "broker", "mqtts"),                       # inconsistent TLS
    ("camera", "source", '"webcam"', "camera.source", "replay"),              # not a choice
    ("quality.dermoscopic", "focus_min", "0.1", "quality.dermoscopic.focus_min", "greater"),
    ("quality.dermoscopic", "shake_min", "1.5", "quality.dermoscopic.shake_min", "less than or equal"),
    ("web", "port", "70000", "web.port", "less than or equal"),
    ("", "thresholds", "{ cancer = 0.2 }", "thresholds", "both"),
    ("capture", "required_views", '["dermoscopic", "dermoscopic"]', "capture.required_views", "twice"),
    ("retention", "min_free_mb", "-1", "retention.min_free_mb", "greater"),
])
def test_each_kind_of_error_names_file_and_field(tmp_path, model_dir, table, key, value, field, words):
    tables = base_tables(tmp_path, model_dir)
    tables.setdefault(table, {})[key] = value
    path = tmp_path / "kiosk.toml"
    path.write_text(render(tables))
    msg = error_of(path)
    assert msg.startswith(f"{path}: {field}"), msg
    assert words in msg, msg


def test_missing_required_field(tmp_path, model_dir):
    path = write(tmp_path, model_dir, **{"": {"site": None}})
    msg = error_of(path)
    assert f"{path}: site: Field required" in msg


def test_missing_files_are_named(tmp_path, model_dir):
    path = write(tmp_path, tmp_path / "nomodel",
                 broker={"url": '"mqtts://broker:8883"', "ca_file": '"/nonexistent/ca.pem"'})
    msg = error_of(path)
    assert f"{path}: broker.ca_file: file /nonexistent/ca.pem does not exist" in msg
    assert f"{path}: model_dir:" in msg
    assert load(path, check_files=False).broker.port == 8883


def test_not_toml_and_not_found(tmp_path, model_dir):
    bad = tmp_path / "bad.toml"
    bad.write_text("device_id = kiosk\n")
    assert error_of(bad).startswith(f"{bad}: not valid TOML")
    assert error_of(tmp_path / "none.toml") == f"{tmp_path / 'none.toml'}: file not found"


def test_cli_exits_2_with_one_message_naming_file_and_field(tmp_path, model_dir):
    path = write(tmp_path, model_dir, broker={"max_inflight": "1000"})
    r = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path}: broker.max_inflight:" in lines[0] and "Traceback" not in r.stderr


def test_example_files_are_valid():
    demo = tomlconfig.load(ROOT / "firmware_config/kiosk.demo.toml", KioskConfig)
    assert demo.camera.source == "replay" and demo.broker.url == "mqtt://127.0.0.1:1883"
    assert str(demo.data_dir) == "var/kiosk" and demo.web.host == "127.0.0.1"
    pi = tomlconfig.load(ROOT / "firmware_config/kiosk.pi.toml", KioskConfig)
    assert pi.camera.source == "picamera2" and pi.broker.tls
    assert all(str(p).startswith("/etc/dermkiosk/") for p in (pi.broker.ca_file, pi.broker.cert_file,
                                                                pi.broker.key_file))
    assert str(pi.data_dir) == "/var/lib/dermkiosk"
