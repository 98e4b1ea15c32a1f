"""Headless Chromium (Debian's, driven by Playwright) opens a case page served on a loopback port."""

from __future__ import annotations


import pytest

from dashboard import create_app, sample
from dashboard.store import Store
from tests.web import ARTIFACTS, launch, log_in, playwright_or_skip, serve
from tests.dashauth import PASSWORD, make_user

playwright_api = playwright_or_skip()


@pytest.fixture
def served(tmp_path):
    """The dashboard on a free 127.0.0.1 port (werkzeug in a thread) over a database with cases."""
    store = Store(tmp_path / "c.db", tmp_path / "images")
    others = [sample.make_case(200 + i, n_images=1) for i in range(3)]
    for h, ims in others:
        store.save_case(h, ims)
    header, images = sample.make_case(210, n_images=3)
    store.save_case(header, images)
    store.close()
    app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images")})
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "dr-browser", "dermatologist")
    with serve(app) as base:
        yield base, header


def test_case_page_shows_images_and_result(served):
    base, header = served
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            failed = []
            page.on("requestfailed", lambda req: failed.append(req.url))
            log_in(page, f"{base}/cases", "dr-browser", PASSWORD)  # the log-in page, then back to the worklist
            page.wait_for_url("**/cases")
            assert page.locator("tr.referral-row").count() == 4
            assert page.locator(f"tr.referral-row[data-referral-key='{header.case_id}']").count() == 1
            page.goto(f"{base}/cases/{header.case_id}")   # the per-case page (the referral page has its own test)
            page.wait_for_url(f"**/cases/{header.case_id}")
            page.wait_for_load_state("networkidle")
            # the tab title (kept in browser history) names the case by id only: no referral reference
            assert page.title() == f"Case {str(header.case_id)[:8]} · DermKiosk centre"

            imgs = page.locator(".image-card img")
            assert imgs.count() == len(header.images)
            for i in range(imgs.count()):
                imgs.nth(i).scroll_into_view_if_needed()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.image-card img')].every(i => i.complete && i.naturalWidth > 0)",
                timeout=10_000)
            widths = page.eval_on_selector_all(".image-card img", "els => els.map(e => e.naturalWidth)")
            assert widths == [im.width for im in header.images]

            risk = header.classification.risk
            assert page.locator("#risk .badge").inner_text().strip().lower() == risk
            assert page.locator("#model-version").inner_text() == header.classification.model
            rows = page.locator("#result table.probs tbody tr")
            assert rows.count() == len(header.classification.probabilities)
            top = max(header.classification.probabilities, key=header.classification.probabilities.get)
            assert rows.first.locator("abbr").inner_text() == top
            assert page.locator(".notice").inner_text().startswith("Decision support only; not a medical device")
            # The stylesheet loaded (CSP allows only same-origin): the top bar is dark.
            bg = page.eval_on_selector(".topbar", "e => getComputedStyle(e).backgroundColor")
            assert bg == "rgb(23, 50, 74)"
            assert failed == []

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "case_page.png"), full_page=True)
            page.goto(f"{base}/cases")
            page.screenshot(path=str(ARTIFACTS / "worklist.png"), full_page=True)
        finally:
            browser.close()
