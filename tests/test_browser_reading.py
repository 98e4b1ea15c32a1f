"""The referral review page in Debian's Chromium (Playwright) against the real dashboard on a real SQLite file:
zoom and pan change the image's transform, keyboard shortcuts, signing through the form, a second reader
who does not see the first read until theirs is signed, axe-core (WCAG 2.2 AA) and screenshots at
1366x768 and 1920x1080 (tests/artifacts/reading_*.png). No CSP violation or failed request."""

from __future__ import annotations

import re

import pytest

from dashboard import claims, create_app, sample
from dashboard.readingconfig import ReadingConfig
from dashboard.store import Store
from tests.dashauth import PASSWORD, make_user
from tests.axe_kit import AXE, axe_violations
from tests.web import ARTIFACTS, chromium, log_in, playwright_or_skip, serve

playwright_or_skip()  # the whole module needs Chromium

SIZES = {"1366x768": {"width": 1366, "height": 768}, "1920x1080": {"width": 1920, "height": 1080}}
FIRST_WORDS = "Symmetric pattern, benign naevus; safety-net advice given."


@pytest.fixture
def served(tmp_path):
    """The dashboard over a two-lesion referral (cancer-tier first lesion, one shot sent with a reason) whose
    first lesion was photographed before, at an earlier referral of the same patient."""
    store = Store(tmp_path / "c.db", tmp_path / "images")
    nhs = sample.synthetic_nhs_number(800)
    for h, ims in sample.make_referral(5, nhs=nhs):
        store.save_case(h, ims)
    cases = sample.make_referral(100, lesions=2, nhs=nhs, override=True)
    for n, (h, ims) in enumerate(cases):
        risk = "cancer" if n == 0 else "benign"
        h = h.model_copy(update={"classification": h.classification.model_copy(update={"risk": risk})})
        # a full-resolution photograph (2400 x 1800) for the first view: zoom must reach it
        if n == 0:
            big = sample.make_jpeg(9, 2400, 1800)
            from wire import codec
            meta = h.images[0].model_copy(update={"sha256": codec.sha256_hex(big), "length": len(big),
                                                  "width": 2400, "height": 1800})
            h = h.model_copy(update={"images": [meta, *h.images[1:]]})
            ims = [big, *ims[1:]]
        store.save_case(h, ims)
    for h, ims in sample.make_referral(102):
        store.save_case(h, ims)
    store.close()
    for user in ("dr.one", "dr.two"):
        make_user(tmp_path / "c.db", tmp_path / "images", user, "dermatologist")
    app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"),
                      "READING": ReadingConfig(audit_share=0.0)})
    with serve(app) as base:
        yield base, str(cases[0][0].referral.referral_id), cases, tmp_path


def watch(page, base, problems):
    page.on("requestfailed", lambda req: not req.url.endswith("/favicon.svg")
            and problems.append(f"failed {req.url} {req.failure}"))
    page.on("console", lambda msg: msg.type == "error" and "status of 4" not in msg.text
            and problems.append(f"console {msg.text}"))


def scale_of(page, selector) -> float:
    """The scale of an element's computed CSS transform (1 when none)."""
    t = page.eval_on_selector(selector, "e => getComputedStyle(e).transform")
    if t in ("none", ""):
        return 1.0
    return float(re.match(r"matrix\(([-\d.e]+)", t).group(1))


def translate_of(page, selector) -> tuple[float, float]:
    t = page.eval_on_selector(selector, "e => getComputedStyle(e).transform")
    if t in ("none", ""):
        return 0.0, 0.0
    nums = [float(x) for x in re.findall(r"[-\d.e]+", t)]
    return nums[4], nums[5]


def wait_images(page):
    page.wait_for_function("() => [...document.querySelectorAll('.viewer img')].every(i => i.complete && "
                           "i.naturalWidth > 0)", timeout=15_000)


