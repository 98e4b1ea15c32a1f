"""The referral review page and the signed report per lesion, through the real app on a real SQLite file:
signing, addenda only afterwards, second reads by the config's rules (blind until signed), disagreement to
the named lead, claims, two readers at once, forged and replayed forms, earlier images, Next referral."""

from __future__ import annotations

import re
import sqlite3
import threading

import pytest

from dashboard import create_app, readhooks, reports, sample
from dashboard.readingconfig import ReadingConfig
from dashboard.store import Store
from dashboard.store import reports as table
from tests.dashauth import csrf_token, logged_in

BENIGN_NAEVUS = "Benign:Benign melanocytic proliferations:Nevus"
MELANOMA = "Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma Invasive"


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def with_risk(header, risk):
    return header.model_copy(update={"classification": header.classification.model_copy(update={"risk": risk})})


@pytest.fixture
def make_app(tmp_path):
    def make(**reading):
        return create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"),
                           "TESTING": True, "READING": ReadingConfig(**({"audit_share": 0.0} | reading))})
    return make


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "c.db", tmp_path / "images")
    yield s
    s.close()


def save(store, cases):
    for h, ims in cases:
        store.save_case(h, ims)
    return str(cases[0][0].referral.referral_id)


def form_of(html: str, case_id: str) -> dict:
    """The CSRF token and version of the report form of one lesion."""
    start = html.index(f'/lesions/{case_id}/report"')
    part = html[start:]
    return {"csrf_token": csrf_token(part), "version": re.search(r'name="version" value="(\d+)"', part).group(1)}


def sign(client, key, case_id, diagnosis=BENIGN_NAEVUS, management="discharge", text="", page=None):
    html = page if page is not None else client.get(f"/referrals/{key}").get_data(as_text=True)
    data = form_of(html, case_id) | {"diagnosis": diagnosis, "management": management, "text": text}
    return client.post(f"/referrals/{key}/lesions/{case_id}/report", data=data)


def test_sign_then_only_addenda_and_sqlite_refuses_edits(make_app, store):
    app = make_app()
    [(h, ims)] = sample.make_referral(61)
    key = save(store, [(with_risk(h, "benign"), ims)])
    derm = logged_in(app, "dr.one", "dermatologist")
    page = derm.get(f"/referrals/{key}").get_data(as_text=True)
    cid = str(h.case_id)
    r = sign(derm, key, cid, text="Regular network, no change.", page=page)
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/referrals/{key}#lesion-{cid}")
    page = derm.get(f"/referrals/{key}").get_data(as_text=True)
    body = text_of(page)
    assert "First read · dr.one" in body and "Benign › Benign melanocytic proliferations › Nevus" in body
    assert 'id="referral-status">Signed<' in page and f'/lesions/{cid}/report"' not in page  # no second form
    assert reports.referral_signed(store.conn, key)
    # the same form again (a replay): refused, nothing changed
    r = derm.post(f"/referrals/{key}/lesions/{cid}/report",
                  data={"csrf_token": csrf_token(page), "version": "0", "diagnosis": MELANOMA, "management": "biopsy"})
    assert r.status_code == 409 and "already sent" in text_of(r.get_data(as_text=True))
    rows = table.reports_for(store.conn, key)
    assert [(x["kind"], x["diagnosis"]) for x in rows] == [("first", BENIGN_NAEVUS)]
    # an addendum: kept beside the signed report
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    r = derm.post(f"/referrals/{key}/lesions/{cid}/addendum",
                  data={"csrf_token": csrf_token(page), "version": version, "addendum": "Histology: compound naevus."})
    assert r.status_code == 302
    body = text_of(derm.get(f"/referrals/{key}").get_data(as_text=True))
    assert "Addendum · dr.one" in body and "Histology: compound naevus." in body and "Regular network" in body
    # SQLite itself refuses an edit or a deletion of a signed report or an addendum
    for sql in ("UPDATE reports SET diagnosis = 'Malignant'", "DELETE FROM reports",
                "UPDATE report_addenda SET text = 'x'", "DELETE FROM report_addenda"):
        with pytest.raises(sqlite3.IntegrityError, match="never"):
            store.conn.execute(sql)


