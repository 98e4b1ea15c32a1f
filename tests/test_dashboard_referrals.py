"""The case page and worklist for schema-version-2 cases (real SQLite file, the real app and its log-in)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest

from dashboard import casefacts, create_app, sample
from dashboard.store import Store
from tests.dashauth import logged_in
from wire.referral import format_nhs_number


@pytest.fixture
def app(tmp_path):
    return create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"), "TESTING": True})


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "c.db", tmp_path / "images")
    yield s
    s.close()


@pytest.fixture
def client(app):
    return logged_in(app, "derm", "dermatologist")


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_case_page_shows_patient_referral_consents_lesion_and_other_lesions(client, store):
    cases = sample.make_referral(41, lesions=2, override=True)
    for h, ims in cases:
        store.save_case(h, ims)
    h = cases[0][0]
    r = client.get(f"/cases/{h.case_id}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    page = text_of(html)
    p = h.patient
    assert format_nhs_number(p.nhs_number) in page and p.nhs_number not in page  # 3-3-4 only
    assert p.date_of_birth.strftime("%d %b %Y") in page and f"age {casefacts.age_on(p.date_of_birth)}" in page
    assert casefacts.SEX_NAMES[p.sex] in page and f"Fitzpatrick {p.fitzpatrick}" in page
    assert h.referral.reference in page and "e-RS UBRN" in page and h.referral.practice_ods in page
    assert h.referral.referral_date.strftime("%d %b %Y") in page
    assert casefacts.ROUTE_NAMES[h.referral.route] in page
    for name, rec in (("Photographs for clinical care", h.consents.photography),
                      ("AI analysis", h.consents.ai_analysis), ("Teaching and research use", h.consents.teaching)):
        assert re.search(rf"{name}: {'given' if rec.given else 'refused'} · {rec.at:%Y-%m-%d %H:%M:%S} UTC · by "
                         rf"{rec.by}", page), name
    assert f"Photographer {h.photographer}" in page
    loc = h.lesion.location
    assert f"{loc.site.value}, {loc.laterality}" in page and loc.detail in page
    assert f"NG12 score {h.lesion.history.seven_point_score}" in page
    assert "sent with a reason: Patient could not stay still" in page and "shot 2" in page
    assert "lesion L1 of 2" in page and "2 of 2 received" in page
    other = cases[1][0]
    assert f'href="/cases/{other.case_id}"' in html  # the other lesion, linked by its case UUID
    assert casefacts.SKIN_TYPE_NOTICE not in page and "AI analysis refused" not in page
    # no patient identifier in any URL of the page
    for url in re.findall(r'(?:href|src|action)="([^"]+)"', html):
        for secret in (p.nhs_number, h.referral.reference, p.date_of_birth.isoformat()):
            assert secret not in url, url


def test_fitzpatrick_v_and_ai_declined_notices_and_never_benign_in_the_worklist(client, store):
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    [(fitz, i1)] = sample.make_referral(42, fitzpatrick="V")
    fitz = fitz.model_copy(update={"classification": fitz.classification.model_copy(update={"risk": "benign"})})
    [(declined, i2)] = sample.make_referral(43, ai=False)
    [(benign, i3)] = sample.make_referral(44)
    benign = benign.model_copy(update={"classification": benign.classification.model_copy(update={"risk": "benign"})})
    [(pre, i4)] = sample.make_referral(45)
    pre = pre.model_copy(update={"classification": pre.classification.model_copy(update={"risk": "pre-cancer"})})
    # the benign ones arrive first: the order must come from the rank, not from the arrival
    for n, (h, ims) in enumerate(((benign, i3), (fitz, i1), (pre, i4), (declined, i2))):
        store.save_case(h, ims, received_at=t0 + timedelta(minutes=n))
    page = text_of(client.get(f"/cases/{fitz.case_id}").get_data(as_text=True))
    assert casefacts.SKIN_TYPE_NOTICE in page and "full review needed" in page
    page = text_of(client.get(f"/cases/{declined.case_id}").get_data(as_text=True))
    assert "AI analysis refused by the patient: no classifier ran" in page
    assert casefacts.SKIN_TYPE_NOTICE not in page and "AI analysis: refused" in page
    html = client.get("/cases").get_data(as_text=True)
    order = re.findall(r'data-referral-key="([^"]+)"', html)
    assert order == [str(h.referral.referral_id) for h in (fitz, declined, pre, benign)]
    row = html[html.index(f'data-referral-key="{fitz.referral.referral_id}"'):].split("</tr>")[0]
    assert "full review" in row and fitz.referral.reference in row and "L1 " in row and "Fitzpatrick V–VI" in row
    assert "classifier: benign" in row
    row = html[html.index(f'data-referral-key="{declined.referral.referral_id}"'):].split("</tr>")[0]
    assert "AI refused" in row and "no result" not in row


def test_v1_case_page_unchanged_beside_v2(client, store):
    h, ims = sample.make_case(46)
    store.save_case(h, ims)
    page = text_of(client.get(f"/cases/{h.case_id}").get_data(as_text=True))
    assert f"Referral {h.referral_ref}" in page and "NHS number" not in page and "full review" not in page


def test_age_and_override_wording():
    assert casefacts.age_on(date(1950, 6, 15), date(2026, 6, 14)) == 75
    assert casefacts.age_on(date(1950, 6, 15), date(2026, 6, 15)) == 76
    assert casefacts.override_text({"override_reason": "other", "override_text": "patient in a wheelchair"}) == \
        "sent with a reason: patient in a wheelchair"
    assert casefacts.override_text({"override_reason": "hair-unavoidable", "override_text": ""}) == \
        "sent with a reason: Hair could not be avoided"
    assert casefacts.override_text({"override_reason": None}) is None
