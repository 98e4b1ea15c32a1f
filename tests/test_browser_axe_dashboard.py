"""axe-core (WCAG 2.2 AA) on every page of the dashboard, as each role sees it, in Debian's Chromium.

A store with a two-lesion v2 referral, an older v1 case and a quarantined message; the log-in page, then
every GET page of the app for the dermatologist, IT and the admin (a page a role may not open is
skipped for that role, but every page must be checked by some role). No serious or critical violation
anywhere. Screenshots: tests/artifacts/axe_<role>_<page>.png.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from dashboard import create_app, sample
from dashboard.store import Store
from tests.axe_kit import axe_violations, require_axe
from tests.dashauth import PASSWORD, make_user
from tests.web import ARTIFACTS, chromium, log_in, playwright_or_skip, serve

playwright_or_skip()  # the whole module needs Chromium
VIEW = {"width": 1366, "height": 768}
ROLES = {"dr.axe": "dermatologist", "it.axe": "it", "admin.axe": "admin"}


@pytest.fixture
def served(tmp_path):
    """The dashboard over a store with a v2 referral, a v1 case and a quarantined message."""
    db, images = tmp_path / "c.db", tmp_path / "images"
    store = Store(db, images, tmp_path / "quarantine")
    now = datetime.now(timezone.utc)
    referral = sample.make_referral(7, lesions=2, override=True, taken_at=now - timedelta(days=1))
    store.save_cases([(h, ims, now - timedelta(hours=1)) for h, ims in referral])
    v1, v1_images = sample.make_case(11, n_images=2)
    store.save_case(v1, v1_images, received_at=now - timedelta(hours=2))
    store.quarantine("dermkiosk/v1/site-1/kiosk-1/case", "not a DKC1 case frame (bad magic or too short)", b"junk",
                     device="kiosk-1")
    store.close()
    for name, role in ROLES.items():
        make_user(db, images, name, role)
    app = create_app({"DATABASE": str(db), "IMAGES_DIR": str(images)})
    pages = sorted({r.rule for r in app.url_map.iter_rules() if "GET" in r.methods})
    with serve(app) as base:
        yield base, pages, str(referral[0][0].referral.referral_id), str(v1.case_id)


#: GET routes that are not pages (files, feeds, redirects) or are checked elsewhere.
NOT_PAGES = ("/static/", "/images/", ".csv", ".png", ".pdf", ".json", "/metrics", "/healthz", "/payload", "/next",
             "/logout")


def test_every_dashboard_page_for_every_role_passes_axe(served):
    require_axe()
    base, rules, referral_key, v1_case = served
    params = {"case_id": v1_case, "key": referral_key}
    urls = []
    for rule in rules:
        if rule == "/" or any(part in rule for part in NOT_PAGES):
            continue
        urls.append(re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: params[m.group(1)], rule))
    found: dict[str, list[str]] = {}
    checked: set[str] = set()
    with chromium() as browser:
        page = browser.new_context(viewport=VIEW, bypass_csp=True).new_page()   # bypass: axe is injected
        page.goto(f"{base}/login")
        found["login"] = axe_violations(page)
        for user, role in ROLES.items():
            page = browser.new_context(viewport=VIEW, bypass_csp=True).new_page()
            log_in(page, f"{base}/account", user, PASSWORD)
            page.wait_for_url("**/account")
            for url in urls:
                response = page.goto(f"{base}{url}")
                if response.status in (403, 404) or "/login" in page.url:
                    continue
                assert response.status == 200, (role, url, response.status)
                page.wait_for_load_state("networkidle")
                found[f"{role} {url}"] = axe_violations(page)
                checked.add(url)
                name = re.sub(r"[^a-z0-9]+", "_", url.lower()).strip("_")[:40] or "root"
                page.screenshot(path=str(ARTIFACTS / f"axe_{role}_{name}.png"))
    assert set(urls) == checked, f"pages no role could open: {sorted(set(urls) - checked)}"
    assert len(checked) >= 12, checked
    bad = {name: v for name, v in found.items() if v}
    assert not bad, bad