def test_bad_reports_refused_with_a_message_and_nothing_written(make_app, store):
    app = make_app()
    [(h, ims)] = sample.make_referral(62)
    key, cid = save(store, [(h, ims)]), str(h.case_id)
    derm = logged_in(app, "dr.one", "dermatologist")
    page = derm.get(f"/referrals/{key}").get_data(as_text=True)
    for data, message in (({"diagnosis": "", "management": "discharge"}, "Choose a diagnosis"),
                          ({"diagnosis": "Benign:Not a diagnosis", "management": "discharge"}, "ISIC diagnosis hierarchy"),
                          ({"diagnosis": BENIGN_NAEVUS, "management": ""}, "Choose the management"),
                          ({"diagnosis": BENIGN_NAEVUS, "management": "re-image"}, "Say why the lesion must be re-imaged"),
                          ({"diagnosis": BENIGN_NAEVUS, "management": "re-image", "text": "NHS 943 476 5919 blurred"},
                           "patient identifier")):
        r = derm.post(f"/referrals/{key}/lesions/{cid}/report", data=form_of(page, cid) | data)
        assert r.status_code == 422, data
        html = r.get_data(as_text=True)
        assert message in text_of(html), (data, text_of(html)[:300])
        assert 'role="alert" id="report-error"' in html
        if data["diagnosis"] == BENIGN_NAEVUS:  # what was typed and chosen is kept in the form
            assert f'value="{BENIGN_NAEVUS}" selected>' in html
            assert data.get("text", "") in html
    # an addendum to a lesion with no signed report
    r = derm.post(f"/referrals/{key}/lesions/{cid}/addendum",
                  data=form_of(page, cid) | {"addendum": "second thoughts"})
    assert r.status_code == 422 and "no signed report yet" in text_of(r.get_data(as_text=True))
    # a forged form (no CSRF token) and a form without a version
    r = derm.post(f"/referrals/{key}/lesions/{cid}/report", data={"version": "0", "diagnosis": BENIGN_NAEVUS,
                                                                  "management": "discharge"})
    assert r.status_code == 400 and "The form was refused" in r.get_data(as_text=True)
    r = derm.post(f"/referrals/{key}/lesions/{cid}/report", data={"csrf_token": csrf_token(page),
                                                                  "diagnosis": BENIGN_NAEVUS, "management": "discharge"})
    assert r.status_code == 409 and "no valid version" in r.get_data(as_text=True)
    assert table.reports_for(store.conn, key) == [] and table.version(store.conn, key) == 0


@pytest.mark.parametrize("risk,fitz,diagnosis,management,share,expected", [
    ("cancer", "II", MELANOMA, "discharge", 0.0, "cancer-tier lesion discharged"),
    ("benign", "II", MELANOMA, "urgent-2ww", 0.0, "differs from the classifier"),
    ("benign", "V", BENIGN_NAEVUS, "discharge", 0.0, "discharge of skin type V"),
    ("benign", "II", BENIGN_NAEVUS, "discharge", 1.0, "random audit"),
    ("benign", "II", BENIGN_NAEVUS, "discharge", 0.0, None),
    ("cancer", "VI", MELANOMA, "urgent-2ww", 0.0, None),
])
def test_second_read_rules(make_app, store, risk, fitz, diagnosis, management, share, expected):
    app = make_app(audit_share=share)
    [(h, ims)] = sample.make_referral(63, fitzpatrick=fitz)
    key, cid = save(store, [(with_risk(h, risk), ims)]), str(h.case_id)
    derm = logged_in(app, "dr.one", "dermatologist")
    assert sign(derm, key, cid, diagnosis, management).status_code == 302
    [first] = table.reports_for(store.conn, key)
    if expected is None:
        assert first["second_read"] is None and reports.referral_signed(store.conn, key)
    else:
        assert expected in first["second_read"] and not reports.referral_signed(store.conn, key)


