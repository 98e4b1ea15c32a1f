"""The systemd units in systemd/: `systemd-analyze verify` passes, and the hardening is what we promise.

`systemd-analyze verify` checks that ExecStart's binary exists, so each unit is verified from a
copy whose /opt/dermkiosk/venv/bin/python points at an executable made by the test.  It exits 0
even for unknown keys or bad values (it only warns), so any output counts as a failure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT_DIR = ROOT / "systemd"
UNITS = sorted(UNIT_DIR.glob("*.service"))
VENV_PYTHON = "/opt/dermkiosk/venv/bin/python"
EXPECTED = {"dermkiosk-kiosk.service", "dermkiosk-ingest@.service", "dermkiosk-dashboard.service"}


def as_instance(name: str) -> str:
    """A template unit's file name as its first instance (``x@.service`` -> ``x@1.service``): what systemd runs."""
    return name.replace("@.", "@1.")


def systemd_analyze() -> str:
    """Path of systemd-analyze (`make test` installs it with apt where it is missing)."""
    exe = shutil.which("systemd-analyze")
    if not exe:
        pytest.fail("systemd-analyze is not installed: run `make test`, which installs it with apt")
    return exe


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Parse a unit file into {section: {key: [values in order]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: key outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def verify(unit_text: str, name: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run `systemd-analyze verify` on ``unit_text`` with ExecStart's python made to exist."""
    fake_python = tmp_path / "venv-python"
    fake_python.write_text("#!/bin/sh\nexit 0\n")
    fake_python.chmod(0o755)
    unit = tmp_path / as_instance(name)
    unit.write_text(unit_text.replace(VENV_PYTHON, str(fake_python)))
    return subprocess.run([systemd_analyze(), "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)


def test_all_units_are_there():
    assert {u.name for u in UNITS} == EXPECTED


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verify_is_clean(unit, tmp_path):
    result = verify(unit.read_text(), unit.name, tmp_path)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and output == "", output


def test_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt value and an unknown key are reported."""
    text = (UNIT_DIR / "dermkiosk-kiosk.service").read_text()
    text = text.replace("Type=notify", "Type=notifyy").replace("[Install]", "[Install]\nWantedByy=x")
    result = verify(text, "dermkiosk-kiosk.service", tmp_path)
    output = result.stdout + result.stderr
    assert "notifyy" in output and "WantedByy" in output


def exposure(unit_text: str, name: str, tmp_path: Path) -> float:
    """`systemd-analyze security --offline` exposure level of a unit (0 best, 10 worst)."""
    fake_python = tmp_path / "venv-python"
    fake_python.write_text("#!/bin/sh\nexit 0\n")
    fake_python.chmod(0o755)
    unit = tmp_path / as_instance(name)
    unit.write_text(unit_text.replace(VENV_PYTHON, str(fake_python)))
    out = subprocess.run([systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
                         capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", out)
    assert m, out
    return float(m.group(1))


MAX_EXPOSURE = 2.0


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_security_exposure_is_low(unit, tmp_path):
    assert exposure(unit.read_text(), unit.name, tmp_path) <= MAX_EXPOSURE


def test_security_check_catches_an_unhardened_unit(tmp_path):
    keep = ("[", "Description", "Type", "ExecStart", "User", "Group")
    text = "\n".join(line for line in (UNIT_DIR / "dermkiosk-ingest@.service").read_text().splitlines()
                     if line.startswith(keep))
    assert exposure(text, "dermkiosk-ingest@.service", tmp_path) > MAX_EXPOSURE


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_runs_as_a_watched_hardened_service(unit):
    s = parse_unit(unit)["Service"]
    one = {k: v[-1] for k, v in s.items()}
    assert one["Type"] == "notify"
    assert int(one["WatchdogSec"]) > 0
    assert one["Restart"] == "on-failure"
    assert one["User"] == "dermkiosk" and one.get("DynamicUser", "no") == "no"
    assert one["NoNewPrivileges"] == "yes"
    assert one["ProtectSystem"] == "strict"
    assert one["ProtectHome"] == "yes"
    assert one["PrivateTmp"] == "yes"
    assert "/var/lib/dermkiosk" in one["ReadWritePaths"].split()
    assert one["StandardOutput"] == "journal" and one["StandardError"] == "journal"
    assert one["ExecStart"].startswith(VENV_PYTHON + " -m ")
    assert "--config /etc/dermkiosk/" in one["ExecStart"]


def test_kiosk_reaches_the_camera_without_private_devices():
    s = parse_unit(UNIT_DIR / "dermkiosk-kiosk.service")["Service"]
    assert "PrivateDevices" not in s, "PrivateDevices= would hide /dev/video*"
    assert "video" in s["SupplementaryGroups"][-1].split()
    allowed = {v.split()[0] for v in s["DeviceAllow"]}
    assert {"char-video4linux", "char-media", "char-dma_heap"} <= allowed
    assert s["DevicePolicy"][-1] == "closed"
    assert "-m edge run" in s["ExecStart"][-1]


def test_centre_units_run_the_right_commands():
    ingest = parse_unit(UNIT_DIR / "dermkiosk-ingest@.service")
    web = parse_unit(UNIT_DIR / "dermkiosk-dashboard.service")
    assert "-m dashboard ingest --config" in ingest["Service"]["ExecStart"][-1]
    assert ingest["Service"]["ExecStart"][-1].endswith(" --instance %i")  # dermkiosk-ingest@N: process N
    assert "-m dashboard serve --config" in web["Service"]["ExecStart"][-1]
    assert "mosquitto.service" in ingest["Unit"]["After"][-1].split()
