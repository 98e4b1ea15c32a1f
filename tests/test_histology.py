"""Histology per lesion on a real SQLite store through the real app: the referral page's form (dermatologist;
admin through the same endpoint), the pathology CSV import with good, duplicate, unmatched and invalid rows listed
back, the audit entries, and SQLite refusing to edit or delete a result."""

from __future__ import annotations

import io
import sqlite3

import pytest

from dashboard import create_app, histology, sample
from dashboard.store import Store
from dashboard.store import histology as table
from tests.dashauth import csrf_token, logged_in

MEL = "Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma Invasive"
NAEVUS = "Benign:Benign melanocytic proliferations:Nevus"
HEADER = "referral_reference,lesion_id,diagnosis,benign_malignant,confirm_type,report_date,report_reference\n"


def referral_env(tmp_path, seed: int, **referral):
    """The app and a store on fresh files in ``tmp_path``, with one two-lesion referral stored in it
    (``sample.make_referral(seed, lesions=2, **referral)``); the caller closes the store."""
    app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"), "TESTING": True})
    store = Store(tmp_path / "c.db", tmp_path / "images")
    cases = sample.make_referral(seed, lesions=2, **referral)
    for h, ims in cases:
        store.save_case(h, ims)
    return app, store, cases


@pytest.fixture
def env(tmp_path):
    app, store, cases = referral_env(tmp_path, 71)
    yield app, store, cases
    store.close()


def audit_rows(store, action):
    return store.conn.execute("SELECT actor, target, detail FROM audit_log WHERE action = ?", (action,)).fetchall()


def test_csv_import_lists_duplicate_unmatched_and_invalid_rows(env):
    _, store, cases = env
    ref = cases[0][0].referral.reference
    data = HEADER + (f"{ref},L1,{MEL},malignant,histopathology,2026-02-01,PATH-1\n"
                     f"{ref},l2,{NAEVUS},,,2026-02-01,PATH-2\n"          # case-insensitive lesion, defaults
                     f"{ref},L1,{MEL},malignant,histopathology,2026-02-01,PATH-1\n"     # the same lesion again
                     f"999999999999,L1,{NAEVUS},benign,histopathology,2026-02-01,PATH-3\n"  # no such referral
                     f"{ref},L9,{NAEVUS},benign,histopathology,2026-02-01,PATH-4\n"      # no such lesion
                     f"{ref},L2,{NAEVUS},malignant,histopathology,2026-02-01,PATH-5\n"   # contradicts
                     f"{ref},L2,Benign:Nope,,,2026-02-01,PATH-6\n"
                     f"{ref},L2,{NAEVUS},,,01/02/2026,PATH-7\n")
    r = histology.import_csv(store.conn, data.encode(), "dr.one", "dermatologist")
    assert [x["line"] for x in r.stored] == [2, 3]
    assert [(x["line"], x["reason"]) for x in r.duplicates] == [(4, "the same lesion as line 2")]
    assert [x["line"] for x in r.unmatched] == [5, 6]
    assert [x["line"] for x in r.invalid] == [7, 8, 9]
    assert "contradicts the diagnosis, which is benign" in r.invalid[0]["reason"]
    assert r.invalid[1]["reason"].startswith("diagnosis:") and r.invalid[2]["reason"].startswith("report_date:")
    l1, l2 = (str(h.case_id) for h, _ in cases)
    assert table.current(store.conn, l1)["benign_malignant"] == "malignant"
    assert table.current(store.conn, l2)["confirm_type"] == "histopathology"
    # the same file again: every stored row is now a duplicate of what the lesion has; nothing new stored
    again = histology.import_csv(store.conn, data, "dr.one", "dermatologist")
    assert not again.stored and [x["line"] for x in again.duplicates] == [2, 3, 4]
    assert store.conn.execute("SELECT count(*) FROM histology").fetchone()[0] == 2
    assert [d for _, _, d in audit_rows(store, "histology.import")] == [
        "2 stored, 1 duplicate, 2 unmatched, 3 invalid", "0 stored, 3 duplicate, 2 unmatched, 3 invalid"]
    with pytest.raises(histology.HistologyError, match="lacks the column"):
        histology.import_csv(store.conn, "referral_reference,diagnosis\nx,y\n", "dr.one")
    with pytest.raises(sqlite3.IntegrityError, match="never edited"):
        store.conn.execute("UPDATE histology SET diagnosis = ?", (NAEVUS,))
    with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
        store.conn.execute("DELETE FROM histology")