def test_second_read_blind_then_disagreement_to_the_named_lead(make_app, store):
    app = make_app(lead="dr.lead")
    signed_keys = []
    readhooks.register_on_signed(app, lambda st, k: signed_keys.append((k, reports.referral_signed(st.conn, k))))
    [(h, ims)] = sample.make_referral(64)
    key, cid = save(store, [(with_risk(h, "cancer"), ims)]), str(h.case_id)
    one = logged_in(app, "dr.one", "dermatologist")
    assert sign(one, key, cid, BENIGN_NAEVUS, "discharge", "Looks like a benign naevus to me.").status_code == 302
    page = text_of(one.get(f"/referrals/{key}").get_data(as_text=True))
    assert "its second read must be another dermatologist" in page
    from dashboard import claims
    claims.release(store.conn, key, "dr.one")  # dr.one is done with it

    two = logged_in(app, "dr.two", "dermatologist")
    html = two.get(f"/referrals/{key}").get_data(as_text=True)
    page = text_of(html)
    # blind: nothing of the first read (reader's words, diagnosis, management, why a second read) is on the page
    assert "The first read stays hidden until yours is signed" in page and "Sign second read" in page
    for leak in ("Looks like a benign naevus", "Benign › Benign melanocytic proliferations › Nevus",
                 "cancer-tier lesion discharged", "First read ·"):
        assert leak not in page, leak
    r = sign(two, key, cid, MELANOMA, "urgent-2ww", "Atypical network, regression.", page=html)
    assert r.status_code == 302
    page = text_of(two.get(f"/referrals/{key}").get_data(as_text=True))
    assert "Looks like a benign naevus" in page and "Disagrees with the first read" in page
    assert "the lead, dr.lead, settles it" in page and signed_keys == []
    claims.release(store.conn, key, "dr.two")

    three = logged_in(app, "dr.three", "dermatologist")
    html = three.get(f"/referrals/{key}").get_data(as_text=True)
    assert f'/lesions/{cid}/report"' not in html  # no form for them; a hand-made one is refused
    data = {"csrf_token": csrf_token(html), "version": re.search(r'name="version" value="(\d+)"', html).group(1),
            "diagnosis": MELANOMA, "management": "urgent-2ww"}
    r = three.post(f"/referrals/{key}/lesions/{cid}/report", data=data)
    assert r.status_code == 422 and "the lead, dr.lead, settles it" in text_of(r.get_data(as_text=True))
    claims.release(store.conn, key, "dr.three")
    lead = logged_in(app, "dr.lead", "dermatologist")
    assert sign(lead, key, cid, MELANOMA, "urgent-2ww", "Agree with the second read.").status_code == 302
    assert signed_keys == [(key, True)]
    [final] = reports.final_outcome(store.conn, key)
    assert (final["reader"], final["management"], final["lesion_id"]) == ("dr.lead", "urgent-2ww", "L1")


def test_claimed_by_another_reader_refused(make_app, store):
    app = make_app()
    [(h, ims)] = sample.make_referral(65)
    key, cid = save(store, [(h, ims)]), str(h.case_id)
    one = logged_in(app, "dr.one", "dermatologist")
    one.get(f"/referrals/{key}")
    two = logged_in(app, "dr.two", "dermatologist")
    r = sign(two, key, cid)
    assert r.status_code == 409
    assert "dr.one holds this referral" in text_of(r.get_data(as_text=True))
    assert table.reports_for(store.conn, key) == []


def test_two_forms_of_one_version_one_wins_the_other_is_told(make_app, store):
    app = make_app()
    [(h, ims)] = sample.make_referral(66)
    key, cid = save(store, [(h, ims)]), str(h.case_id)
    one = logged_in(app, "dr.one", "dermatologist")
    page = one.get(f"/referrals/{key}").get_data(as_text=True)  # two tabs of one page: the same version
    assert sign(one, key, cid, BENIGN_NAEVUS, "discharge", page=page).status_code == 302
    r = sign(one, key, cid, MELANOMA, "urgent-2ww", page=page)
    assert r.status_code == 409
    assert "dr.one signed a report at" in text_of(r.get_data(as_text=True))
    assert [x["diagnosis"] for x in table.reports_for(store.conn, key)] == [BENIGN_NAEVUS]


def test_racing_signatures_on_separate_connections(tmp_path, store):
    """Two threads sign the same lesion from the same version at once: exactly one report, one StaleForm."""
    [(h, ims)] = sample.make_referral(67)
    key = save(store, [(h, ims)])
    from dashboard import claims, ensure_schema
    ensure_schema(store.conn)
    claims.claim(store.conn, key, "dr.one")
    case = store.get_case(h.case_id)
    results, barrier = [], threading.Barrier(2)

    def attempt(diagnosis):
        s = Store(tmp_path / "c.db", tmp_path / "images")
        try:
            barrier.wait()
            results.append(reports.sign(s.conn, key, case, 1, "dr.one", 0, diagnosis, "discharge", "",
                                        ReadingConfig(audit_share=0)))
        except reports.StaleForm as exc:
            results.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=attempt, args=(d,)) for d in (BENIGN_NAEVUS, MELANOMA)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert sorted(type(r).__name__ for r in results) == ["Signed", "StaleForm"]
    assert len(table.reports_for(store.conn, key)) == 1 and table.version(store.conn, key) == 1


