"""Histology entered by hand by an admin (who does not read referrals) through the real app on a real SQLite store:
the referral found by the reference on the pathology report, typed into a POSTed form (never in a URL), its
histology page with a form per lesion, CSRF, the audit entries, form errors shown beside the lesion's form with what
was typed kept; in Chromium at 1280x800 with axe-core (screenshots tests/artifacts/histology_admin_*.png)."""

from __future__ import annotations

import pytest

from dashboard import sample
from dashboard.store import histology as table
from tests.axe_kit import axe_violations, require_axe
from tests.dashauth import PASSWORD, csrf_token, logged_in, make_user
from tests.test_histology import MEL, NAEVUS, referral_env
from tests.web import ARTIFACTS, chromium, log_in, serve

REF = "GP-77-ABC"


@pytest.fixture
def env(tmp_path):
    app, store, cases = referral_env(tmp_path, 81, reference=REF, site="hub-east")
    yield app, store, cases
    store.close()


def audit_rows(store, action):
    return store.conn.execute("SELECT actor, role, target, detail FROM audit_log WHERE action = ?",
                              (action,)).fetchall()


def test_admin_finds_the_referral_by_reference_and_records_a_result(env):
    app, store, cases = env
    key, l1, l2 = str(cases[0][0].referral.referral_id), str(cases[0][0].case_id), str(cases[1][0].case_id)
    admin = logged_in(app, "ad.one", "admin")
    home = admin.get("/reports").get_data(as_text=True)
    assert '<a href="/histology/find" >Histology</a>' in home  # in the admin's navigation
    page = admin.get("/histology/find").get_data(as_text=True)
    token = csrf_token(page)
    r = admin.post("/histology/find", data={"csrf_token": token, "reference": " gp-77-abc "})  # case, spaces
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/histology/referrals/{key}")
    assert REF.lower() not in r.headers["Location"].lower()
    page = admin.get(f"/histology/referrals/{key}").get_data(as_text=True)
    assert "hub-east" in page and page.count('class="histology-lesion"') == 2 and "No histology yet." in page
    assert cases[0][0].patient.nhs_number not in page
    form = {"csrf_token": csrf_token(page), "back": "histology", "diagnosis": MEL, "benign_malignant": "",
            "confirm_type": "histopathology", "report_date": "2026-02-03", "report_reference": "PATH-81"}
    r = admin.post(f"/referrals/{key}/histology/{l2}", data=form)
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/histology/referrals/{key}#histology")
    row = table.current(store.conn, l2)
    assert (row["benign_malignant"], row["source"], row["entered_by"]) == ("malignant", "form", "ad.one")
    assert table.current(store.conn, l1) is None
    page = admin.get(f"/histology/referrals/{key}").get_data(as_text=True)
    assert "Histology recorded." in page and "PATH-81" in page
    assert audit_rows(store, "histology.find") == [("ad.one", "admin", key, "1 found")]
    assert audit_rows(store, "histology.enter")[0][:3] == ("ad.one", "admin", key)
    # without the CSRF token nothing is stored
    assert admin.post(f"/referrals/{key}/histology/{l1}", data=form | {"csrf_token": ""}).status_code == 400
    assert table.current(store.conn, l1) is None


def test_admin_form_errors_are_shown_beside_the_lesion_with_what_was_typed(env):
    app, store, cases = env
    key, l1 = str(cases[0][0].referral.referral_id), str(cases[0][0].case_id)
    admin = logged_in(app, "ad.one", "admin")
    page = admin.get(f"/histology/referrals/{key}").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "back": "histology", "diagnosis": NAEVUS, "benign_malignant": "malignant",
            "confirm_type": "histopathology", "report_date": "2026-02-03", "report_reference": "PATH-82"}
    r = admin.post(f"/referrals/{key}/histology/{l1}", data=form)
    html = r.get_data(as_text=True)
    assert r.status_code == 422
    assert "Histology not recorded: <strong>Benign or malignant</strong>: &#39;malignant&#39; contradicts the diagnosis" in html
    assert 'name="benign_malignant" aria-invalid="true" aria-describedby="histo-err-1"' in html
    assert 'value="PATH-82"' in html and f'value="{NAEVUS}" selected' in html
    assert '<details class="histology-form" open>' in html
    r = admin.post(f"/referrals/{key}/histology/{l1}", data=form | {"benign_malignant": "", "report_date": "3/2/26"})
    assert r.status_code == 422 and 'name="report_date" value="3/2/26" required aria-invalid="true"' in r.get_data(
        as_text=True)
    assert table.current(store.conn, l1) is None


