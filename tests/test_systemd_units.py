"""The systemd units in systemd/: `systemd-analyze verify` passes, and the hardening is what we promise.

`systemd-analyze verify` checks that ExecStart's binary exists, so each unit is verified from a
copy whose /opt/dermkiosk/venv/bin/python points at an executable made by the test.  It exits 0
even for unknown keys or bad values (it only warns), so any output counts as a failure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
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


# --- Issue 25: what the hardening added, and that the services' code still runs under it. ---------

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
#: Under the kernel's MemoryDenyWriteExecute (PR_SET_MDWE, Linux >= 6.3): a W+X mapping is refused
#: (so the probe can fail), then the service's own work is done. Exit 77: the kernel lacks it.
MDWE_PROBE = r'''
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({mdwe}, {refuse}, 0, 0, 0) != 0:
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("a writable and executable mapping was allowed: the probe proves nothing")
except PermissionError:
    pass
'''.format(mdwe=PR_SET_MDWE, refuse=PR_MDWE_REFUSE_EXEC_GAIN)
#: The kiosk's heaviest native code: OpenCV and the real TFLite model (LiteRT with XNNPACK).
KIOSK_WORK = r'''
import cv2, numpy as np
from edge.classifier import DEFAULT_MODEL_DIR, Classifier
img = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
cv2.circle(img, (320, 240), 90, (40, 30, 90), -1)
ok, jpeg = cv2.imencode(".jpg", img)
c = Classifier(DEFAULT_MODEL_DIR, threads=2)
r = c.classify_jpeg(jpeg.tobytes())
print("classified", r)
'''
#: The centre's: the ingest and the web app's modules, JPEG decoding, SQLite, scrypt, TLS.
CENTRE_WORK = r'''
import sqlite3, ssl, cv2, numpy as np
import dashboard.ingest, dashboard.views
from werkzeug.security import check_password_hash, generate_password_hash
ok, jpeg = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))
assert cv2.imdecode(jpeg, cv2.IMREAD_COLOR).shape == (64, 64, 3)
db = sqlite3.connect(":memory:"); db.execute("create table t (x)"); db.execute("insert into t values (1)")
assert check_password_hash(generate_password_hash("pw"), "pw")
ssl.create_default_context()
print("centre ok")
'''


def service_directives(name: str) -> dict[str, list[str]]:
    return parse_unit(UNIT_DIR / name)["Service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_units_carry_the_issue_25_hardening(unit):
    s = service_directives(unit.name)
    assert s["UMask"] == ["0077"]
    assert s["MemoryDenyWriteExecute"] == ["yes"]
    assert s["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert s["IPAddressDeny"] == ["any"] and s["IPAddressAllow"] == ["localhost"]
    # PrivateUsers= on the centre; not on the kiosk, whose camera is reached through the video group.
    assert s.get("PrivateUsers") == (None if unit.name == "dermkiosk-kiosk.service" else ["yes"])


@pytest.mark.parametrize("work", ["kiosk", "centre"])
def test_the_services_code_runs_without_writable_executable_memory(work):
    """MemoryDenyWriteExecute=yes: XNNPACK could JIT; the real model classifies under the kernel's MDWE."""
    r = subprocess.run([sys.executable, "-c", MDWE_PROBE + (KIOSK_WORK if work == "kiosk" else CENTRE_WORK)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    if r.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    assert r.returncode == 0, r.stderr[-2000:]
    assert ("classified" if work == "kiosk" else "centre ok") in r.stdout


def denied_syscalls() -> list[str]:
    """The system calls of ~@privileged @resources, as systemd itself lists them (groups expanded)."""
    names: set[str] = set()
    todo, seen = ["@privileged", "@resources"], set()
    while todo:
        group = todo.pop()
        seen.add(group)
        out = subprocess.run([systemd_analyze(), "syscall-filter", group], capture_output=True, text=True,
                             timeout=30).stdout
        for line in out.splitlines()[1:]:
            item = line.strip()
            if not item or item.startswith("#"):
                continue
            if item.startswith("@"):
                if item not in seen:
                    todo.append(item)
            else:
                names.add(item)
    return sorted(names)


@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed")
@pytest.mark.parametrize("work", ["kiosk", "centre"])
def test_the_services_code_works_when_the_filtered_system_calls_fail(work, tmp_path):
    """SystemCallFilter=~@privileged @resources with SystemCallErrorNumber=EPERM, emulated by strace's
    fault injection: every such call fails with EPERM, and the service's work still succeeds.
    (The kiosk's model and OpenCV call mbind(), a NUMA placement hint, and carry on without it.)"""
    calls = denied_syscalls()
    assert {"chown", "setuid", "setrlimit", "sched_setaffinity", "ioprio_set", "mbind"} <= set(calls)
    names = ",".join("?" + c for c in calls)
    trace = tmp_path / "trace"
    r = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e", f"trace={names}",
                        "-e", f"inject={names}:error=EPERM",
                        sys.executable, "-c", KIOSK_WORK if work == "kiosk" else CENTRE_WORK],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    if "PTRACE_TRACEME" in r.stderr or "Operation not permitted" in r.stderr[:500]:
        pytest.skip(f"strace cannot trace here: {r.stderr[:200]}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert ("classified" if work == "kiosk" else "centre ok") in r.stdout
    refused = [line for line in trace.read_text().splitlines() if "EPERM" in line]
    made = [line for line in trace.read_text().splitlines() if "+++" not in line and "---" not in line]
    assert refused == made          # every filtered call the code made was refused, and it coped


def test_strace_sees_a_filtered_call_when_one_is_made(tmp_path):
    """The emulation above is real: os.setpriority (@resources) is refused with EPERM and fails."""
    if not shutil.which("strace"):
        pytest.skip("strace not installed")
    trace = tmp_path / "trace"
    names = ",".join("?" + c for c in denied_syscalls())
    r = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e", f"trace={names}",
                        "-e", f"inject={names}:error=EPERM",
                        sys.executable, "-c", "import os; os.setpriority(os.PRIO_PROCESS, 0, 1)"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "PermissionError" in r.stderr
    assert "setpriority" in trace.read_text() and "EPERM" in trace.read_text()


def test_the_broker_drop_in_allows_the_brokers_and_dns_addresses(tmp_path):
    """systemd/allowed_addresses.py (make install-*): loopback comes from the unit, the rest from the config."""
    conf = tmp_path / "kiosk.toml"
    conf.write_text('[broker]\nurl = "mqtts://localhost:8883"\n[updates.broker]\nurl = "mqtts://192.0.2.7:8883"\n'
                    '[web]\nhost = "127.0.0.1"\n')
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# dhcp\nnameserver 198.51.100.53\nsearch example\n")
    r = subprocess.run([sys.executable, str(UNIT_DIR / "allowed_addresses.py"), str(conf), "--resolv-conf", str(resolv),
                        "--extra", "10.1.0.0/24"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    allow = re.search(r"^IPAddressAllow=(.+)$", r.stdout, re.M).group(1).split()
    assert {"127.0.0.1", "192.0.2.7", "198.51.100.53", "10.1.0.0/24"} <= set(allow)
    conf.write_text('[broker]\nurl = "mqtts://no-such-host.invalid:8883"\n')
    r = subprocess.run([sys.executable, str(UNIT_DIR / "allowed_addresses.py"), str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "no-such-host.invalid" in r.stderr and "BROKER_ADDRESSES" in r.stderr
