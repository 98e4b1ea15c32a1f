"""The service report page in real Chromium at 1280x800 over the seeded store of tests/test_service_report.py:
the plots load as PNGs drawn by the server under the strict CSP (a second context keeps the CSP and records
any console error), the figures show, and axe-core (WCAG 2.2 AA) finds no serious or critical violation.
Screenshots in tests/artifacts/reports_1280.png (the first screen) and reports_1280_full.png (the whole page)."""

from __future__ import annotations

from tests.axe_kit import axe_violations, require_axe
from tests.dashauth import PASSWORD, make_user
from tests.test_service_report import seeded  # noqa: F401 - the fixture
from tests.web import ARTIFACTS, chromium, log_in, playwright_or_skip, serve

playwright_or_skip()  # the whole module needs Chromium
VIEW = {"width": 1280, "height": 800}
URL = "/reports?from=2026-01-01&to=2026-01-31"


def test_reports_page_in_chromium_with_axe(seeded):  # noqa: F811
    require_axe()
    app, _, keys = seeded
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "dr.rep", "dermatologist")
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(app) as base, chromium() as browser:
        # the real CSP: every plot loads, nothing is refused
        ctx = browser.new_context(viewport=VIEW)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        log_in(page, f"{base}{URL}", "dr.rep", PASSWORD)
        page.goto(f"{base}{URL}")
        page.wait_for_load_state("networkidle")
        widths = page.locator(".report-plot img").evaluate_all("is => is.map(i => i.complete && i.naturalWidth)")
        assert len(widths) == 3 and all(w and w > 200 for w in widths), widths
        assert errors == []
        assert "default-src 'self'" in page.request.get(f"{base}{URL}").headers["content-security-policy"]
        ctx.close()
        # axe-core needs to be injected: this context bypasses the CSP for that only
        ctx = browser.new_context(viewport=VIEW, bypass_csp=True)
        page = ctx.new_page()
        log_in(page, f"{base}{URL}", "dr.rep", PASSWORD)
        page.goto(f"{base}{URL}")
        page.wait_for_load_state("networkidle")
        assert page.locator("#summary-all tbody td").nth(0).inner_text() == "13"
        assert keys[12] in page.locator("#breaches").inner_text()
        assert page.locator("nav a.active").inner_text() == "Reports"
        page.screenshot(path=str(ARTIFACTS / "reports_1280.png"))
        page.screenshot(path=str(ARTIFACTS / "reports_1280_full.png"), full_page=True)
        assert axe_violations(page) == []
        ctx.close()
