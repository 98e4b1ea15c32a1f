"""demo.py (`make run`): ports, generated configs, and the whole demo started, watched and stopped.

The end-to-end tests start demo.py as a real subprocess on free ports with its own state folder:
a real Mosquitto, the real ingest, dashboard and kiosk commands.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import demo
from tests.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
from tests.web import CHROMIUM_ARGS  # noqa: E402


# ---------------------------------------------------------------- units

keys = st.text(min_size=1, max_size=12)
scalars = (st.integers(-2**63, 2**63 - 1) | st.booleans() | st.text(max_size=30)
           | st.floats(allow_nan=False))
tables = st.recursive(st.dictionaries(keys, scalars | st.lists(scalars, max_size=4), max_size=5),
                      lambda inner: st.dictionaries(keys, inner | st.lists(inner, min_size=1, max_size=3),
                                                    max_size=4),
                      max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(tables)
def test_toml_dumps_round_trips(data):
    assert tomllib.loads(demo.toml_dumps(data)) == data


def test_choose_port_keeps_a_free_port_and_moves_off_a_busy_one():
    port = free_port()
    assert demo.choose_port(port, explicit=False, what="x", taken=set()) == port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        other = demo.choose_port(busy, explicit=False, what="x", taken=set())
        assert other != busy and demo.port_is_free(other)
        with pytest.raises(demo.DemoError, match=f"port {busy} is already in use"):
            demo.choose_port(busy, explicit=True, what="x", taken=set())
    # A port given to another part of this run is not handed out twice.
    assert demo.choose_port(port, explicit=False, what="x", taken={port}) != port


def test_broker_conf_gets_port_and_absolute_persistence(tmp_path):
    template = demo.BROKER_TEMPLATE.read_text()
    assert demo.broker_template_port(template) == 8883
    conf = demo.broker_conf(template, 23456, tmp_path)
    assert re.search(r"^listener 23456 127\.0\.0\.1$", conf, re.M)
    assert f"persistence_location {tmp_path}/broker/" in conf
    assert ("user root" in conf) == (os.geteuid() == 0)
    assert "8883" not in re.sub(r"#.*", "", conf)
    # TLS only, certificates from the run's PKI.
    pki = tmp_path / "demo" / "pki"
    for line in ("cafile {p}/ca.crt", "certfile {p}/broker.crt", "keyfile {p}/broker.key", "crlfile {p}/crl.pem",
                 "require_certificate true", "use_identity_as_username true", "allow_anonymous false"):
        assert re.search(rf"^{re.escape(line.format(p=pki))}$", conf, re.M), line
    # Access rules: the dynamic-security plugin, its file in the run's broker folder.
    assert re.search(rf"^plugin_opt_config_file {re.escape(str(tmp_path))}/broker/dynamic-security\.json$", conf, re.M)
    assert not re.search(r"^acl_file", conf, re.M)


def test_broker_urls_and_web_port_are_patched():
    assert demo.with_broker_port("mqtt://127.0.0.1:1883", 5) == "mqtt://127.0.0.1:5"
    assert demo.with_broker_port("mqtt://localhost", 5) == "mqtt://localhost:5"
    assert demo.with_broker_port("mqtts://centre.example:8883", 5) == "mqtts://centre.example:8883"
    cfg = {"broker": {"url": "mqtt://127.0.0.1:1883"}, "web": {"host": "127.0.0.1", "port": 8080},
           "other": {"port": 1}}
    assert demo.patch(cfg, 7, 9) == {"broker": {"url": "mqtt://127.0.0.1:7"},
                                     "web": {"host": "127.0.0.1", "port": 9}, "other": {"port": 1}}


def test_relative_paths_go_to_the_state_folder_or_the_repository(tmp_path):
    out = demo.plain({"a": Path("var/centre/db"), "b": Path("models/lesion"), "c": Path("/abs"),
                      "d": None, "e": [Path("var")]}, tmp_path)
    assert out == {"a": str(tmp_path / "centre/db"), "b": str(ROOT / "models/lesion"), "c": "/abs",
                   "e": [str(tmp_path)]}


# ---------------------------------------------------------------- the whole demo

def procs_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose command line contains ``text``."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append((int(d.name), cmd))
    return found


class DemoProcess:
    """demo.py as a subprocess; its output lines are collected by a thread."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.ports = {"broker": free_port(), "dashboard": free_port(), "kiosk": free_port()}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "demo.py"), "--state-dir", str(state_dir),
             "--broker-port", str(self.ports["broker"]), "--dashboard-port", str(self.ports["dashboard"]),
             "--kiosk-port", str(self.ports["kiosk"]), "--max-restarts", "2",
             "--probe-interval", "0.5", "--probe-failures", "3"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.lines: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """Wait for an output line matching ``pattern``."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if m := re.search(pattern, line):
                return m
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self._q.empty():
                    break
                continue
            self.lines.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r} in {timeout} s; output:\n" + "\n".join(self.lines)
                             + "\n" + self.logs())

    def logs(self) -> str:
        """The workers' log files, for failure messages."""
        out = []
        for log in sorted((self.state_dir / "demo" / "logs").glob("*.log")):
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(out)

    def kill(self) -> None:
        """Clean-up after a failed test: kill demo.py and anything it left."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid, _ in procs_mentioning(str(self.state_dir)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def http_status(url: str) -> int:
    """HTTP status of a GET."""
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status


def submit_a_case(kiosk_url: str) -> None:
    """Walk a one-lesion referral through the kiosk page by touch as the demo photographer (real Chromium)."""
    from playwright.sync_api import sync_playwright

    from demokit.accounts import DEMO_PIN, DEMO_STAFF
    from tests.appointment_kit import synthetic_nhs_number
    from tests.kiosk_walk import KioskWalk, LesionEntry, PatientEntry

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 800, "height": 480}, has_touch=True).new_page()
            walk = KioskWalk(page, kiosk_url)
            result = walk.referral_walk(DEMO_STAFF[0], DEMO_PIN, PatientEntry(nhs_number=synthetic_nhs_number(9)),
                                        [LesionEntry("front", "arm-left")])
            assert "Referral saved" in result["final"], result["final"]
        finally:
            browser.close()


def wait_cases(dash_url: str, n: int, d: DemoProcess, timeout: float = 30) -> None:
    """Wait until the dashboard's /healthz counts ``n`` cases."""
    deadline = time.monotonic() + timeout
    while (got := json.load(urllib.request.urlopen(dash_url + "healthz", timeout=10))["cases"]) < n:
        assert time.monotonic() < deadline, f"{got} of {n} cases reached the dashboard\n" + d.logs()
        time.sleep(0.3)
    assert got == n


