"""The referral worklist through the real app over a real SQLite file: order (most severe lesion, full review
never benign, then the clock), filters, search by POST only (audited, no identifier in a URL), the clock's
warnings and breaches, claims between two readers, and the query plan that keeps it fast."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from dashboard import clock, create_app, sample, worklist
from dashboard.store import Store
from dashboard.worklistconfig import WorklistConfig
from tests.dashauth import csrf_token, logged_in
from wire.referral import format_nhs_number


def today():
    """Today in England, read when a test saves its referrals (not when the module is collected: a suite that
    runs across midnight would otherwise date them a day before the pages it checks)."""
    return clock.today_in_england()


@pytest.fixture
def app(tmp_path):
    return create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"), "TESTING": True})


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "c.db", tmp_path / "images")
    yield s
    s.close()


@pytest.fixture
def derm(app):
    return logged_in(app, "dr.a", "dermatologist")


def save_referral(store, seed, *, days_ago=3, risks=("benign",), site="site-1", **kw):
    """A referral of ``len(risks)`` lesions with these classifier tiers, referred ``days_ago`` days ago."""
    cases = sample.make_referral(seed, lesions=len(risks), site=site, **kw)
    ref_date = today() - timedelta(days=days_ago)
    out = []
    for (h, ims), risk in zip(cases, risks):
        update = {"referral": h.referral.model_copy(update={"referral_date": ref_date})}
        if h.classification is not None:
            update["classification"] = h.classification.model_copy(update={"risk": risk})
        out.append((h.model_copy(update=update), ims))
    store.save_cases([(h, ims, datetime.now(timezone.utc)) for h, ims in out])
    return out[0][0]


def keys(html: str) -> list[str]:
    return re.findall(r'data-referral-key="([^"]+)"', html)


def row_of(html: str, header) -> str:
    return html[html.index(f'data-referral-key="{header.referral.referral_id}"'):].split("</tr>")[0]


def key(h) -> str:
    return str(h.referral.referral_id)


def test_most_severe_lesion_first_full_review_never_benign_then_the_clock(derm, store):
    benign_old = save_referral(store, 1, days_ago=20)
    mixed = save_referral(store, 2, days_ago=2, risks=("benign", "cancer"))       # one cancer lesion of two
    cancer_old = save_referral(store, 3, days_ago=9, risks=("cancer",))
    fitz = save_referral(store, 4, days_ago=1, fitzpatrick="V")                    # benign, but skin type V
    declined = save_referral(store, 5, days_ago=5, ai=False)                       # AI refused
    pre = save_referral(store, 6, days_ago=25, risks=("pre-cancer", "benign"))
    benign_new = save_referral(store, 7, days_ago=0)
    html = derm.get("/cases").get_data(as_text=True)
    assert keys(html) == [key(h) for h in (cancer_old, mixed, declined, fitz, pre, benign_old, benign_new)]
    assert "2 of 2" in row_of(html, mixed) and "L1 " in row_of(html, mixed) and "L2 " in row_of(html, mixed)
    assert format_nhs_number(mixed.patient.nhs_number) in row_of(html, mixed)
    assert "Day 25 of 28 · 3 days left" in row_of(html, pre) and "clock-warn-2" in row_of(html, pre)
    assert "Day 20 of 28" in row_of(html, benign_old) and "clock-warn-1" in row_of(html, benign_old)
    assert "Day 0 of 28 · 28 days left" in row_of(html, benign_new) and "clock-ok" in row_of(html, benign_new)
    wd = clock.working_days_between(today() - timedelta(days=20), today())
    assert f"{wd} working day{'s' if wd != 1 else ''} · due" in row_of(html, benign_old)


def test_breaches_are_shown_plainly_and_counted(derm, store):
    late = save_referral(store, 10, days_ago=31)
    save_referral(store, 11, days_ago=22)
    save_referral(store, 12, days_ago=3)
    html = derm.get("/cases").get_data(as_text=True)
    assert "BREACHED · day 31, 3 days over" in row_of(html, late) and 'class="referral-row' in html
    alert = re.sub(r"\s+", " ", html[html.index('id="clock-alert"'):].split("</div>")[0])
    assert "1 open referral breached the 28-day Faster Diagnosis Standard." in alert
    assert "1 more waited 21+ days." in alert
    breached = derm.get("/cases?waiting=breach").get_data(as_text=True)
    assert keys(breached) == [key(late)]
    assert len(keys(derm.get("/cases?waiting=21").get_data(as_text=True))) == 2
    assert len(keys(derm.get("/cases?waiting=14").get_data(as_text=True))) == 2


def test_configured_warning_points(tmp_path, store):
    app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"),
                      "WORKLIST": WorklistConfig(warn_days=(5,), claim_minutes=3)})
    c = logged_in(app, "dr.w", "dermatologist")
    h = save_referral(store, 13, days_ago=6)
    html = c.get("/cases").get_data(as_text=True)
    assert "clock-warn-1" in row_of(html, h) and "Waited 5+ days" in html and "Waited 14+ days" not in html
    assert "1 more waited 5+ days." in html


def test_filters_hub_tier_status_fitzpatrick_and_bad_values_named(derm, store):
    a = save_referral(store, 20, site="hub-north", risks=("cancer",))
    b = save_referral(store, 21, site="hub-south")
    c = save_referral(store, 22, site="hub-south", fitzpatrick="VI")
    assert keys(derm.get("/cases?hub=hub-south").get_data(as_text=True)) == [key(c), key(b)]
    assert keys(derm.get("/cases?tier=cancer").get_data(as_text=True)) == [key(a)]
    assert keys(derm.get("/cases?tier=full-review").get_data(as_text=True)) == [key(c)]
    assert keys(derm.get("/cases?fitz=1").get_data(as_text=True)) == [key(c)]
    assert keys(derm.get("/cases?hub=hub-south&tier=benign").get_data(as_text=True)) == [key(b)]
    html = derm.get("/cases?hub=nowhere&tier=purple&show=lost&page=x").get_data(as_text=True)
    for words in ("No hub called &#39;nowhere&#39;", "Unknown tier &#39;purple&#39;", "Unknown status &#39;lost&#39;",
                  "page number must be a whole number"):
        assert words in html, words
    assert len(keys(html)) == 3  # the bad values were dropped, not guessed
    from dashboard.store import summary

    summary.set_status(store.conn, key(b), "second-read", assigned_to="dr.a")
    summary.set_status(store.conn, key(a), "reported")
    assert keys(derm.get("/cases").get_data(as_text=True)) == [key(c), key(b)]
    assert keys(derm.get("/cases?show=second-read").get_data(as_text=True)) == [key(b)]
    assert keys(derm.get("/cases?show=reported").get_data(as_text=True)) == [key(a)]
    assert keys(derm.get("/cases?show=all").get_data(as_text=True)) == [key(c), key(b), key(a)]
    html = derm.get("/cases").get_data(as_text=True)
    assert re.search(r'id="filter-open"[^>]*>To read <span class="count">2</span>', html)
    assert re.search(r'id="filter-second-read"[^>]*>Second read <span class="count">1</span>', html)
    # "mine": waiting for me as second reader (assigned), or held by me
    assert keys(derm.get("/cases?mine=1").get_data(as_text=True)) == [key(b)]


def test_mine_is_what_i_hold(app, derm, store):
    a = save_referral(store, 30)
    b = save_referral(store, 31)
    other = logged_in(app, "dr.b", "dermatologist")
    derm.get(_open_url(store, a))
    other.get(_open_url(store, b))
    assert keys(derm.get("/cases?mine=1").get_data(as_text=True)) == [key(a)]
    assert keys(other.get("/cases?mine=1").get_data(as_text=True)) == [key(b)]
    row = row_of(derm.get("/cases").get_data(as_text=True), b)
    assert "dr.b" in row and "until" in row


def _open_url(store, h) -> str:
    """A page that claims a referral on opening: its first lesion's case page."""
    return f"/cases/{h.case_id}"


