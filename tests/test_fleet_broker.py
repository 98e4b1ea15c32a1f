"""Presence and health over a real Mosquitto with real kiosk processes (`python -m edge run`).

A kiosk killed with SIGKILL shows offline (its last will) at the centre at once (the socket closes),
a silent one (SIGSTOP, as a power cut or a dead network) after the broker's keep-alive timeout
(1.5 x keep-alive by MQTT; Mosquitto 2.0.11 checks coarsely: about 2.3 x measured);
a stalled kiosk (SIGSTOP) shows stale by last-seen long before that, and online again when resumed;
the offline alert fires and clears. The kiosk also speaks sd_notify (READY, WATCHDOG) to a socket
bound here as $NOTIFY_SOCKET, and stops pinging the watchdog while stalled.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dashboard import fleet
from dashboard.alerts import FleetConfig, evaluate, presence
from dashboard.ingest import Ingest
from dashboard.store import Store
from tests.broker import free_port
from tests import polling
from tests.centre import centre_config

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "lesion"
pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no shipped model")


wait_for = functools.partial(polling.wait_for, timeout=30.0, step=0.1)


def kiosk_toml(tmp_path: Path, broker, device: str, keepalive: int) -> Path:
    path = tmp_path / f"{device}.toml"
    path.write_text(f"""
