"""End to end: kiosk (replay camera, real model, outbox, link) -> Mosquitto -> centre ingest -> SQLite.

Real broker, the real centre ingest (dashboard.ingest), the real kiosk service and CLI. Checks:
all N cases in the centre's database with identical image hashes, each acknowledged, the
kiosk outbox empty; and the same when the broker restarts mid-flow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from wire.codec import sha256_hex

ROOT = Path(__file__).resolve().parents[1]
#: The shipped model; DERMKIOSK_TEST_MODEL_DIR tries another (a candidate model) instead.
MODEL_DIR = Path(os.environ.get("DERMKIOSK_TEST_MODEL_DIR", ROOT / "models" / "lesion"))

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(),
                                reason="no model in models/lesion yet")


@pytest.fixture
def centre(tmp_path, broker):
    """The real ingest, in-process, on the test broker; yields (ingest, store factory)."""
    from tests.centre import centre_config
    from dashboard.ingest import Ingest
    from dashboard.store import Store

    cfg = centre_config(tmp_path / "centre", broker, "e2e-ingest")
    ingest = Ingest(cfg).start()
    assert ingest.wait_ready(15), "ingest did not subscribe"

    def store():
        return Store(cfg.storage.database, cfg.storage.images_dir, cfg.storage.quarantine_dir)

    yield ingest, store
    ingest.stop()


def kiosk_toml(tmp_path: Path, broker, **extra) -> Path:
    """A kiosk config for the test broker, replay camera with small generated images."""
    path = tmp_path / "kiosk.toml"
    path.write_text(f"""
device_id = "kiosk-e2e"
site = "hub-test"
model_dir = "{MODEL_DIR}"
data_dir = "{tmp_path / 'kiosk'}"
classifier_threads = 1
[broker]
url = "{broker.url}"
reconnect_min_s = 0.2
reconnect_max_s = 1.0
max_inflight = {extra.get('max_inflight', 4)}
[camera]
source = "replay"
[camera.replay]
width = 800
height = 600
seed = {extra.get('seed', 1)}
[capture]
demo_views = ["dermoscopic", "close-up", "regional"]
[retention]
min_free_mb = 0
[web]
port = {extra.get('web_port', 8080)}
""")
    return path


def check_centre(store_factory, expected: dict[str, list[str]]) -> None:
    """Every expected case is in the centre exactly once with the same image hashes and bytes."""
    store = store_factory()
    try:
        assert store.count_cases() == len(expected)
        for case_id, shas in expected.items():
            header, images = store.load_case(case_id)
            assert [m.sha256 for m in header.images] == shas
            assert [sha256_hex(b) for b in images] == shas
            assert header.classification is not None and header.images[0].view == "dermoscopic"
    finally:
        store.close()


def check_outbox_empty(data_dir: Path, n: int) -> None:
    """All n cases acknowledged (stored/duplicate), purged, images gone."""
    from edge.outbox import Outbox

    ob = Outbox(data_dir)
    try:
        counts = ob.counts()
        assert counts["purged"] == n and ob.queue_depth() == 0 and counts["rejected"] == 0, counts
        assert all(c.reason in ("stored", "duplicate") for c in ob.cases(("purged",)))
        assert list(ob.images_dir.iterdir()) == []
    finally:
        ob.close()


def test_capture_demo_cli_delivers_every_case(tmp_path, broker, centre):
    ingest, store = centre
    n = 5
    conf = kiosk_toml(tmp_path, broker)
    r = subprocess.run([sys.executable, "-m", "edge", "capture-demo", "--config", str(conf),
                        "--cases", str(n), "--wait", "60"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    expected = {x["case_id"]: [im["sha256"] for im in x["images"]] for x in lines}
    assert len(expected) == n and all(len(v) == 3 for v in expected.values())
    assert [x["seq"] for x in lines] == sorted(x["seq"] for x in lines)
    check_centre(store, expected)
    check_outbox_empty(tmp_path / "kiosk", n)
    # no patient identifier in the kiosk's log lines or file names
    assert "DEMO-0" not in r.stderr
    assert not any("DEMO-" in p.name for p in tmp_path.rglob("*"))


def test_broker_restart_mid_flow_all_arrive_once(tmp_path, broker, centre):
    from edge.config import load
    from edge.service import KioskService

    ingest, store = centre
    n = 10
    cfg = load(kiosk_toml(tmp_path, broker, max_inflight=2, seed=7))
    expected: dict[str, list[str]] = {}
    with KioskService(cfg) as kiosk:
        def capture_all():
            for i in range(n):
                h = kiosk.capture_case(f"REF-{i}", "L1", "anterior torso", ["dermoscopic", "close-up"])
                expected[str(h.case_id)] = [m.sha256 for m in h.images]

        t = threading.Thread(target=capture_all)
        t.start()
        deadline = time.monotonic() + 60
        while kiosk.outbox.counts()["purged"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        broker.restart()                    # mid-flow: cases captured, queued, in flight
        t.join(120)
        deadline = time.monotonic() + 60
        while (len(expected) < n or kiosk.outbox.queue_depth()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert kiosk.link.stats.connects >= 2
    check_centre(store, expected)
    check_outbox_empty(tmp_path / "kiosk", n)


def test_kiosk_process_killed_with_cases_in_flight_resumes_exactly_once(tmp_path, broker, centre):
    """kill -9 of `python -m edge run` while cases wait for the centre; the restarted kiosk finishes them."""
    import signal
    import urllib.request

    from tests.broker import free_port

    from tests.link_kit import announce

    ingest, store = centre
    ingest.stop()                                   # the centre is away: cases stay sent/queued
    # ... without a presence of its own (as a centre before the presence topic), so that the kiosk
    # publishes and the kill catches cases in flight (test_link covers a kiosk holding them).
    announce(broker, None, ingest.config.broker.client_id)
    n = 4
    port = free_port()
    conf = kiosk_toml(tmp_path, broker, web_port=port, seed=11)

    def start_kiosk():
        proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(conf)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert line.startswith("kiosk page: http://127.0.0.1:"), proc.stderr.read()[-2000:]
        return proc

    kiosk = start_kiosk()
    try:
        r = subprocess.run([sys.executable, "-m", "edge", "capture-demo", "--config", str(conf), "--cases", str(n),
                            "--views", "dermoscopic"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        expected = {x["case_id"]: [im["sha256"] for im in x["images"]]
                    for x in map(json.loads, r.stdout.splitlines())}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:          # the running kiosk picks the new cases up
            status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=5).read())
            if status["counts"]["sent"] >= 1:
                break
            time.sleep(0.1)
        assert status["counts"]["sent"] >= 1 and status["queue_depth"] == n
        kiosk.send_signal(signal.SIGKILL)
        kiosk.wait(10)
        ingest.start()                              # the centre comes back (its session kept the cases)
        assert ingest.wait_ready(15)
        kiosk = start_kiosk()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=5).read())
            if status["queue_depth"] == 0:
                break
            time.sleep(0.2)
        assert status["queue_depth"] == 0, status
        kiosk.send_signal(signal.SIGTERM)           # clean stop: exit 0
        assert kiosk.wait(20) == 0
    finally:
        if kiosk.poll() is None:
            kiosk.kill()
    check_centre(store, expected)
    check_outbox_empty(tmp_path / "kiosk", n)
