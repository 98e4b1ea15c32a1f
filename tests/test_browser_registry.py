"""Issue 25 in Debian's Chromium at 1366x768: the fleet page with the new alerts (unregistered kiosk,
quarantine rate, unsynchronised clock, malformed health, expiring certificate), the kiosks page and
the quarantine page (reason, download link); axe-core (WCAG 2.2 AA) finds nothing serious or critical;
screenshots in tests/artifacts for a human look; the download arrives as a file, never a page."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dashboard import create_app
from dashboard.alerts import FleetConfig
from dashboard.pki import Pki
from dashboard.config import RegistryConfig
from tests.dashauth import PASSWORD, make_user
from tests.test_registry_pages import fill
from tests.axe_kit import axe_violations, require_axe
from tests.web import ARTIFACTS, chromium, log_in, playwright_or_skip, serve

playwright_or_skip()  # the whole module needs Chromium
VIEW = {"width": 1366, "height": 768}


@pytest.fixture
def served(tmp_path):
    Pki(tmp_path / "pki").init()
    app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"),
                      "QUARANTINE_DIR": str(tmp_path / "quarantine"), "FLEET": FleetConfig(),
                      "REGISTRY": RegistryConfig(pki_dir=tmp_path / "pki")})
    fill(app, datetime.now(timezone.utc))
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "admin-b", "admin")
    with serve(app) as base:
        yield base


def test_fleet_kiosks_and_quarantine_pages_in_chromium(served, tmp_path):
    require_axe()
    with chromium() as browser:
        # axe-core is injected as an inline script: this context alone lets it past the page's CSP
        ctx = browser.new_context(viewport=VIEW, bypass_csp=True, accept_downloads=True)
        page = ctx.new_page()
        log_in(page, f"{served}/fleet", "admin-b", PASSWORD)
        page.wait_for_url("**/fleet")
        stranger = page.locator("#unregistered")
        assert stranger.is_visible() and "kiosk-zz" in stranger.inner_text()
        assert stranger.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(253, 232, 230)"
        for code in ("clock-sync", "malformed", "quarantine"):
            assert page.locator(f"#kiosk-kiosk-n1 [data-alert={code}]").is_visible(), code
        assert page.locator("#kiosk-kiosk-n2 [data-alert=certificate]").is_visible()
        assert page.locator("section.kiosk").count() == 2
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "fleet_registry_1366.png"), full_page=False)
        found = {"fleet": axe_violations(page)}

        page.goto(f"{served}/devices")
        assert "kiosk-zz" in page.locator("#unregistered").inner_text()
        page.fill("#device", "kiosk-zz")
        page.fill("#site", "Hub X")                               # the browser refuses it before sending
        page.locator("#register-kiosk button[type=submit]").click()
        assert page.evaluate("() => document.querySelector('#site').validity.patternMismatch")
        page.fill("#site", "hub-x")                               # no certificate, none in the PKI for it
        page.locator("#register-kiosk button[type=submit]").click()
        page.wait_for_selector("#register-error")
        assert "expected certificate" in page.inner_text("#register-error")
        assert page.input_value("#site") == "hub-x" and page.input_value("#device") == "kiosk-zz"
        page.screenshot(path=str(ARTIFACTS / "devices_register_error_1366.png"), full_page=True)
        found["devices"] = axe_violations(page)

        page.goto(f"{served}/quarantine")
        rows = page.locator("#quarantine tbody tr")
        assert rows.count() == 3
        assert "registered for hub hub-north, not hub-south" in page.locator("[data-code=wrong-hub]").inner_text()
        page.screenshot(path=str(ARTIFACTS / "quarantine_1366.png"), full_page=False)
        found["quarantine"] = axe_violations(page)
        with page.expect_download() as dl:
            page.locator("[data-code=wrong-hub] a.small-button").click()
        d = dl.value
        assert d.suggested_filename.startswith("quarantine-") and d.suggested_filename.endswith(".bin")
        saved = tmp_path / "dl.bin"
        d.save_as(saved)
        assert saved.read_bytes()[:4] == b"DKC1"                 # the case frame as it arrived
        assert page.url.endswith("/quarantine")                  # not rendered: the page stays
        assert {k: v for k, v in found.items() if v} == {}