def test_zoom_pan_keys_sign_and_blind_second_read(served):
    base, key, cases, tmp_path = served
    first_case = str(cases[0][0].case_id)
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport=SIZES["1366x768"])
        problems: list[str] = []
        watch(page, base, problems)
        log_in(page, f"{base}/referrals/{key}", "dr.one", PASSWORD)
        page.wait_for_url(f"**/referrals/{key}")
        wait_images(page)
        lesion = f"#lesion-{first_case}"
        views = page.locator(f"{lesion} .today .viewer-card")
        assert views.count() == 3
        assert page.locator(f"#earlier-{first_case} .viewer-card").count() == 3
        assert "Fitzpatrick II" in page.locator("#skin-type").inner_text()
        assert "sent with a reason: Patient could not stay still" in page.locator(lesion).inner_text()
        assert page.locator(f"{lesion} .model-card-link").get_attribute("href") == "/model-card"
        page.screenshot(path=str(ARTIFACTS / "reading_1366x768.png"))
        page.screenshot(path=str(ARTIFACTS / "reading_1366x768_full.png"), full_page=True)

        img = f"{lesion} .today .viewer-card:nth-child(1) img"
        card = f"{lesion} .today .viewer-card:nth-child(1)"
        assert scale_of(page, img) == pytest.approx(1.0)
        page.click(f"{card} .zoom-in")
        page.wait_for_timeout(450)  # Panzoom's buttons animate (200 ms)
        zoomed = scale_of(page, img)
        assert zoomed > 1.2
        # keyboard: + zooms the selected image further, 0 fits it again, 1 shows it pixel for pixel
        page.locator(card + " .viewer").focus()
        page.keyboard.press("+")
        page.wait_for_timeout(450)
        assert scale_of(page, img) > zoomed
        page.keyboard.press("0")
        page.wait_for_timeout(450)
        assert scale_of(page, img) == pytest.approx(1.0, abs=0.01)
        page.keyboard.press("1")
        page.wait_for_timeout(450)
        full = scale_of(page, img)
        shown = page.eval_on_selector(img, "e => Math.min(e.clientWidth, e.clientHeight * 4 / 3)")
        assert full == pytest.approx(2400 / shown, rel=0.02)   # one image pixel per screen pixel
        assert page.locator(f"{card} .zoom-level").inner_text() == "100 % of full resolution"
        # drag pans: the translation moves
        before = translate_of(page, img)
        box = page.locator(card + " .viewer").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2 + 40, steps=5)
        page.mouse.up()
        after = translate_of(page, img)
        assert after != before
        # the mouse wheel zooms too (a wheel up over a fitted image)
        second_img = f"{lesion} .today .viewer-card:nth-child(2) img"
        b2 = page.locator(f"{lesion} .today .viewer-card:nth-child(2) .viewer").bounding_box()
        page.mouse.move(b2["x"] + b2["width"] / 2, b2["y"] + b2["height"] / 2)
        page.mouse.wheel(0, -300)
        page.wait_for_timeout(450)
        assert scale_of(page, second_img) > 1.0
        page.screenshot(path=str(ARTIFACTS / "reading_zoomed_1366x768.png"))
        # j moves to the next lesion, ? shows the shortcuts
        page.locator("body").click(position={"x": 5, "y": 300})
        page.keyboard.press("j")
        assert "current" in page.locator(".lesion").nth(1).get_attribute("class")
        page.keyboard.press("?")
        assert page.locator("#shortcuts").get_attribute("open") is not None
        page.keyboard.press("?")

        # sign the first read of lesion 1: discharge of a cancer-tier lesion -> a second read is needed
        page.keyboard.press("k")
        page.keyboard.press("r")
        assert page.evaluate("() => document.activeElement.name") == "diagnosis"
        form = f"#report-{first_case}"
        page.select_option(f"{form} select.diagnosis", "Benign:Benign melanocytic proliferations:Nevus")
        page.check(f"{form} input[name=management][value=discharge]")
        page.fill(f"{form} textarea[name=text]", FIRST_WORDS)
        page.click(f"#sign-{first_case}")
        page.wait_for_url(f"**/referrals/{key}#lesion-{first_case}")
        assert "A second, independent read is needed" in page.locator(".flash").inner_text()
        assert FIRST_WORDS in page.locator(form).inner_text()
        assert page.locator(f"#state-{first_case}").text_content().strip() == "Second read needed"
        assert problems == [], problems

        # the 1920x1080 screenshot, and axe-core on the page (axe injected in a CSP-bypassing context)
        wide = browser.new_page(viewport=SIZES["1920x1080"])
        watch(wide, base, problems)
        log_in(wide, f"{base}/referrals/{key}", "dr.one", PASSWORD)
        wide.wait_for_url(f"**/referrals/{key}")
        wait_images(wide)
        wide.screenshot(path=str(ARTIFACTS / "reading_1920x1080.png"))
        wide.screenshot(path=str(ARTIFACTS / "reading_1920x1080_full.png"), full_page=True)
        if AXE.exists():
            for size in SIZES:
                ctx = browser.new_context(viewport=SIZES[size], bypass_csp=True)
                ap = ctx.new_page()
                log_in(ap, f"{base}/referrals/{key}", "dr.one", PASSWORD)
                ap.wait_for_url(f"**/referrals/{key}")
                wait_images(ap)
                found = axe_violations(ap)
                assert found == [], f"{size}: " + "\n".join(found)
                ap.goto(f"{base}/model-card")
                found = axe_violations(ap)
                assert found == [], f"model card {size}: " + "\n".join(found)
                ctx.close()

        # the second reader, once dr.one's claim is released: blind to the first read until theirs is signed
        store = Store(tmp_path / "c.db", tmp_path / "images")
        try:
            claims.release(store.conn, key, "dr.one")
        finally:
            store.close()
        other = browser.new_context(viewport=SIZES["1366x768"]).new_page()
        watch(other, base, problems)
        log_in(other, f"{base}/referrals/{key}", "dr.two", PASSWORD)
        other.wait_for_url(f"**/referrals/{key}")
        wait_images(other)
        text = other.locator("main").inner_text()
        assert "The first read stays hidden until yours is signed" in text
        for leak in (FIRST_WORDS, "Benign › Benign melanocytic proliferations › Nevus", "cancer-tier lesion"):
            assert leak not in text
        assert other.locator(f"{form} .read").count() == 0
        other.locator(form).scroll_into_view_if_needed()
        other.screenshot(path=str(ARTIFACTS / "reading_second_reader_blind.png"))
        other.select_option(f"{form} select.diagnosis",
                            "Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma in situ")
        other.check(f"{form} input[name=management][value=biopsy]")
        other.click(f"#sign-{first_case}")
        other.wait_for_url(f"**/referrals/{key}#lesion-{first_case}")
        reads = other.locator(f"{form} .read")
        assert reads.count() == 2 and FIRST_WORDS in reads.first.inner_text()
        assert "Disagrees with the first read" in reads.nth(1).inner_text()
        assert other.locator(f"#state-{first_case}").text_content().strip() == "Third read needed"
        other.locator(form).scroll_into_view_if_needed()
        other.screenshot(path=str(ARTIFACTS / "reading_second_read_signed.png"))
        # Next referral without going back to the list
        other.keyboard.press("Escape")
        other.locator("body").click(position={"x": 5, "y": 300})
        other.keyboard.press("n")
        other.wait_for_url(re.compile(r"/referrals/[0-9a-f-]{36}$"))
        assert key not in other.url
        assert problems == [], problems