def test_find_errors_and_several_referrals_with_one_reference(env):
    app, store, _ = env
    admin = logged_in(app, "ad.one", "admin")
    token = csrf_token(admin.get("/histology/find").get_data(as_text=True))
    r = admin.post("/histology/find", data={"csrf_token": token, "reference": "   "})
    assert r.status_code == 422 and "type the reference on the pathology report" in r.get_data(as_text=True)
    r = admin.post("/histology/find", data={"csrf_token": token, "reference": "NO-SUCH-REF"})
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "No stored referral has this reference" in html and 'value="NO-SUCH-REF"' in html
    [(h, ims)] = sample.make_referral(82, reference=REF, site="hub-west")  # another practice's same reference
    store.save_case(h, ims)
    r = admin.post("/histology/find", data={"csrf_token": token, "reference": REF})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "2 referrals have this reference" in html
    assert "hub-east" in html and "hub-west" in html and f"/histology/referrals/{h.referral.referral_id}" in html
    assert admin.get("/histology/referrals/00000000-0000-0000-0000-000000000000").status_code == 404
    assert admin.get("/histology/referrals/not-a-key").status_code == 404
    assert logged_in(app, "it.one", "it").get("/histology/find").status_code == 403


def test_admin_histology_in_chromium_with_axe(env):
    require_axe()
    app, store, cases = env
    l1 = str(cases[0][0].case_id)
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "ad-histo", "admin")
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(app) as base, chromium() as browser:
        # axe-core is injected as a script: this context bypasses the CSP for that only
        page = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True).new_page()
        urls: list[str] = []
        page.on("request", lambda req: urls.append(req.url))
        log_in(page, f"{base}/histology/find", "ad-histo", PASSWORD)
        page.wait_for_url("**/histology/find")
        page.fill("#find-reference", "NO-SUCH-REF")
        page.click("form.histology-find button[type=submit]")
        assert "No stored referral has this reference" in page.locator("#find-error").inner_text()
        page.screenshot(path=str(ARTIFACTS / "histology_find_error_1280.png"))
        assert axe_violations(page) == []
        page.fill("#find-reference", REF)
        page.click("form.histology-find button[type=submit]")
        page.wait_for_url("**/histology/referrals/**")
        assert page.locator(".histology-lesion").count() == 2
        page.locator(".histology-form summary").first.click()
        page.select_option("#histo-dx-1", NAEVUS)
        page.select_option("#histo-bm-1", "malignant")
        page.fill("#histo-date-1", "2026-02-03")
        page.fill("#histo-ref-1", "PATH-90")
        page.click("#histology-L1 button[type=submit]")
        error = page.locator("#histo-err-1")
        error.wait_for(state="visible")  # the refused form comes back as a new page (422)
        assert "contradicts the diagnosis" in error.inner_text()
        assert page.input_value("#histo-ref-1") == "PATH-90"
        page.locator("#histo-err-1").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "histology_admin_error_1280.png"))
        assert axe_violations(page) == []
        page.select_option("#histo-bm-1", "")
        page.click("#histology-L1 button[type=submit]")
        page.wait_for_url("**#histology")
        assert "Benign" in page.locator("#histology-L1 .histology-result").inner_text()
        page.screenshot(path=str(ARTIFACTS / "histology_admin_1280.png"))
        assert axe_violations(page) == []
        assert table.current(store.conn, l1)["entered_by"] == "ad-histo"
        assert not [u for u in urls if REF.lower() in u.lower() or "no-such-ref" in u.lower()]