def test_earlier_images_next_referral_model_card_and_old_case_page(make_app, store):
    app = make_app()
    nhs = sample.synthetic_nhs_number(700)
    old = sample.make_referral(5, nhs=nhs)          # lesion 1: posterior torso, left, an earlier referral
    new = sample.make_referral(100, nhs=nhs)        # the same site and side, referred later
    other_side = sample.make_referral(101, nhs=nhs)  # another site: not the same lesion
    other = sample.make_referral(102)
    keys = [save(store, c) for c in (old, new, other_side, other)]
    derm = logged_in(app, "dr.one", "dermatologist")
    html = derm.get(f"/referrals/{keys[1]}").get_data(as_text=True)
    cid = str(new[0][0].case_id)
    earlier = html[html.index(f'id="earlier-{cid}"'):html.index(f'id="report-{cid}"')]
    for sha in (m.sha256 for m in old[0][0].images):
        assert f"/images/{sha}.jpg" in earlier
    for sha in (m.sha256 for m in other_side[0][0].images):
        assert sha not in html
    assert old[0][0].referral.referral_date.strftime("%d %b %Y") in text_of(earlier)
    # the old referral has no earlier images of its own (the later one is not "earlier")
    assert 'class="earlier"' not in derm.get(f"/referrals/{keys[0]}").get_data(as_text=True)
    # no patient identifier in any URL of the page
    for url in re.findall(r'(?:href|src|action)="([^"]+)"', html):
        for secret in (nhs, new[0][0].referral.reference, new[0][0].patient.date_of_birth.isoformat()):
            assert secret not in url
    # Next referral: another referral, never the same one
    r = derm.get(f"/referrals/{keys[1]}/next")
    assert r.status_code == 302 and "/referrals/" in r.headers["Location"] and keys[1] not in r.headers["Location"]
    card = derm.get("/model-card")
    assert card.status_code == 200 and "Model card" in card.get_data(as_text=True)
    assert 'href="/model-card"' in html
    # the per-case page still works and a v2 case id leads to its referral
    assert derm.get(f"/cases/{new[0][0].case_id}").status_code == 200
    r = derm.get(f"/referrals/{new[0][0].case_id}")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/referrals/{keys[1]}")
    assert derm.get("/referrals/not-a-key").status_code == 404


def test_v1_case_is_a_one_lesion_referral(make_app, store):
    app = make_app()
    h, ims = sample.make_case(68)
    store.save_case(h, ims)
    key = str(h.case_id)
    derm = logged_in(app, "dr.one", "dermatologist")
    html = derm.get(f"/referrals/{key}").get_data(as_text=True)
    assert "schema version 1" in html and f"/images/{h.images[0].sha256}.jpg" in html
    assert sign(derm, key, key, BENIGN_NAEVUS, "routine", page=html).status_code == 302
    assert [x["case_id"] for x in table.reports_for(store.conn, key)] == [key]


def test_skin_type_v_notice_and_ai_refused_on_the_referral_page(make_app, store):
    from dashboard import casefacts
    app = make_app()
    key = save(store, sample.make_referral(69, fitzpatrick="V", ai=False))
    derm = logged_in(app, "dr.one", "dermatologist")
    page = text_of(derm.get(f"/referrals/{key}").get_data(as_text=True))
    assert casefacts.SKIN_TYPE_NOTICE in page and "classifier not validated" in page
    assert "AI analysis refused by the patient: no classifier ran" in page


def test_next_referral_follows_the_worklist_order_and_skips_what_the_reader_cannot_sign(make_app, store):
    from datetime import datetime, timedelta, timezone

    from dashboard import claims
    app = make_app()
    t0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
    order = []
    for n, (seed, risk) in enumerate(((71, "benign"), (72, "cancer"), (73, "pre-cancer"), (74, "cancer"))):
        [(h, ims)] = sample.make_referral(seed)
        store.save_case(with_risk(h, risk), ims, received_at=t0 + timedelta(minutes=n))
        order.append(str(h.referral.referral_id))
    benign, cancer_a, pre, cancer_b = order   # seed 72 is referred before seed 74: cancer_a first
    derm = logged_in(app, "dr.one", "dermatologist")

    def nxt(key):
        r = derm.get(f"/referrals/{key}/next")
        assert r.status_code == 302
        return r.headers["Location"].rsplit("/", 1)[-1]

    assert nxt(cancer_a) == cancer_b and nxt(cancer_b) == pre and nxt(pre) == benign
    assert nxt(benign) == cancer_a                      # wraps round to the start
    claims.claim(store.conn, cancer_b, "dr.other")      # held by another reader: skipped
    assert nxt(cancer_a) == pre
    # a referral the reader signed (final) leaves the queue
    ak = "Indeterminate:Indeterminate epidermal proliferations:Solar or actinic keratosis"
    assert sign(derm, pre, str(sample.make_referral(73)[0][0].case_id), ak, "biopsy").status_code == 302
    assert reports.referral_signed(store.conn, pre)
    assert nxt(cancer_a) == benign
