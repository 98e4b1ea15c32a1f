"""The kiosk page: CSRF, MJPEG preview, and the whole flow in Debian's Chromium (Playwright)."""

from __future__ import annotations

import os
import socket
import urllib.request
from pathlib import Path

import pytest

from edge.service import KioskService
from edge.web import WebServer, create_app, eta_text, status_bar
from tests.test_kiosk_service import LESION, MODEL_DIR, REF, config
from wire.messages import Quality

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no model in models/lesion yet")

from tests.web import CHROMIUM_ARGS  # noqa: E402
SHOTS = Path(os.environ.get("DERMKIOSK_SCREENSHOTS", "/tmp/dermkiosk-screenshots"))


@pytest.fixture
def service(tmp_path):
    with KioskService(config(tmp_path), with_link=False) as svc:
        yield svc


def test_forms_need_the_csrf_token(service):
    client = create_app(service).test_client()
    r = client.post("/case", data={"referral_ref": REF, "lesion_id": LESION, "body_site": "head/neck"})
    assert r.status_code == 400 and service.draft is None
    assert client.post("/capture/dermoscopic").status_code == 400
    assert client.post("/submit").status_code == 400
    page = client.get("/")
    assert page.status_code == 200 and b'name="csrf_token"' in page.data
    assert b"Decision support only" in page.data


def test_status_json_and_default_loopback_binding(service):
    server = WebServer(service, port=0).start()
    try:
        assert server.server.server_address[0] == "127.0.0.1"
        body = urllib.request.urlopen(server.url + "status.json", timeout=5).read()
        assert b'"queue_depth": 0' in body or b'"queue_depth":0' in body
    finally:
        server.stop()


def test_mjpeg_preview_streams_jpeg_frames(service):
    server = WebServer(service, port=0).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET /preview.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while data.count(b"--frame") < 3:
                chunk = s.recv(65536)
                assert chunk
                data += chunk
        assert b"multipart/x-mixed-replace; boundary=frame" in data
        assert data.count(b"\xff\xd8") >= 2          # JPEG start markers
    finally:
        server.stop()


def test_whole_flow_in_chromium(service):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    server = WebServer(service, port=0).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(server.url)
            page.fill("#referral_ref", REF)
            page.fill("#lesion_id", LESION)
            page.select_option("#body_site", "upper extremity")
            page.click("button:has-text('Start case')")
            assert page.locator("h2 .ref").inner_text() == REF
            page.click("#capture-dermoscopic")
            result = page.locator("#result")
            result.wait_for()
            assert "Risk tier" in result.inner_text()
            assert service.classifier.version in result.inner_text()
            assert "dermatologist reads every case" in result.inner_text()
            assert page.locator(".view[data-view=dermoscopic] .quality").count() == 1
            page.click("#capture-close-up")
            page.locator(".view[data-view=close-up] img.thumb").wait_for()
            page.wait_for_function("document.getElementById('preview').naturalWidth > 0", timeout=10000)
            page.screenshot(path=str(SHOTS / "kiosk_case.png"), full_page=True)
            # quality may fail on generated images: submit then says what to retake, or saves
            page.click("#submit")
            flash = page.locator(".flash").first.inner_text()
            assert "Case saved" in flash or "Retake" in flash
            if "Retake" in flash:
                service.submit(allow_failed_quality=True)
                page.goto(server.url)
            page.wait_for_function("document.getElementById('queue-depth').textContent === '1'", timeout=5000)
            # disk full: a clear refusal on the page, the queued case stays
            service.outbox.min_free_bytes = service.outbox.free_bytes() + (1 << 30)
            page.fill("#referral_ref", REF + "-B")
            page.fill("#lesion_id", LESION)
            page.select_option("#body_site", "head/neck")
            page.click("button:has-text('Start case')")
            page.click("#capture-dermoscopic")
            # mark the quality as passed so that only the disk can refuse
            d = service.draft.images["dermoscopic"]
            d.quality = Quality(ok=True, checks=d.quality.checks)
            page.click("#submit")
            banner = page.locator(".flash.diskfull")
            banner.wait_for()
            assert "Storage is full" in banner.inner_text() and "not saved" in banner.inner_text()
            page.screenshot(path=str(SHOTS / "kiosk_disk_full.png"), full_page=True)
            assert service.outbox.queue_depth() == 1 and service.draft is not None
            browser.close()
    finally:
        server.stop()


def test_status_bar_wording_for_each_link_and_camera_state():
    """One source for the status bar (page and script): held, connected, offline; camera; time left."""
    def bar(connected, centre, camera=True, eta_s=None):
        return status_bar({"link": {"connected": connected, "centre": centre}, "camera": camera,
                           "drain": {"rate": 1.0, "eta_s": eta_s}})
    held = bar(True, "offline")
    assert held["link"] == {"css": "warn", "text": "Centre offline: cases are kept here and sent when it is back"}
    assert bar(True, "online")["link"] == {"css": "ok", "text": "Connected to centre"}
    assert bar(True, None)["link"]["css"] == "ok", "no presence heard yet: connected"
    assert bar(False, "offline")["link"] == {"css": "bad", "text": "Offline: cases are kept and sent later"}
    assert bar(True, "online", camera=False)["camera"] == {"css": "bad", "text": "Camera not connected"}
    assert bar(True, "online")["camera"] == {"css": "ok", "text": "Camera ready"}
    assert [eta_text(s) for s in (None, 42, 420, 5400)] == ["-", "42 s", "7 min", "1.5 h"]
    assert bar(True, "online", eta_s=420)["drain_eta"] == "7 min"