def wait_gone(text: str, timeout: float) -> list[tuple[int, str]]:
    """Wait until no process mentions ``text``; return those still there."""
    deadline = time.monotonic() + timeout
    while (left := procs_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def demo_run(tmp_path):
    d = DemoProcess(tmp_path / "state")
    yield d
    d.kill()


def test_demo_runs_a_case_end_to_end_restarts_a_crashed_worker_and_stops_cleanly(demo_run):
    d = demo_run
    kiosk_url = d.wait_for(r"kiosk page:\s+(http://\S+)", 90).group(1)
    dash_url = d.wait_for(r"dashboard:\s+(http://\S+)", 5).group(1)
    assert kiosk_url == f"http://127.0.0.1:{d.ports['kiosk']}/"
    assert dash_url == f"http://127.0.0.1:{d.ports['dashboard']}/"
    assert http_status(kiosk_url) == 200
    assert http_status(dash_url) == 200
    d.wait_for(r"log-in:", 5)
    seeded = int(d.wait_for(r"seeded \d+ demo referrals \((\d+) cases\)", 5).group(1))

    # A newcomer's first case: started, captured and submitted on the kiosk page, it reaches the
    # dashboard through this run's broker and ingest.
    submit_a_case(kiosk_url)
    wait_cases(dash_url, seeded + 1, d)

    # The generated configs point at this run's broker and keep data in the state folder.
    centre = tomllib.loads((d.state_dir / "demo" / "centre.toml").read_text())
    assert centre["broker"]["url"] == f"mqtts://127.0.0.1:{d.ports['broker']}"
    kiosk = tomllib.loads((d.state_dir / "demo" / "kiosk.toml").read_text())
    assert kiosk["broker"]["url"] == f"mqtts://127.0.0.1:{d.ports['broker']}"
    assert Path(kiosk["broker"]["cert_file"]) == d.state_dir / "demo" / "pki" / "kiosks" / f"{kiosk['device_id']}.crt"
    assert Path(centre["broker"]["cert_file"]) == d.state_dir / "demo" / "pki" / "ingest.crt"
    assert centre["storage"]["database"].startswith(str(d.state_dir))
    assert (d.state_dir / "broker").is_dir()

    running = procs_mentioning(str(d.state_dir))
    names = " ".join(cmd for _, cmd in running)
    for part in ("mosquitto", "dashboard ingest", "dashboard serve", "edge run"):
        assert part in names, names

    # Watchdog: a crashed ingest is started again.
    ingest_pid = int(d.wait_for(r"started ingest \(pid (\d+)\)", 5).group(1))
    os.kill(ingest_pid, signal.SIGKILL)
    new_pid = int(d.wait_for(r"restarted ingest \(pid (\d+)\)", 15).group(1))
    assert new_pid != ingest_pid
    assert any(pid == new_pid for pid, _ in procs_mentioning(str(d.state_dir)))
    # ... and the restarted ingest works: a second case arrives.
    submit_a_case(kiosk_url)
    wait_cases(dash_url, seeded + 2, d)

    # Watchdog: a hung dashboard (stopped, so it still runs but never answers) is replaced.
    dash_pid = int(d.wait_for(r"started dashboard \(pid (\d+)\)", 5).group(1))
    os.kill(dash_pid, signal.SIGSTOP)
    d.wait_for(r"dashboard did not answer 3 probes: restarting", 20)
    new_dash = int(d.wait_for(r"restarted dashboard \(pid (\d+)\)", 20).group(1))
    assert new_dash != dash_pid
    deadline = time.monotonic() + 20
    while True:
        try:
            assert http_status(dash_url) == 200
            break
        except OSError:
            assert time.monotonic() < deadline, d.logs()
            time.sleep(0.2)
    assert not Path(f"/proc/{dash_pid}").exists() or "Z" in Path(f"/proc/{dash_pid}/stat").read_text().split()[2]

    # Ctrl-C: everything stops, in reverse order, and the launcher exits 0.
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(60) == 0, "\n".join(d.lines)
    d.wait_for(r"\[demo\] stopped", 5)
    order = [m.group(1) for line in d.lines if (m := re.search(r"stopping (\w+)", line))]
    from demokit.pacs import orthanc_binary

    pacs = ["pacs"] if orthanc_binary() else []  # the hospital's PACS (Orthanc), where installed
    assert order == ["kiosk", "dashboard", *pacs, "ingest", "broker"]
    assert wait_gone(str(d.state_dir), 5) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", d.ports["broker"]), timeout=1).close()


def test_children_die_with_a_killed_launcher(demo_run):
    d = demo_run
    d.wait_for(r"kiosk page:", 90)
    assert len(procs_mentioning(str(d.state_dir))) >= 4
    d.proc.kill()
    d.proc.wait(10)
    assert wait_gone(str(d.state_dir), 15) == []
