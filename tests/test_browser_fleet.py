"""Headless Chromium (Debian's, via Playwright) opens the fleet page as IT; screenshot for a human look."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dashboard import create_app
from dashboard.alerts import FleetConfig
from dashboard.fleet import record_ingest_alive
from dashboard.store import Store
from tests.web import ARTIFACTS, launch, log_in, playwright_or_skip, serve
from tests.dashauth import PASSWORD, make_user
from tests.test_fleet_page import populate

playwright_api = playwright_or_skip()


@pytest.fixture
def served(tmp_path):
    app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"),
                      "FLEET": FleetConfig(approved_model="lesion-v1")})
    populate(app.config["DATABASE"], app.config["IMAGES_DIR"])
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "it-browser", "it")
    with serve(app) as base:
        yield base, app


def test_fleet_page_in_chromium(served):
    served, app = served
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            failed, csp = [], []
            page.on("requestfailed", lambda req: failed.append(req.url))
            page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
            log_in(page, f"{served}/fleet", "it-browser", PASSWORD)
            page.wait_for_url("**/fleet")
            assert page.locator("section.kiosk").count() == 3
            assert page.locator("#kiosk-kiosk-0003 .presence").inner_text().lower() == "offline"
            assert page.locator("#kiosk-kiosk-0002 [data-alert=disk]").is_visible()
            # the stylesheet applied (CSP allows only same-origin files): badges are coloured, charts sized
            colour = page.locator("#kiosk-kiosk-0003 .presence").evaluate("e => getComputedStyle(e).backgroundColor")
            assert colour == "rgb(163, 39, 26)"
            box = page.locator("#kiosk-kiosk-0001 svg.spark").first.bounding_box()
            assert box and box["width"] >= 200 and box["height"] >= 40
            # no ingest has ever beaten in this database: the page says no case comes in
            banner = page.locator("#ingest-down")
            assert banner.is_visible() and "No ingest is taking cases" in banner.inner_text()
            assert banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(253, 232, 230)"
            assert not failed and not csp, (failed, csp)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "fleet_page.png"), full_page=True)
            # two ingest processes, the second one silent: cases flow, and IT is told what waits for it
            now = datetime.now(timezone.utc)
            store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"])
            try:
                record_ingest_alive(store, "ingest", now - timedelta(hours=2), now)
                record_ingest_alive(store, "ingest-2", now - timedelta(hours=2), now - timedelta(minutes=7))
            finally:
                store.close()
            page.reload()
            assert not page.locator("#ingest-down").is_visible()
            silent = page.locator("#ingest-silent-ingest-2")
            assert silent.is_visible() and "Ingest ingest-2 is silent" in silent.inner_text()
            assert silent.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(255, 244, 224)"
            silent.screenshot(path=str(ARTIFACTS / "fleet_ingest_silent.png"))
            # the second one alive but its image disk full: why it takes nothing, and the centre's free space
            store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"])
            try:
                record_ingest_alive(store, "ingest-2", now - timedelta(hours=2), now - timedelta(minutes=4),
                                    "storage unavailable: No space left on device (OSError)")
                record_ingest_alive(store, "ingest-2", now - timedelta(hours=2), now,
                                    "storage unavailable: No space left on device (OSError)")
            finally:
                store.close()
            page.reload()
            blocked = page.locator("#ingest-blocked-ingest-2")
            assert blocked.is_visible() and "Ingest ingest-2 cannot store cases" in blocked.inner_text()
            assert "No space left on device" in blocked.inner_text()
            assert blocked.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(253, 232, 230)"
            disks = page.locator("#centre-disks")
            assert disks.is_visible() and "images and database:" in disks.inner_text()
            page.screenshot(path=str(ARTIFACTS / "fleet_ingest_blocked.png"), clip={"x": 0, "y": 0, "width": 1280,
                                                                                   "height": 420})
        finally:
            browser.close()
