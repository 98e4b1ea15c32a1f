"""kill -9 of the ingest process in the middle of a stream of cases: after a restart every case is
stored exactly once with identical image hashes (the broker redelivers what was never PUBACKed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from dashboard import sample
from dashboard.store import Store
from tests.polling import wait_for
from tests.test_ingest import Kiosk, retained_presence
from wire import codec

ROOT = Path(__file__).resolve().parents[1]


def start_ingest(cfg: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dashboard", "ingest", "--config", str(cfg),
                             "--log-level", "WARNING"], cwd=ROOT)


def test_kill_9_mid_stream_loses_and_doubles_nothing(broker, tmp_path):
    cfg = tmp_path / "centre.toml"
    cfg.write_text(f'[broker]\nurl = "{broker.url}"\nclient_id = "ingest-kill-test"\n'
                   f'[storage]\ndatabase = "{tmp_path}/centre.db"\nimages_dir = "{tmp_path}/images"\n'
                   f'quarantine_dir = "{tmp_path}/quarantine"\n[web]\nsecret_key_file = "{tmp_path}/secret"\n'
                   '[registry]\nrequire_registration = false\n')  # a made-up kiosk: the registry is tested elsewhere
    kiosk = Kiosk(broker)
    proc = start_ingest(cfg)
    try:
        warm, warm_frame = sample.make_frame(600, case_id=uuid.uuid4())
        deadline = time.monotonic() + 20
        while True:  # the first run creates the persistent session; until then publish again
            kiosk.publish(warm_frame)
            try:
                if kiosk.ack(timeout=0.5).case_id == warm.case_id:
                    break
            except Exception:
                assert time.monotonic() < deadline, "ingest never answered"
        cases = [sample.make_case(601 + i, case_id=uuid.uuid4(),
                                  images=[sample.make_jpeg(5000 + 3 * i + j, 800, 600) for j in range(3)])
                 for i in range(60)]
        for h, ims in cases:
            kiosk.publish(codec.encode_case(h, ims))
        assert retained_presence(broker, "ingest-kill-test").state == "online"
        acked = set()
        while len(acked) < 8:
            acked.add(kiosk.ack(timeout=20).case_id)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: some stored, some half-written, some not read
        proc.wait(10)
        # the broker publishes the ingest's last will: kiosks hold their cases until it is back
        wait_for(lambda: retained_presence(broker, "ingest-kill-test").state == "offline", timeout=10,
                 what="the ingest's last will")
        proc = start_ingest(cfg)
        want = {h.case_id for h, _ in cases}
        deadline = time.monotonic() + 60
        while not want <= acked:
            assert time.monotonic() < deadline, f"{len(want - acked)} cases never acknowledged"
            acked.add(kiosk.ack(timeout=30).case_id)
        # (the redelivered cases can all be acked before the SUBACK that precedes the announcement)
        wait_for(lambda: retained_presence(broker, "ingest-kill-test").state == "online", timeout=10,
                 what="online again after the restart")
    finally:
        proc.terminate()
        proc.wait(10)
        kiosk.close()
    assert retained_presence(broker, "ingest-kill-test").state == "offline"  # SIGTERM: a clean stop
    store = Store(tmp_path / "centre.db", tmp_path / "images", tmp_path / "quarantine")
    assert store.count_cases() == len(cases) + 1
    assert store.list_quarantine() == []
    for h, ims in cases:
        back, data = store.load_case(h.case_id)
        assert back == h
        assert [codec.sha256_hex(d) for d in data] == [im.sha256 for im in h.images]
    store.close()
