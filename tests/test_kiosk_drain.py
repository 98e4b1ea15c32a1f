"""After an outage the backlog drains, and the kiosk page shows its progress (queue depth, drain
rate, time left); real broker, real ingest, real kiosk service and page."""

from __future__ import annotations

import re
import time

import pytest

from edge.link import Link
from edge.service import KioskService
from edge.web import create_app
from tests.test_kiosk_service import MODEL_DIR, config
from tests.test_outbox import jpeg, make_case

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")


def test_drain_rate_counts_only_recent_acks(tmp_path, monkeypatch):
    link = Link.__new__(Link)
    from collections import deque

    link._delivered_log = deque()
    clock = [100.0]
    monkeypatch.setattr("edge.link.acks.time.monotonic", lambda: clock[0])
    assert link.drain_rate() == 0.0
    for i in range(11):                         # 10 cases/s for 10 s
        link._delivered_log.append((90.0 + i, 10 * i))
    assert link.drain_rate() == pytest.approx(10.0)
    clock[0] = 130.0                            # the drain stopped 30 s ago: no rate any more
    assert link.drain_rate() == 0.0


def test_backlog_progress_on_the_page(tmp_path, broker):
    from tests.centre import centre_config
    from dashboard.ingest import Ingest

    centre = centre_config(tmp_path / "c", broker, "drain-ingest")
    ingest = Ingest(centre).start()              # creates the ingest's session, then the centre goes away
    assert ingest.wait_ready(15)
    ingest.stop()
    cfg = config(tmp_path, device_id="kiosk-1", site="site-a",     # test_outbox.make_case's identity
                 broker={"url": broker.url, "reconnect_min_s": 0.2, "max_inflight": 1})
    n = 80
    with KioskService(cfg) as svc:
        for i in range(n):                       # the backlog built up during the outage
            im = jpeg(7000 + i, size=48)
            svc.outbox.submit(make_case([im]), [im])
        svc.link.wake()
        client = create_app(svc).test_client()
        status = client.get("/status.json").get_json()
        assert status["queue_depth"] == n and status["drain"] == {"rate": 0.0, "eta_s": None}
        assert re.search(r'id="drain"\s+hidden', client.get("/").get_data(as_text=True))
        # The stopped ingest said it is offline: the kiosk holds the backlog and says so.
        deadline = time.monotonic() + 10
        while client.get("/status.json").get_json()["link"]["centre"] != "offline":
            assert time.monotonic() < deadline, "the kiosk did not learn that the centre is offline"
            time.sleep(0.05)
        assert svc.link.stats.published == 0
        assert "Centre offline: cases are kept here and sent when it is back" in client.get("/").get_data(as_text=True)

        ingest = Ingest(centre).start()          # the centre is back: the backlog drains
        try:
            seen = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = client.get("/status.json").get_json()
                if status["drain"]["rate"] > 0 and status["queue_depth"] > 10:
                    seen = status
                    html = client.get("/").get_data(as_text=True)
                    break
                if status["queue_depth"] == 0:
                    break
                time.sleep(0.05)
            assert seen is not None, f"no drain rate shown while draining: {status}"
            assert seen["drain"]["eta_s"] is not None
            assert seen["drain"]["eta_s"] == pytest.approx(seen["queue_depth"] / seen["drain"]["rate"], rel=0.1, abs=2)
            pill = re.search(r'<span class="pill" id="drain">(.*?)</span>', html, re.S)
            assert pill, "the drain pill is hidden while draining"
            text = " ".join(re.sub(r"<[^>]+>", "", pill.group(1)).split())
            assert re.fullmatch(r"Sending [0-9.]+ cases/s, about ([0-9]+ s|[0-9]+ min|[0-9.]+ h|-) left", text), text
            while svc.outbox.queue_depth() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            ingest.stop()
        assert svc.outbox.queue_depth() == 0
        done = client.get("/status.json").get_json()
        assert done["drain"]["eta_s"] is None and done["link"]["delivered"] == n


def test_status_bar_follows_the_drain_in_chromium(tmp_path, broker):
    """The page's script keeps the status bar live: the drain pill appears while the backlog
    drains (rate, time left) and goes once the queue is empty."""
    from playwright.sync_api import sync_playwright

    from tests.centre import centre_config
    from dashboard.ingest import Ingest
    from edge.web import WebServer
    from tests.test_kiosk_web import CHROMIUM_ARGS, SHOTS

    centre = centre_config(tmp_path / "c", broker, "drain-ingest-2")
    ingest = Ingest(centre).start()
    assert ingest.wait_ready(15)
    ingest.stop()
    cfg = config(tmp_path, device_id="kiosk-1", site="site-a",
                 broker={"url": broker.url, "reconnect_min_s": 0.2, "max_inflight": 1})
    n = 100
    with KioskService(cfg) as svc:
        for i in range(n):
            im = jpeg(9000 + i, size=48)
            svc.outbox.submit(make_case([im]), [im])
        server = WebServer(svc, port=0).start()
        ingest = None
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page()
                errors = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(server.url)
                assert page.locator("#queue-depth").inner_text() == str(n)
                assert page.locator("#drain").is_hidden()
                page.wait_for_function("() => document.getElementById('link-state').textContent.includes("
                                       "'Centre offline')", timeout=15000)
                page.wait_for_timeout(2500)  # a refresh by the page's script keeps it
                assert "Centre offline" in page.locator("#link-state").inner_text()
                assert "warn" in page.locator("#link-state").get_attribute("class")
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / "kiosk_centre_offline.png"))
                ingest = Ingest(centre).start()
                page.wait_for_function("() => document.getElementById('link-state').textContent === "
                                       "'Connected to centre'", timeout=30000)
                page.wait_for_function("() => !document.getElementById('drain').hidden", timeout=30000)
                text = " ".join(page.locator("#drain").inner_text().split())
                assert re.fullmatch(r"Sending [0-9.]+ cases/s, about ([0-9]+ s|[0-9]+ min|[0-9.]+ h) left", text), text
                page.screenshot(path=str(SHOTS / "kiosk_drain.png"))
                page.wait_for_function("() => document.getElementById('queue-depth').textContent === '0'", timeout=60000)
                page.wait_for_function("() => document.getElementById('drain').hidden", timeout=5000)
                assert errors == []
                browser.close()
        finally:
            server.stop()
            if ingest is not None:
                ingest.stop()
