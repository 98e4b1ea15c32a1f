""".ci/run and the Makefile: CI fails when tests fail or none ran; no browser download anywhere.

.ci/run is run from a copy with a stand-in `make` first on PATH that prints a given pytest summary
and exits with a given status.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_ci(tmp_path: Path, output: str, status: int) -> subprocess.CompletedProcess:
    """Run a copy of .ci/run whose `make` prints ``output`` and exits ``status``."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "make").write_text(f"#!/bin/sh\n[ \"$1\" = test ] || exit 99\ncat <<'EOF'\n{output}\nEOF\n"
                               f"exit {status}\n")
    (fake / "make").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
    return subprocess.run(["bash", str(tmp_path / ".ci" / "run")], env=env, capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("output,status,ok", [
    ("........\n8 passed in 3.21s", 0, True),
    ("....s\n4 passed, 1 skipped in 1.00s", 0, True),
    ("..F\nFAILED tests/test_x.py::test_y\n1 failed, 2 passed in 1.50s", 2, False),
    ("no tests ran in 0.01s\nmake: *** [Makefile:1: test] Error 5", 2, False),
    ("make: *** [Makefile:1: venv] Error 1", 2, False),
    ("3 deselected in 0.02s", 0, False),   # exit 0 yet nothing ran
])
def test_ci_run_fails_exactly_when_tests_fail_or_none_ran(tmp_path, output, status, ok):
    result = run_ci(tmp_path, output, status)
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    assert output.splitlines()[-1] in result.stdout  # the test output is shown


def test_nothing_downloads_a_browser():
    for f in (ROOT / "Makefile", ROOT / ".ci" / "run"):
        text = re.sub(r"#.*", "", f.read_text())
        assert "playwright install" not in text, f
    assert "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1" in (ROOT / "Makefile").read_text()


def test_make_knows_every_documented_target():
    targets = ["venv", "deps-apt", "run", "test", "model", "bench", "install-kiosk", "install-centre",
               "clean"]
    for t in targets:
        r = subprocess.run(["make", "-n", "-C", str(ROOT), t], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"make -n {t}: {r.stderr}"
    test_cmds = subprocess.run(["make", "-n", "-C", str(ROOT), "test"], capture_output=True, text=True,
                               timeout=30).stdout
    assert ".venv/bin/python -m pytest -q" in test_cmds
    assert "chromium" in test_cmds and "systemd-analyze" in test_cmds and "mosquitto" in test_cmds