def _search(client, text):
    token = csrf_token(client.get("/cases").get_data(as_text=True))
    return client.post("/cases/search", data={"csrf_token": token, "q": text})


def test_search_by_nhs_number_or_reference_by_post_only_and_audited(tmp_path, derm, store):
    a = save_referral(store, 40, nhs=sample.synthetic_nhs_number(900), reference="HUB-7/2026")
    again = save_referral(store, 41, nhs=sample.synthetic_nhs_number(900), days_ago=40)  # same patient, earlier
    save_referral(store, 42)
    nhs = a.patient.nhs_number
    r = _search(derm, format_nhs_number(nhs))   # typed with spaces
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and keys(html) == [key(a), key(again)]
    assert "2 referrals</strong> found by NHS number" in html
    r = _search(derm, "hub-7/2026")            # a local reference, any case
    assert keys(r.get_data(as_text=True)) == [key(a)]
    r = _search(derm, nhs[:9] + str((int(nhs[9]) + 1) % 10))
    assert r.status_code == 422 and "check digit is wrong" in r.get_data(as_text=True)
    r = _search(derm, "12345")
    assert r.status_code == 422 and "Not an NHS number (10 digits) or a referral reference" in r.get_data(as_text=True)
    assert "No referral has that referral reference" in _search(derm, "NOSUCH-1").get_data(as_text=True)
    # never in a URL: no GET search, and no identifier in any link of the answer
    assert derm.get(f"/cases/search?q={nhs}").status_code in (404, 405)
    assert derm.post("/cases/search", data={"q": nhs}).status_code == 400  # no CSRF token
    for url in re.findall(r'(?:href|src|action)="([^"]+)"', html):
        for secret in (nhs, a.referral.reference, "HUB-7"):
            assert secret not in url, url
    rows = sqlite3.connect(tmp_path / "c.db").execute(
        "SELECT actor, target, detail FROM audit_log WHERE action = 'worklist.search' ORDER BY id").fetchall()
    assert [d for _, _, d in rows] == [
        "by NHS number: 2 referrals", "by referral reference: 1 referral",
        "refused: neither an NHS number nor a referral reference",
        "refused: neither an NHS number nor a referral reference", "by referral reference: 0 referrals"]
    assert rows[0][0] == "dr.a" and rows[0][1] == f"{key(a)},{key(again)}"
    log = " ".join(" ".join(r) for r in rows)
    assert nhs not in log and "HUB-7" not in log.upper()