def test_referral_page_form_records_and_corrects_a_result(env):
    app, store, cases = env
    key, l1 = str(cases[0][0].referral.referral_id), str(cases[0][0].case_id)
    derm = logged_in(app, "dr.one", "dermatologist")
    page = derm.get(f"/referrals/{key}").get_data(as_text=True)
    assert 'id="histology"' in page and "No histology yet." in page
    form = {"csrf_token": csrf_token(page), "diagnosis": MEL, "benign_malignant": "", "confirm_type": "histopathology",
            "report_date": "2026-02-03", "report_reference": "PATH-77"}
    r = derm.post(f"/referrals/{key}/histology/{l1}", data=form)
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/referrals/{key}#histology")
    page = derm.get(f"/referrals/{key}").get_data(as_text=True)
    assert "Malignant</strong>: Malignant › Malignant melanocytic proliferations (Melanoma) › Melanoma Invasive" in page
    assert "PATH-77" in page
    # the same again is refused with a message; a wrong date names the field
    derm.post(f"/referrals/{key}/histology/{l1}", data=form)
    assert "exactly this result" in derm.get(f"/referrals/{key}").get_data(as_text=True)
    derm.post(f"/referrals/{key}/histology/{l1}", data=form | {"report_date": "yesterday"})
    assert "report_date: a date as YYYY-MM-DD" in derm.get(f"/referrals/{key}").get_data(as_text=True)
    # an admin corrects it through the same endpoint; the latest stands, the earlier is kept
    admin = logged_in(app, "ad.one", "admin")
    page = admin.get("/histology/import").get_data(as_text=True)
    r = admin.post(f"/referrals/{key}/histology/{l1}", data=form | {"csrf_token": csrf_token(page),
                                                                     "diagnosis": NAEVUS})
    assert r.status_code == 302
    assert table.current(store.conn, l1)["entered_by"] == "ad.one"
    assert len(table.for_referral(store.conn, key)[l1]) == 2
    assert [(a, t) for a, t, _ in audit_rows(store, "histology.enter")] == [("dr.one", key), ("ad.one", key)]
    # a lesion of another referral is refused
    other = sample.make_referral(72)
    store.save_case(*other[0])
    derm.post(f"/referrals/{key}/histology/{other[0][0].case_id}", data=form)
    assert "not on this referral" in derm.get(f"/referrals/{key}").get_data(as_text=True)
    assert logged_in(app, "it.one", "it").post(f"/referrals/{key}/histology/{l1}", data=form).status_code in (400, 403)


def test_import_page_lists_rows_back(env):
    app, _, cases = env
    ref = cases[0][0].referral.reference
    derm = logged_in(app, "dr.one", "dermatologist")
    page = derm.get("/histology/import").get_data(as_text=True)
    body = HEADER + f"{ref},L1,{MEL},,,2026-02-01,PATH-1\nNOPE,L1,{MEL},,,2026-02-01,PATH-2\n"
    r = derm.post("/histology/import", data={"csrf_token": csrf_token(page),
                                             "file": (io.BytesIO(body.encode()), "path.csv")},
                  content_type="multipart/form-data")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "1 stored, 0 duplicate, 1 unmatched, 0 invalid" in html
    assert 'id="import-unmatched"' in html and "NOPE" in html
    r = derm.post("/histology/import", data={"csrf_token": csrf_token(page),
                                             "file": (io.BytesIO(b"\xff\xfe\x00"), "bad.csv")},
                  content_type="multipart/form-data")
    assert r.status_code == 422 and "not UTF-8" in r.get_data(as_text=True)
