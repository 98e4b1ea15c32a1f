"""The service's alerts (dashboard.servicereport.monitor) on the IT fleet page, over a real SQLite store whose
referrals are saved by ``Store.save_case``: a seeded shift in hub-a's cancer calls (10 % over the baseline weeks,
50 % in the last 7 days), referrals unread 21 days or more, and kiosks whose photographs' colour drifted, whose
photographs softened and whose photographs brightened fire; the thresholds come from the app's
``MONITORING`` config; an empty store shows none firing. In Chromium at 1280x800: the panel is visible, axe-core
finds no serious or critical violation; screenshot tests/artifacts/fleet_service_alerts_1280.png."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dashboard import create_app
from dashboard.clock import today_in_england
from dashboard.servicereport.monitor import MonitoringConfig
from dashboard.store import Store
from tests.axe_kit import axe_violations, require_axe
from tests.dashauth import PASSWORD, logged_in, make_user
from tests.test_service_colour_drift import seed_drifting_kiosk
from tests.test_service_exposure_drift import seed_brightened_kiosk
from tests.test_service_focus_drift import seed_softened_kiosk
from tests.test_service_monitor import put
from tests.web import ARTIFACTS, chromium, log_in, serve


def seed_shift(store, today) -> None:
    """hub-a: 20 lesions over the baseline weeks (2 cancer), 20 in the last 7 days (10 cancer); hub-b steady."""
    n = 0
    for site, current in (("hub-a", 10), ("hub-b", 2)):
        for i in range(20):
            n += 1
            put(store, n, today - timedelta(days=10 + i * 2), "cancer" if i < 2 else "benign", site)
        for i in range(20):
            n += 1
            put(store, n, today - timedelta(days=i % 7), "cancer" if i < current else "benign", site)


@pytest.fixture
def app(tmp_path):
    return create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"), "TESTING": True})


@pytest.fixture
def shifted(app):
    store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"])
    seed_shift(store, today_in_england())
    seed_drifting_kiosk(store, "kiosk-7", datetime.now(timezone.utc))
    seed_softened_kiosk(store, "kiosk-9", datetime.now(timezone.utc))
    seed_brightened_kiosk(store, "kiosk-4", datetime.now(timezone.utc))
    store.close()
    return app


def panel(client) -> str:
    html = client.get("/fleet").get_data(as_text=True)
    start = html.index('id="service-alerts"')
    return html[start:html.index("</section>", start)]


def test_fleet_page_shows_the_service_alerts_firing(shifted):
    text = panel(logged_in(shifted, "it.one", "it"))
    assert 'data-alert="cancer-drift" data-subject="hub-a"' in text
    assert 'data-alert="cancer-drift" data-subject="hub-b"' not in text
    assert ("hub-a: the classifier called 50.0 % of lesions cancer in the last 7 days (20 lesions) against 10.0 %"
            in text)
    # the baseline weeks' referrals (10 to 48 days old) wait for a reader: nearing the 28-day standard, per hub
    assert 'data-alert="fds-unread" data-subject="hub-a"' in text
    assert 'data-alert="fds-unread" data-subject="hub-b"' in text
    assert 'data-alert="colour-drift" data-subject="kiosk-7"' in text and "Kiosk colour drifting" in text
    assert "kiosk-7: the skin in its last 24 dermoscopic photographs (7 days) lies a median" in text
    assert 'data-alert="focus-drift" data-subject="kiosk-9"' in text and "Kiosk photographs softening" in text
    assert "kiosk-9: its last 24 dermoscopic photographs (7 days) are a median" in text
    assert 'data-alert="focus-drift" data-subject="kiosk-7"' not in text  # sharp, only its colour drifted
    assert 'data-alert="exposure-drift" data-subject="kiosk-4"' in text and "Kiosk photographs brightening" in text
    assert "kiosk-4: the skin in its last 24 dermoscopic photographs (7 days) is a median" in text
    # kiosk-4's photographs of the two weeks before came with site-1 referrals dated weeks earlier, still unread
    assert 'data-alert="fds-unread" data-subject="site-1"' in text
    assert "Classifier cancer calls drifting" in text and 'id="count-service-alerts">7 firing' in text


def test_fleet_service_alerts_follow_the_monitoring_config(shifted):
    shifted.config["MONITORING"] = MonitoringConfig(drift_points=45, unread_warn_days=60, colour_drift_median=3.0,
                                                    focus_drift_median=0.3, exposure_drift_levels=80)
    text = panel(logged_in(shifted, "it.one", "it"))
    assert "data-alert=" not in text and "None firing." in text


def test_fleet_page_without_referrals_has_none_firing(app):
    text = panel(logged_in(app, "it.one", "it"))
    assert 'id="count-service-alerts">0 firing' in text and "None firing." in text
    assert logged_in(app, "dr.one", "dermatologist").get("/fleet").status_code == 403


def test_fleet_service_alerts_in_chromium_with_axe(shifted):
    require_axe()
    make_user(shifted.config["DATABASE"], shifted.config["IMAGES_DIR"], "it-alerts", "it")
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(shifted) as base, chromium() as browser:
        # axe-core is injected as a script: this context bypasses the CSP for that only
        page = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True).new_page()
        log_in(page, f"{base}/fleet", "it-alerts", PASSWORD)
        page.wait_for_url("**/fleet")
        items = page.locator("#service-alerts li[data-alert]")
        assert items.count() == 7 and items.first.is_visible()
        box = page.locator("#service-alerts").bounding_box()
        assert box and box["x"] + box["width"] <= 1280  # long messages wrap inside the page
        page.screenshot(path=str(ARTIFACTS / "fleet_service_alerts_1280.png"))
        assert axe_violations(page) == []