def test_two_readers_one_claim_refused_decision_take_over_and_release(tmp_path, app, derm, store):
    h = save_referral(store, 50, risks=("cancer",))
    other = logged_in(app, "dr.b", "dermatologist")
    page = derm.get(f"/cases/{h.case_id}").get_data(as_text=True)   # opening claims it
    assert "You hold this referral" in page
    page = other.get(f"/cases/{h.case_id}").get_data(as_text=True)
    assert "Held by dr.a" in page and 'id="claim-take-over"' in page
    r = other.post(f"/cases/{h.case_id}/decision", data={"csrf_token": csrf_token(page), "outcome": "routine",
                                                         "note": "mine"})
    assert r.status_code == 409 and "dr.a holds this referral now" in r.get_data(as_text=True)
    db = sqlite3.connect(tmp_path / "c.db")
    assert db.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0
    # dr.b takes it over; dr.a's decision is then refused, nothing overwritten
    r = other.post(f"/referrals/{key(h)}/claim/take-over", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 302
    page_a = derm.get("/cases").get_data(as_text=True)
    r = derm.post(f"/cases/{h.case_id}/decision", data={"csrf_token": csrf_token(page_a), "outcome": "routine",
                                                        "note": "x"})
    assert r.status_code == 409 and "dr.b holds this referral now" in r.get_data(as_text=True)
    r = derm.post(f"/referrals/{key(h)}/claim/release", data={"csrf_token": csrf_token(page_a)})
    assert r.status_code == 302  # refused with a message: only the holder may release
    assert "Only dr.b, who holds this referral, can release it" in derm.get("/cases").get_data(as_text=True)
    r = other.post(f"/cases/{h.case_id}/decision", data={"csrf_token": csrf_token(page), "outcome": "urgent-2ww",
                                                         "note": "2WW"})
    assert r.status_code == 302
    r = other.post(f"/referrals/{key(h)}/claim/release", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 302 and r.headers["Location"] == "/cases"
    assert db.execute("SELECT reviewer, outcome FROM decisions").fetchall() == [("dr.b", "urgent-2ww")]
    actions = db.execute("SELECT action, actor FROM audit_log WHERE action LIKE 'claim.%' OR action LIKE "
                         "'decision.%' ORDER BY id").fetchall()
    assert actions == [("claim.take", "dr.a"), ("claim.refused", "dr.b"), ("decision.refused", "dr.b"),
                       ("claim.takeover", "dr.b"), ("decision.refused", "dr.a"), ("decision.record", "dr.b"),
                       ("claim.release", "dr.b")]
    assert other.post("/referrals/not-a-key/claim/take-over", data={"csrf_token": csrf_token(page)}).status_code == 404


def test_a_referral_is_reported_once_every_lesion_is_decided(derm, store):
    h = save_referral(store, 60, risks=("benign", "pre-cancer"))
    lesions = store.referral_cases(key(h))
    for n, lesion in enumerate(lesions):
        page = derm.get(f"/cases/{lesion['case_id']}").get_data(as_text=True)
        derm.post(f"/cases/{lesion['case_id']}/decision", data={"csrf_token": csrf_token(page),
                                                                 "outcome": "discharge-advice", "note": "ok"})
        reported = keys(derm.get("/cases?show=reported").get_data(as_text=True))
        assert reported == ([key(h)] if n == 1 else [])


def test_the_default_page_reads_the_summary_by_its_index(store):
    """Speed by construction: the first page and the counts walk indexes, with no sort of the whole table."""
    save_referral(store, 70)
    cfg = WorklistConfig()
    plans, statements = [], []
    store.conn.set_trace_callback(statements.append)
    worklist.page(store.conn, worklist.Filters(), "dr.a", cfg)
    assert worklist.counts(store.conn, worklist.Filters(), "dr.a", cfg)["open"] == 1
    worklist.clock_alerts(store.conn, cfg)
    store.conn.set_trace_callback(None)
    plans = [s for s in statements if "referral_summary" in s]
    assert len(plans) == 2  # the page and the clock alerts; the tabs' counts come from summary_counts
    assert any("FROM summary_counts" in s for s in statements)
    for sql in plans:
        plan = " ".join(r[3] for r in store.conn.execute("EXPLAIN QUERY PLAN " + sql.replace("?", "NULL")))
        assert "USING" in plan and "INDEX" in plan, (sql, plan)
        assert "TEMP B-TREE" not in plan, (sql, plan)
        assert not re.search(r"SCAN s\b(?! USING)", plan) and not re.search(r"SCAN referral_summary\b(?! USING)",
                                                                             plan), (sql, plan)
