"""Headless Chromium (Debian's, driven by Playwright): a dermatologist logs in, reads the worklist,
opens the most urgent case, records a decision and sees it; an administrator reads the audit log.
Screenshots go to tests/artifacts/ (gitignored). No CSP violation or failed request on any page."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from dashboard import create_app, sample
from dashboard.store import Store
from tests.web import ARTIFACTS, launch, log_in, playwright_or_skip, serve
from tests.dashauth import PASSWORD, make_user

playwright_api = playwright_or_skip()


@pytest.fixture
def served(tmp_path):
    """The dashboard on a free loopback port over a database with four cases of mixed risk."""
    store = Store(tmp_path / "c.db", tmp_path / "images")
    t0 = datetime.now(timezone.utc) - timedelta(hours=2)
    cases = []
    for i, risk in enumerate(["benign", "cancer", "pre-cancer", "benign"]):
        h, ims = sample.make_case(300 + i, n_images=2 if risk == "cancer" else 1)
        h = h.model_copy(update={"classification": h.classification.model_copy(update={"risk": risk})})
        store.save_case(h, ims, received_at=t0 + timedelta(minutes=10 * i))
        cases.append(h)
    store.close()
    make_user(tmp_path / "c.db", tmp_path / "images", "dr.reader", "dermatologist")
    make_user(tmp_path / "c.db", tmp_path / "images", "admin.one", "admin")
    app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images")})
    with serve(app) as base:
        yield base, cases


def _log_in(page, base, username):
    log_in(page, f"{base}/", username, PASSWORD)


def test_dermatologist_records_a_decision(served):
    base, cases = served
    cancer = cases[1]
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems = []
            # (a favicon fetch cut short by the next navigation is not a problem)
            page.on("requestfailed", lambda req: not req.url.endswith("/favicon.svg")
                    and problems.append(f"failed {req.url} {req.failure}"))
            page.on("console", lambda msg: msg.type == "error" and "status of 401" not in msg.text
                    and problems.append(f"console {msg.text}"))
            errors = []
            page.on("response", lambda r: r.status >= 400 and errors.append((r.status, r.url.removeprefix(base))))

            page.goto(f"{base}/cases")
            page.wait_for_url(re.compile(r"/login\?next="))
            page.screenshot(path=str(ARTIFACTS / "review_login.png"))
            # a wrong password first: a generic refusal, no session
            page.fill("#username", "dr.reader")
            page.fill("#password", "not my password")
            page.click("#login-submit")
            assert "Log-in refused" in page.locator("#login-error").inner_text()
            page.fill("#username", "dr.reader")
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_url(f"{base}/cases")

            rows = page.locator("tr.referral-row")   # v1 cases: each a one-lesion referral keyed by its case id
            assert rows.count() == 4
            assert rows.first.get_attribute("data-referral-key") == str(cancer.case_id)  # cancer first
            assert "cancer" in rows.first.locator(".priority").inner_text().lower()
            assert page.locator("#filter-open .count").inner_text() == "4"
            assert page.locator(".who-name").inner_text().startswith("dr.reader")
            page.screenshot(path=str(ARTIFACTS / "review_worklist.png"), full_page=True)

            page.goto(f"{base}/cases/{cancer.case_id}")   # the per-case page (the referral page has its own test)
            page.wait_for_url(f"**/cases/{cancer.case_id}")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.image-card img')].every(i => i.complete && i.naturalWidth > 0)",
                timeout=10_000)
            assert page.locator("#current-decision").inner_text().strip() == "not yet read"
            page.check("input[name=outcome][value=urgent-2ww]")
            page.fill("#note", "Asymmetric, blue-white veil. 2WW to the pigmented lesion clinic.")
            page.click("#decision-submit")
            page.wait_for_url(f"**/cases/{cancer.case_id}#decision")
            assert "Decision recorded" in page.locator(".flash").inner_text()
            history = page.locator("#decision-history tbody tr")
            assert history.count() == 1
            assert "dr.reader" in history.first.inner_text()
            assert "blue-white veil" in history.first.inner_text()
            assert "2-week wait" in page.locator("#current-decision").inner_text()
            page.locator("#decision").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "review_case_decided.png"), full_page=True)

            page.click("text=← Worklist")
            page.wait_for_url(f"{base}/cases")
            assert page.locator("tr.referral-row").count() == 3   # the decided case left the open list
            page.click("#filter-reported")
            page.wait_for_url("**/cases?show=reported*")
            assert page.locator("tr.referral-row").count() == 1
            assert page.locator("tr.referral-row").first.get_attribute("data-referral-key") == str(cancer.case_id)
            page.screenshot(path=str(ARTIFACTS / "review_worklist_decided.png"), full_page=True)

            page.click("#logout")
            page.wait_for_url("**/login")
            page.goto(f"{base}/cases/{cancer.case_id}")
            page.wait_for_url(re.compile(r"/login\?next="))             # logged out: the case is closed again

            _log_in(page, base, "admin.one")
            page.wait_for_url(f"{base}/admin/users")
            assert page.locator("tr.user-row").count() == 2
            page.screenshot(path=str(ARTIFACTS / "review_admin_users.png"), full_page=True)
            page.click("text=Audit log")
            page.wait_for_url("**/admin/audit")
            actions = page.locator("tr.audit-row .action").all_inner_texts()
            for expected in ("login.failed", "login.ok", "case.view", "image.view", "decision.record", "logout"):
                assert expected in actions, expected
            assert page.locator("#chain-ok").count() == 1
            page.screenshot(path=str(ARTIFACTS / "review_admin_audit.png"), full_page=True)
            # the stylesheet applied (CSP allows same-origin only)
            assert page.eval_on_selector(".topbar", "e => getComputedStyle(e).backgroundColor") == "rgb(23, 50, 74)"
            assert problems == [], problems
            assert errors == [(401, "/login")], errors  # only the wrong password's answer
        finally:
            browser.close()
