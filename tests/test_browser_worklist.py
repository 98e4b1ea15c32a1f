"""The referral worklist in Debian's Chromium at 1366x768: order and clock as a reader sees them, the filter
form, search by typing (a POST: no identifier in any URL the browser asks for), a claim seen from a second
browser, and axe-core (WCAG 2.2 AA: no serious or critical violation) on the worklist, the search results, the
fleet page and the audit log. Screenshots in tests/artifacts/worklist_*.png."""

from __future__ import annotations

import re

import pytest

from dashboard import create_app
from dashboard.alerts import FleetConfig
from dashboard.store import Store
from tests.dashauth import PASSWORD, make_user
from tests.axe_kit import axe_violations, require_axe
from tests.test_fleet_page import populate
from tests.test_worklist import save_referral
from tests.web import ARTIFACTS, chromium, log_in, playwright_or_skip, serve
from wire.referral import format_nhs_number

playwright_or_skip()  # the whole module needs Chromium
VIEW = {"width": 1366, "height": 768}


@pytest.fixture
def served(tmp_path):
    app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"),
                      "FLEET": FleetConfig(approved_model="lesion-v1")})
    populate(app.config["DATABASE"], app.config["IMAGES_DIR"])
    store = Store(tmp_path / "c.db", tmp_path / "images")
    made = {
        "breached": save_referral(store, 101, days_ago=33, risks=("benign",), site="hub-north"),
        "cancer": save_referral(store, 102, days_ago=4, risks=("benign", "cancer"), site="hub-south"),
        "fitz": save_referral(store, 103, days_ago=16, fitzpatrick="VI", site="hub-north"),
        "declined": save_referral(store, 104, days_ago=23, ai=False, site="hub-south"),
        "pre": save_referral(store, 105, days_ago=9, risks=("pre-cancer", "benign", "benign"), site="hub-east"),
    }
    for n in range(6):
        made[f"benign{n}"] = save_referral(store, 110 + n, days_ago=2 * n, site="hub-east")
    store.close()
    for name, role in (("dr.a", "dermatologist"), ("dr.b", "dermatologist"), ("boss", "admin"), ("it.x", "it")):
        make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], name, role)
    with serve(app) as base:
        yield base, made


def _page(browser, base, user, requests=None):
    ctx = browser.new_context(viewport=VIEW, bypass_csp=True)  # bypass_csp: only so axe-core can be injected
    page = ctx.new_page()
    if requests is not None:
        page.on("request", lambda r: requests.append(r.url))
    log_in(page, f"{base}/cases", user, PASSWORD)
    page.wait_for_load_state("networkidle")
    return page


def test_worklist_in_chromium_with_axe(served):
    require_axe()
    base, made = served
    ARTIFACTS.mkdir(exist_ok=True)
    requests: list[str] = []
    found: dict[str, list[str]] = {}
    with chromium() as browser:
        page = _page(browser, base, "dr.a", requests)
        page.wait_for_url(f"{base}/cases")
        keys = page.locator("tr.referral-row").evaluate_all("rs => rs.map(r => r.dataset.referralKey)")
        assert keys[:4] == [str(made[k].referral.referral_id) for k in ("cancer", "declined", "fitz", "pre")]
        breached = page.locator(f'tr[data-referral-key="{made["breached"].referral.referral_id}"]')
        assert "BREACHED · DAY 33, 5 DAYS OVER" in breached.locator(".clock").inner_text().upper()
        assert "breached the 28-day Faster Diagnosis Standard" in page.locator("#clock-alert").inner_text()
        assert page.locator("#filter-open .count").inner_text() == "11"
        page.screenshot(path=str(ARTIFACTS / "worklist_1366.png"))
        found["worklist"] = axe_violations(page)

        # filters through the form
        page.select_option("#f-hub", "hub-north")
        page.click("#filter-apply")
        page.wait_for_url(re.compile(r"hub=hub-north"))
        assert page.locator("tr.referral-row").count() == 2
        page.check("#f-fitz")
        page.click("#filter-apply")
        page.wait_for_url(re.compile(r"fitz=1"))
        assert page.locator("tr.referral-row").count() == 1
        page.screenshot(path=str(ARTIFACTS / "worklist_filtered_1366.png"))
        found["filtered"] = axe_violations(page)
        page.click("#filter-clear")
        page.wait_for_url(f"{base}/cases")

        # search by typing the NHS number as people write it; the answer comes from a POST
        nhs = made["pre"].patient.nhs_number
        page.fill("#q", format_nhs_number(nhs))
        page.click("#search-submit")
        page.wait_for_selector("#search-result")
        assert page.url == f"{base}/cases/search"
        assert page.locator("tr.referral-row").count() == 1
        assert "3 of 3" in page.locator("tr.referral-row td.lesions").inner_text()
        page.screenshot(path=str(ARTIFACTS / "worklist_search_1366.png"))
        found["search"] = axe_violations(page)
        page.fill("#q", nhs[:-1] + str((int(nhs[-1]) + 1) % 10))
        page.click("#search-submit")
        page.wait_for_selector("#search-error")
        assert "check digit is wrong" in page.locator("#search-error").inner_text()
        assert page.locator("#q").get_attribute("aria-invalid") == "true"
        page.screenshot(path=str(ARTIFACTS / "worklist_search_error_1366.png"))
        found["search_error"] = axe_violations(page)

        # open the most urgent referral: it is claimed; a second reader's browser sees who holds it
        page.goto(f"{base}/cases")
        page.locator("tr.referral-row a.referral-link").first.click()
        page.wait_for_selector("#claim")
        assert "You hold this referral" in page.locator("#claim").inner_text()
        other = _page(browser, base, "dr.b")
        row = other.locator(f'tr[data-referral-key="{made["cancer"].referral.referral_id}"]')
        assert row.locator("td.reader").inner_text().startswith("dr.a")
        other.screenshot(path=str(ARTIFACTS / "worklist_claimed_by_other_1366.png"))
        row.locator("a.referral-link").click()
        other.wait_for_selector("#claim-take-over")
        assert "Held by dr.a" in other.locator("#claim").inner_text()
        other.screenshot(path=str(ARTIFACTS / "worklist_referral_held_1366.png"))
        other.click("#claim-take-over")
        other.wait_for_selector("#claim-release")
        assert "took this referral over from dr.a" in other.content()
        other.goto(f"{base}/cases?mine=1")
        assert other.locator("tr.referral-row").count() == 1

        # IT's fleet page and the administrator's audit log
        it = _page(browser, base, "it.x")
        it.goto(f"{base}/fleet")
        it.wait_for_load_state("networkidle")
        it.screenshot(path=str(ARTIFACTS / "worklist_fleet_1366.png"))
        found["fleet"] = axe_violations(it)
        admin = _page(browser, base, "boss")
        admin.goto(f"{base}/admin/audit")
        admin.screenshot(path=str(ARTIFACTS / "worklist_audit_1366.png"))
        assert "worklist.search" in admin.locator("tbody").inner_text()
        assert "claim.takeover" in admin.locator("tbody").inner_text()
        found["audit"] = axe_violations(admin)
    assert {k: v for k, v in found.items() if v} == {}
    secrets = [made[k].patient.nhs_number for k in made] + [made[k].referral.reference for k in made]
    leaked = [u for u in requests for s in secrets if s in u]
    assert leaked == [], leaked
