"""The dermatologist's review: decisions on the case page, the worklist's order and filters.
No case ever leaves the worklist without a human decision."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from dashboard import create_app, review, sample
from dashboard.store import Store
from tests.dashauth import csrf_token, logged_in

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def app(tmp_path):
    return create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images")})


@pytest.fixture
def derm(app):
    return logged_in(app, "dr.a", "dermatologist")


def _save(tmp_path, seed, risk, minutes):
    """A case with the given risk tier (None: no classifier output), received at T0 + minutes."""
    s = Store(tmp_path / "c.db", tmp_path / "images")
    h, ims = sample.make_case(seed, n_images=1)
    if risk is None:
        h = h.model_copy(update={"classification": None,
                                 "images": [h.images[0].model_copy(update={"classification": None})]})
    else:
        h = h.model_copy(update={"classification": h.classification.model_copy(update={"risk": risk})})
    s.save_case(h, ims, received_at=T0 + timedelta(minutes=minutes))
    s.close()
    return h


def _decide(client, case_id, outcome, note=""):
    token = csrf_token(client.get(f"/cases/{case_id}").get_data(as_text=True))
    return client.post(f"/cases/{case_id}/decision", data={"csrf_token": token, "outcome": outcome, "note": note})


def _order(html, headers):
    return sorted(headers, key=lambda h: html.index(h.referral_ref))


def test_worklist_orders_by_tier_then_longest_waiting(tmp_path, derm):
    benign_old = _save(tmp_path, 1, "benign", 0)
    cancer_new = _save(tmp_path, 2, "cancer", 50)
    pre_old = _save(tmp_path, 3, "pre-cancer", 5)
    cancer_old = _save(tmp_path, 4, "cancer", 10)
    unknown = _save(tmp_path, 5, None, 40)
    html = derm.get("/cases").get_data(as_text=True)
    assert _order(html, [benign_old, cancer_new, pre_old, cancer_old, unknown]) == \
        [cancer_old, cancer_new, unknown, pre_old, benign_old]


def test_decision_recorded_shown_and_moves_the_case(tmp_path, derm):
    h = _save(tmp_path, 10, "cancer", 0)
    other = _save(tmp_path, 11, "benign", 1)
    cid = str(h.case_id)
    html = derm.get("/cases").get_data(as_text=True)
    row = html[html.index(f'data-referral-key="{cid}"'):].split("</tr>")[0]
    assert "To read" in row and h.referral_ref in row
    r = _decide(derm, cid, "urgent-2ww", "Irregular network; 2WW to the pigmented lesion clinic.")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/cases/{cid}#decision")
    page = derm.get(f"/cases/{cid}").get_data(as_text=True)
    assert "Decision recorded: Urgent suspected-cancer referral (2-week wait)." in page
    assert "Irregular network; 2WW to the pigmented lesion clinic." in page and "dr.a" in page
    open_list = derm.get("/cases").get_data(as_text=True)
    assert h.referral_ref not in open_list and other.referral_ref in open_list
    decided = derm.get("/cases?show=decided").get_data(as_text=True)
    assert h.referral_ref in decided and other.referral_ref not in decided
    row = decided[decided.index(f'data-referral-key="{cid}"'):].split("</tr>")[0]
    assert "Reported" in row and " on day " in row  # the clock stopped the day it was decided
    everything = derm.get("/cases?show=all").get_data(as_text=True)
    assert h.referral_ref in everything and other.referral_ref in everything
    row = sqlite3.connect(tmp_path / "c.db").execute("SELECT reviewer, outcome, decided_at FROM decisions").fetchone()
    assert row[:2] == ("dr.a", "urgent-2ww")
    assert abs(datetime.fromisoformat(row[2]) - datetime.now(timezone.utc)) < timedelta(seconds=30)


def test_better_images_keeps_the_case_open_and_needs_a_note(tmp_path, derm):
    h = _save(tmp_path, 20, "benign", 0)
    cid = str(h.case_id)
    r = _decide(derm, cid, "better-images", "")
    assert r.status_code == 422 and "Say what is wrong with the images" in r.get_data(as_text=True)
    assert _decide(derm, cid, "better-images", "Out of focus; hair over the lesion.").status_code == 302
    assert h.referral_ref in derm.get("/cases").get_data(as_text=True)  # still to read
    assert h.referral_ref not in derm.get("/cases?show=decided").get_data(as_text=True)
    # a later decision amends: the latest counts, the history stays
    assert _decide(derm, cid, "discharge-advice", "Seborrhoeic keratosis; reassure.").status_code == 302
    page = derm.get(f"/cases/{cid}").get_data(as_text=True)
    assert page.index("Seborrhoeic keratosis; reassure.") < page.index("Out of focus; hair over the lesion.")
    assert h.referral_ref not in derm.get("/cases").get_data(as_text=True)


def test_invalid_decisions_are_refused(tmp_path, derm, app):
    h = _save(tmp_path, 30, "cancer", 0)
    cid = str(h.case_id)
    assert _decide(derm, cid, "auto-discharge").status_code == 422
    assert _decide(derm, cid, "routine", "x" * (review.MAX_NOTE + 1)).status_code == 422
    token = csrf_token(derm.get(f"/cases/{cid}").get_data(as_text=True))
    missing = "6f1c1d9e-1111-4222-8333-444455556666"
    assert derm.post(f"/cases/{missing}/decision", data={"csrf_token": token, "outcome": "routine"}).status_code == 404
    it = logged_in(app, "it.a", "it")
    assert it.post(f"/cases/{cid}/decision", data={"csrf_token": csrf_token(it.get("/account").get_data(as_text=True)),
                                                   "outcome": "routine"}).status_code == 403
    assert sqlite3.connect(tmp_path / "c.db").execute("SELECT count(*) FROM decisions").fetchone()[0] == 0
    assert h.referral_ref in derm.get("/cases").get_data(as_text=True)


def test_note_is_escaped(tmp_path, derm):
    h = _save(tmp_path, 40, "benign", 0)
    _decide(derm, str(h.case_id), "routine", "<script>alert(1)</script>")
    page = derm.get(f"/cases/{h.case_id}").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_nothing_is_discharged_without_a_person(tmp_path, derm):
    """However benign the classifier thinks they are, undecided cases all stay on the open worklist."""
    hs = [_save(tmp_path, 50 + i, "benign", i) for i in range(5)]
    html = derm.get("/cases").get_data(as_text=True)
    assert all(h.referral_ref in html for h in hs)
    assert "To read <span class=\"count\">5</span>" in html
    assert sqlite3.connect(tmp_path / "c.db").execute("SELECT count(*) FROM decisions").fetchone()[0] == 0


def test_export_is_csv_of_latest_decisions_and_audited(tmp_path, derm, app):
    import csv
    import io

    a = _save(tmp_path, 60, "cancer", 0)
    b = _save(tmp_path, 61, "benign", 1)
    _save(tmp_path, 62, "benign", 2)  # undecided: not exported
    _decide(derm, str(a.case_id), "routine", "first thoughts")
    _decide(derm, str(a.case_id), "urgent-2ww", "=HYPERLINK(\"http://evil\")")
    _decide(derm, str(b.case_id), "discharge-advice", "reassure")
    r = derm.get("/cases/export.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv" and r.headers["Cache-Control"] == "no-store"
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="dermkiosk-decisions-') and a.referral_ref not in disposition
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [(x["referral_ref"], x["outcome"]) for x in rows] == [(a.referral_ref, "urgent-2ww"),
                                                                  (b.referral_ref, "discharge-advice")]
    assert rows[0]["note"] == "'=HYPERLINK(\"http://evil\")"  # not run as a formula by a spreadsheet
    entry = sqlite3.connect(tmp_path / "c.db").execute(
        "SELECT actor, target, detail FROM audit_log WHERE action = 'export'").fetchall()
    assert entry == [("dr.a", "decisions.csv", "2 decided cases")]
    assert logged_in(app, "it.b", "it").get("/cases/export.csv").status_code == 403
