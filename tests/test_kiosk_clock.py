"""A kiosk whose clock is far off (and jumps): ordering follows seq, the centre shows its own
received time and marks the kiosk's times as "kiosk clock", and the fleet page shows the skew.

The wrong clock is every ``datetime.now()`` of the kiosk's code (service, camera, outbox, link,
health): the ``datetime`` name in each ``edge`` module is replaced by a subclass that adds an
offset. Real broker, real kiosk service with its link and health reports, real ingest, the real
dashboard pages.
"""

from __future__ import annotations

import re
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

import edge.camera.replay  # noqa: F401  (every edge module that reads the clock is loaded first)
import edge.health  # noqa: F401
import edge.link  # noqa: F401
import edge.outbox  # noqa: F401
import edge.service  # noqa: F401
import edge.update  # noqa: F401
from edge.service import KioskService
from tests.dashauth import logged_in
from tests.test_kiosk_service import MODEL_DIR, config

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")

AHEAD = timedelta(days=1000, hours=5)     # the kiosk thinks it is about three years later
BEHIND = timedelta(days=-400)             # ... and then jumps back, before the real date


class KioskClock(datetime):
    """``datetime`` whose ``now()`` is off by ``offset`` (the kiosk's wrong clock)."""

    offset = timedelta(0)

    @classmethod
    def now(cls, tz=None):
        return datetime.now(tz) + cls.offset


@pytest.fixture
def kiosk_clock(monkeypatch):
    """Make every edge module read the wrong clock; yields the class to move it."""
    for name, mod in list(sys.modules.items()):
        if (name == "edge" or name.startswith("edge.")) and getattr(mod, "datetime", None) is datetime:
            monkeypatch.setattr(mod, "datetime", KioskClock)
    KioskClock.offset = AHEAD
    yield KioskClock
    KioskClock.offset = timedelta(0)


def test_wrong_kiosk_clock_keeps_order_and_the_centre_shows_its_own_time(kiosk_clock, broker, tmp_path):
    from dashboard import create_app
    from tests.centre import centre_config
    from dashboard.ingest import Ingest
    from dashboard.store import Store

    centre = centre_config(tmp_path / "c", broker, "clock-ingest")
    ingest = Ingest(centre).start()
    assert ingest.wait_ready(15)
    cfg = config(tmp_path, broker={"url": broker.url, "reconnect_min_s": 0.2},
                 camera={"replay": {"width": 640, "height": 480, "seed": 31}}, health={"interval_s": 1})
    from dashboard import registry
    store = Store(centre.storage.database, centre.storage.images_dir)
    try:   # the fleet page lists registered kiosks (an unregistered one is an alert, not a kiosk)
        registry.ensure_schema(store.conn)
        registry.register(store.conn, cfg.device_id, cfg.site, cert_serial="c1", actor="test")
    finally:
        store.close()
    real_start = datetime.now(timezone.utc)
    ids = []
    try:
        with KioskService(cfg) as svc:
            for i, offset in enumerate((AHEAD, BEHIND, AHEAD, timedelta(0))):
                kiosk_clock.offset = offset                 # the clock jumps between cases
                h = svc.capture_case(f"REF-CLK-{i}", "L1", "anterior torso", ["dermoscopic"])
                assert abs(h.created_at - (datetime.now(timezone.utc) + offset)) < timedelta(minutes=1)
                ids.append(str(h.case_id))
                time.sleep(0.05)
            assert [c.case_id for c in svc.outbox.cases(limit=10)] == ids      # seq order = capture order
            kiosk_clock.offset = AHEAD
            deadline = time.monotonic() + 30
            while (svc.outbox.queue_depth() or ingest.stats["health"] == 0) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert svc.outbox.queue_depth() == 0
            time.sleep(1.5)                                 # a health report sent on the wrong clock
    finally:
        ingest.stop()
    real_end = datetime.now(timezone.utc)

    store = Store(centre.storage.database, centre.storage.images_dir)
    try:
        rows = {r["case_id"]: r for r in store.list_cases()}
        assert [rows[i]["seq"] for i in ids] == sorted(rows[i]["seq"] for i in ids)
        for case_id in ids:
            received = datetime.fromisoformat(rows[case_id]["received_at"])
            assert real_start - timedelta(seconds=2) <= received <= real_end + timedelta(seconds=2)
        # the worklist orders by the centre's receive time, not by the kiosk's created_at
        listed = [r["case_id"] for r in store.list_cases() if r["case_id"] in ids]
        assert listed == ids[::-1]
    finally:
        store.close()

    app = create_app({"DATABASE": str(centre.storage.database), "IMAGES_DIR": str(centre.storage.images_dir)})
    doctor = logged_in(app, "dr-clock", "dermatologist")
    html = doctor.get(f"/cases/{ids[0]}").get_data(as_text=True)
    kiosk_year = str((real_start + AHEAD).year)
    received = re.search(r"<dt>Received</dt><dd>([^<]+)</dd>", html).group(1)
    created = re.search(r"<dt>Created</dt><dd>([^<]+)<span class=\"muted\">\(kiosk clock\)</span>", html).group(1)
    assert received.startswith(str(real_start.year)) and created.startswith(kiosk_year)

    it = logged_in(app, "it-clock", "it")
    fleet = it.get("/fleet").get_data(as_text=True)
    section = fleet.split(f'id="kiosk-{cfg.device_id}"')[1].split("</section>")[0]
    skew = float(re.search(r"skew ([+-][0-9.]+) s", section).group(1))
    assert abs(skew - AHEAD.total_seconds()) < 60
    assert 'data-alert="clock"' in section and "ahead" in section