device_id = "{device}"
site = "hub-f"
model_dir = "{MODEL_DIR}"
data_dir = "{tmp_path / device}"
classifier_threads = 1
[broker]
url = "{broker.url}"
keepalive = {keepalive}
reconnect_min_s = 0.2
reconnect_max_s = 1
[camera]
source = "replay"
[camera.replay]
width = 640
height = 480
[web]
port = {free_port()}
[retention]
min_free_mb = 0
[health]
interval_s = 1
""")
    return path


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's notification socket."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))
            except (socket.timeout, BlockingIOError):
                return [m for _, m in self.messages]

    def close(self) -> None:
        self.sock.close()


def start_kiosk(cfg: Path, notify: NotifySocket | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if notify:
        env.update(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="2000000")   # ping at least every second
    return subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def centre(broker, tmp_path):
    cfg = centre_config(tmp_path, broker)
    ing = Ingest(cfg).start()
    assert ing.wait_ready(10)
    store = Store(cfg.storage.database, cfg.storage.images_dir)
    yield store
    store.close()
    ing.stop()


def unsynced(d) -> set[str]:
    """The alerts a healthy kiosk may have here: its clock is not NTP-synchronised on this machine, and
    (a test kiosk, never calibrated) its quality gate runs on the built-in reference."""
    out = {"clock-sync"} if d.health is not None and d.health.clock_synced is False else set()
    return out | ({"calibration"} if d.health is not None and d.health.calibration == "" else set())


def state_of(store, device: str):
    return next((d for d in fleet.device_states(store) if d.device == device), None)


def test_sigkill_shows_offline_by_last_will_within_keepalive(broker, centre, tmp_path):
    keepalive = 5
    notify = NotifySocket(tmp_path / "notify.sock")
    proc = start_kiosk(kiosk_toml(tmp_path, broker, "kiosk-kill", keepalive), notify)
    try:
        d = wait_for(lambda: (s := state_of(centre, "kiosk-kill")) and s.state == "online" and s.health and s)
        h = d.health
        assert h.model_version and h.software_version and h.camera_connected and h.link_connected
        assert h.interval_s == 1 and abs(d.skew_s) < 2 and h.outbox_depth == 0
        assert h.disk_free_mb > 0 and h.mem_total_mb > 0 and h.uptime_s > 0
        wait_for(lambda: "READY=1" in "\n".join(notify.drain()))
        wait_for(lambda: sum(m == "WATCHDOG=1" for m in notify.drain()) >= 2, timeout=10)
        t = FleetConfig(offline_after_s=2)
        assert {a.code for a in evaluate(d, datetime.now(timezone.utc), t)} <= unsynced(d)

        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        d = wait_for(lambda: (s := state_of(centre, "kiosk-kill")) and s.state == "offline" and s,
                     timeout=keepalive * 1.5 + 5)
        took = time.monotonic() - killed
        print(f"\nSIGKILL -> offline at the centre after {took:.1f} s (keep-alive {keepalive} s)")
        assert took <= keepalive * 1.5 + 2
        now = datetime.now(timezone.utc)
        assert presence(d, now, t) == "offline"
        time.sleep(2.1)
        assert "offline" in {a.code for a in evaluate(state_of(centre, "kiosk-kill"), datetime.now(timezone.utc), t)}

        proc = start_kiosk(kiosk_toml(tmp_path, broker, "kiosk-kill", keepalive))   # back: the alert clears
        d = wait_for(lambda: (s := state_of(centre, "kiosk-kill")) and s.state == "online" and s)
        assert not [a for a in evaluate(d, datetime.now(timezone.utc), t) if a.code == "offline"]

        # SIGKILL closes the socket, so the broker sends the will at once. A power cut or a dead
        # network does not: then the broker's keep-alive timeout (1.5 x keep-alive) sends it.
        proc.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        wait_for(lambda: (s := state_of(centre, "kiosk-kill")) and s.state == "offline", timeout=keepalive * 3 + 5)
        took = time.monotonic() - frozen
        print(f"silent kiosk (SIGSTOP) -> offline by last will after {took:.1f} s (keep-alive {keepalive} s)")
        # MQTT: the broker drops a silent client after 1.5 x keep-alive; Mosquitto 2.0.11 checks
        # keep-alives coarsely, measured 11-12 s here for 5 s. Never before the keep-alive itself.
        assert keepalive <= took <= keepalive * 3 + 3
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(10)
        notify.close()


def test_stalled_kiosk_shows_stale_by_last_seen_then_recovers(broker, centre, tmp_path):
    notify = NotifySocket(tmp_path / "notify.sock")
    proc = start_kiosk(kiosk_toml(tmp_path, broker, "kiosk-stall", keepalive=60), notify)
    t = FleetConfig(stale_after_s=3, offline_after_s=4)
    try:
        wait_for(lambda: (s := state_of(centre, "kiosk-stall")) and s.health and s.state == "online")
        wait_for(lambda: "WATCHDOG=1" in notify.drain())
        proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        d = wait_for(lambda: (s := state_of(centre, "kiosk-stall"))
                     and presence(s, datetime.now(timezone.utc), t) == "stale" and s, timeout=15)
        took = time.monotonic() - stopped
        print(f"\nSIGSTOP -> stale at the centre after {took:.1f} s (stale_after_s {t.stale_after_s})")
        assert d.state == "online"                 # the broker still holds its session: no last will yet
        notify.drain()
        n_before = len(notify.messages)
        time.sleep(2.5)
        assert len(notify.drain()) == n_before     # no watchdog ping while stalled: systemd would restart it
        assert "offline" in {a.code for a in evaluate(state_of(centre, "kiosk-stall"), datetime.now(timezone.utc), t)}
        proc.send_signal(signal.SIGCONT)
        d = wait_for(lambda: (s := state_of(centre, "kiosk-stall"))
                     and presence(s, datetime.now(timezone.utc), t) == "online" and s, timeout=15)
        assert {a.code for a in evaluate(d, datetime.now(timezone.utc), t)} <= unsynced(d)
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(10)
        notify.close()


def test_ingest_and_dashboard_speak_sd_notify(broker, tmp_path):
    toml = tmp_path / "centre.toml"
    toml.write_text(f"""
[broker]
url = "{broker.url}"
client_id = "ingest-notify"
[storage]
database = "{tmp_path / 'c.db'}"
images_dir = "{tmp_path / 'images'}"
quarantine_dir = "{tmp_path / 'q'}"
[web]
port = {free_port()}
secret_key_file = "{tmp_path / 'secret'}"
""")
    for command in ("ingest", "serve"):
        notify = NotifySocket(tmp_path / f"{command}.sock")
        env = {**os.environ, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"}
        proc = subprocess.Popen([sys.executable, "-m", "dashboard", command, "--config", str(toml)], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: any(m.startswith("READY=1") for m in notify.drain()), timeout=20)
            wait_for(lambda: sum(m == "WATCHDOG=1" for m in notify.drain()) >= 2, timeout=10)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
            assert "STOPPING=1" in notify.drain()
        finally:
            if proc.poll() is None:
                proc.kill()
            notify.close()
