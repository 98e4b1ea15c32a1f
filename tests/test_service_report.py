"""The service report on a seeded store (a real SQLite file, referrals stored by ``Store.save_case``, reads signed by
``dashboard.reports.sign``, histology imported by ``dashboard.histology.import_csv``) against hand-computed answers.

The seed: 13 one-lesion referrals of 13 patients, all dated Monday 5 January 2026 (no bank holiday until
9 February), decided k calendar days later at noon UTC:

==  ========  ===========================  ==============  =========  ====  =====  ===========
#   tier      final read                   management      histology  k     hub    model
==  ========  ===========================  ==============  =========  ====  =====  ===========
1-4 cancer    melanoma (3: BCC)            urgent-2ww      malignant  7     a      m-1 (1,2 V)
5   cancer    naevus (2nd read agrees)     discharge       benign     14    a      m-1
6   benign    BCC (2nd read agrees)        urgent-2ww      malignant  14    a      m-1
7-9 benign    naevus                       discharge       -          21    a      m-1
10  benign    naevus                       discharge       -          21    b      m-2
11  benign    naevus                       re-image        -          35    b      m-2
12  benign    naevus                       routine         benign     30    b      m-2
13  benign    (unread, 1 override image)   -               -          -     b      m-2
==  ========  ===========================  ==============  =========  ====  =====  ===========
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date, datetime, timedelta, timezone

import pytest

from dashboard import claims, create_app, histology, reports, sample
from dashboard.readingconfig import ReadingConfig
from dashboard.servicereport import compute as comp
from dashboard.servicereport import export, stats
from dashboard.servicereport.data import lesion_rows
from dashboard.store import Store
from dashboard.store import reports as report_table
from tests.dashauth import logged_in

MEL = "Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma Invasive"
BCC = "Malignant:Malignant adnexal epithelial proliferations - Follicular:Basal cell carcinoma"
NAEVUS = "Benign:Benign melanocytic proliferations:Nevus"
DAY0 = date(2026, 1, 5)
AS_OF = date(2026, 3, 1)

# (tier, probabilities, final dx, management, histology dx, k, hub, model, fitzpatrick)
SEED = [
    ("cancer", {"mel": 0.9, "nv": 0.1}, MEL, "urgent-2ww", MEL, 7, "hub-a", "m-1", "V"),
    ("cancer", {"mel": 0.8, "nv": 0.2}, MEL, "urgent-2ww", MEL, 7, "hub-a", "m-1", "V"),
    ("cancer", {"bcc": 0.7, "mel": 0.1, "nv": 0.2}, BCC, "urgent-2ww", BCC, 7, "hub-a", "m-1", "II"),
    ("cancer", {"mel": 0.6, "nv": 0.4}, MEL, "urgent-2ww", MEL, 7, "hub-a", "m-1", "II"),
    ("cancer", {"mel": 0.55, "nv": 0.45}, NAEVUS, "discharge", NAEVUS, 14, "hub-a", "m-1", "II"),
    ("benign", {"bcc": 0.2, "nv": 0.8}, BCC, "urgent-2ww", BCC, 14, "hub-a", "m-1", "II"),
    ("benign", {"nv": 1.0}, NAEVUS, "discharge", None, 21, "hub-a", "m-1", "II"),
    ("benign", {"nv": 1.0}, NAEVUS, "discharge", None, 21, "hub-a", "m-1", "II"),
    ("benign", {"nv": 1.0}, NAEVUS, "discharge", None, 21, "hub-a", "m-1", "II"),
    ("benign", {"nv": 1.0}, NAEVUS, "discharge", None, 21, "hub-b", "m-2", "II"),
    ("benign", {"nv": 1.0}, NAEVUS, "re-image", None, 35, "hub-b", "m-2", "II"),
    ("benign", {"mel": 0.1, "nv": 0.9}, NAEVUS, "routine", NAEVUS, 30, "hub-b", "m-2", "II"),
    ("benign", {"nv": 1.0}, None, None, None, None, "hub-b", "m-2", "II"),
]


def wilson(k: int, n: int) -> tuple[float, float, float]:
    """Wilson 95 % by its textbook formula (independent of the module's)."""
    z = 1.959963984540054
    p = k / n
    centre = (2 * n * p + z ** 2) / (2 * (n + z ** 2))
    half = z * math.sqrt(z ** 2 + 4 * n * p * (1 - p)) / (2 * (n + z ** 2))
    return p, centre - half, centre + half


@pytest.fixture
def seeded(tmp_path):
    app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"), "TESTING": True,
                      "READING": ReadingConfig(audit_share=0.0)})
    store = Store(tmp_path / "c.db", tmp_path / "images")
    settings = ReadingConfig(audit_share=0.0)
    keys, refs = [], []
    for i, (tier, probs, dx, mg, _, k, hub, model, fitz) in enumerate(SEED):
        [(h, ims)] = sample.make_referral(900 + i, fitzpatrick=fitz, override=(i == 12))
        h = h.model_copy(update={"referral": h.referral.model_copy(update={"referral_date": DAY0}), "site": hub,
                                 "device_id": f"{hub}-k1",
                                 "classification": h.classification.model_copy(
                                     update={"risk": tier, "probabilities": probs, "model": model})})
        store.save_case(h, ims)
        key, cid = str(h.referral.referral_id), str(h.case_id)
        keys.append(key)
        refs.append((h.referral.reference, h.lesion.label))
        if dx is None:
            continue
        at = datetime(2026, 1, 5, 12, tzinfo=timezone.utc) + timedelta(days=k)
        case = {"case_id": cid, "risk": tier}
        claims.claim(store.conn, key, "dr.one")
        text = "Blurred: please photograph again." if mg == "re-image" else ""
        done = reports.sign(store.conn, key, case, 1, "dr.one", report_table.version(store.conn, key), dx, mg, text,
                            settings, fitzpatrick=fitz, case_ids=[cid], now=at)
        if done.second_read:
            claims.take_over(store.conn, key, "dr.two")
            reports.sign(store.conn, key, case, 1, "dr.two", report_table.version(store.conn, key), dx, mg, "",
                         settings, fitzpatrick=fitz, case_ids=[cid], now=at)
        assert reports.referral_signed(store.conn, key)
    lines = ["referral_reference,lesion_id,diagnosis,benign_malignant,confirm_type,report_date,report_reference"]
    for (ref, lesion), row in zip(refs, SEED):
        if row[4]:
            lines.append(f"{ref},{lesion},{row[4]},,histopathology,2026-02-01,PATH-{ref[-4:]}")
    result = histology.import_csv(store.conn, "\n".join(lines) + "\n", "dr.one", "dermatologist")
    assert len(result.stored) == 7 and not (result.duplicates or result.unmatched or result.invalid)
    yield app, store, keys
    store.close()


def report_of(store):
    return comp.compute(lesion_rows(store.conn, date(2026, 1, 1), date(2026, 1, 31)), date(2026, 1, 1),
                        date(2026, 1, 31), as_of=AS_OF)


def test_every_figure_equals_the_hand_computed_one(seeded):
    _, store, keys = seeded
    r = report_of(store)
    g = r.overall
    assert (g.referrals.n, g.lesions.n, g.images, g.override_images.n, g.patients) == (13, 13, 39, 1, 13)
    assert g.finals.n == 12 and g.reimage.n == 1
    assert {m: c.n for m, c in g.outcomes.items()} == {"urgent-2ww": 5, "routine": 1, "biopsy": 0, "discharge": 5,
                                                       "re-image": 1}
    # working days: 5 x4 (k=7), 10 x2 (k=14), 15 x4 (k=21), 22 (k=30: Wed 4 Feb), 25 (k=35: Mon 9 Feb)
    assert sorted(g.working_days) == [5, 5, 5, 5, 10, 10, 15, 15, 15, 15, 22, 25]
    assert g.median() == 12.5 and g.p90() == pytest.approx(15 + 0.9 * 7)
    assert (g.decided.n, g.within.n, g.late.n) == (12, 10, 2)
    # breaches: the open referral (55 calendar days on 1 March, 39 working days), then k=35 and k=30
    assert [(b["referral_key"], b["state"], b["calendar_days"], b["working_days"]) for b in r.breaches] == [
        (keys[12], "open", 55, 39), (keys[10], "decided late", 35, 25), (keys[11], "decided late", 30, 22)]
    b = g.binary
    assert [c.n for c in (b["classifier_reader"].tp, b["classifier_reader"].fp, b["classifier_reader"].fn,
                          b["classifier_reader"].tn)] == [4, 1, 1, 6]
    assert b["classifier_reader"].sensitivity() == pytest.approx(wilson(4, 5))
    assert b["classifier_reader"].specificity() == pytest.approx(wilson(6, 7))
    assert b["classifier_histology"].sensitivity() == pytest.approx(wilson(4, 5))
    assert b["classifier_histology"].specificity() == pytest.approx(wilson(1, 2))
    assert b["reader_histology"].sensitivity() == pytest.approx(wilson(5, 5))
    assert b["reader_histology"].specificity() == pytest.approx(wilson(2, 2))
    assert b["first_second"].sensitivity() == pytest.approx(wilson(1, 1))
    assert b["first_second"].specificity() == pytest.approx(wilson(1, 1))
    assert {k: c.n for k, c in r.tables["classifier_reader"].items()} == {
        ("cancer", "cancer"): 4, ("cancer", "benign"): 1, ("benign", "cancer"): 1, ("benign", "benign"): 6}
    assert {k: c.n for k, c in r.tables["classifier_histology"].items()} == {
        ("cancer", "malignant"): 4, ("cancer", "benign"): 1, ("benign", "malignant"): 1, ("benign", "benign"): 1}
    # ROC: malignancy scores pos .9 .8 .8 .6 .2 vs neg .55 .1 -> 9 of 10 pairs; melanoma separates fully
    assert r.roc["malignancy"]["auc"] == pytest.approx(0.9)
    assert r.roc["melanoma"]["auc"] == pytest.approx(1.0)
    assert (r.roc["malignancy"]["positives"], r.roc["malignancy"]["negatives"]) == (5, 2)
    hubs = {h.name: h for h in r.groups["hub"]}
    assert (hubs["hub-a"].referrals.n, hubs["hub-b"].referrals.n) == (9, 4)
    assert hubs["hub-b"].late.n == 2 and hubs["hub-b"].median() == 22  # 15, 22, 25
    models = {m.name: m for m in r.groups["model"]}
    assert models["m-1"].binary["classifier_histology"].sensitivity() == pytest.approx(wilson(4, 5))
    assert models["m-2"].binary["classifier_histology"].specificity() == pytest.approx(wilson(1, 1))
    fitz = {f.name: f.lesions.n for f in r.groups["fitzpatrick"]}
    assert fitz == {"I-II": 11, "V-VI": 2}
    assert [p.name for p in r.groups["period"]] == ["2026-01"]
    # a period without those referrals is empty
    assert comp.compute(lesion_rows(store.conn, date(2026, 2, 1), date(2026, 2, 28)), date(2026, 2, 1),
                        date(2026, 2, 28), as_of=AS_OF).overall.lesions.n == 0


def test_exports_suppress_small_cells_and_carry_no_identifier(seeded, tmp_path):
    _, store, keys = seeded
    r = report_of(store)
    tables = export.csv_tables(r, suppress=True)
    rows = {(row["dimension"], row["group"]): row for row in csv.DictReader(io.StringIO(tables["summary.csv"]))}
    overall = rows[("all", "all")]
    assert (overall["referrals"], overall["lesions"], overall["images"]) == ("13", "13", "39")
    assert overall["override_images"] == "*"  # 1 patient
    assert overall["median_working_days"] == "12.5" and overall["p90_working_days"] == "21.3"
    assert overall["within_28_days_pct"] == "83.3" and overall["breaches_decided_late"] == "*"
    assert overall["reimage_rate_pct"] == "*" and overall["outcome_urgent-2ww"] == "5"
    assert overall["classifier_reader_sens_pct"] == "*"  # 1 false negative: numerator 4 patients
    assert overall["outcome_biopsy"] == "0"
    hub_b = rows[("hub", "hub-b")]
    assert hub_b["referrals"] == "*" and hub_b["median_working_days"] == "*"
    assert rows[("hub", "hub-a")]["referrals"] == "9"
    assert rows[("fitzpatrick", "V-VI")]["lesions"] == "*"
    conc = list(csv.DictReader(io.StringIO(tables["concordance.csv"])))
    cells = {(c["pair"], c["test"], c["reference"]): c["lesions"] for c in conc}
    assert cells[("classifier_reader", "benign", "benign")] == "6"
    assert cells[("classifier_reader", "cancer", "benign")] == "*"
    unsuppressed = export.csv_tables(r, suppress=False)["summary.csv"]
    assert next(csv.DictReader(io.StringIO(unsuppressed)))["classifier_reader_sens_pct"] == "80.0"
    files = export.write(r, tmp_path / "out")
    assert {f.name for f in files} == {"summary.csv", "concordance.csv", "breaches.csv", "roc.csv", "report.html",
                                       "turnaround.png", "concordance_by_model.png", "roc.png"}
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files if f.suffix == ".png")
    patients = store.conn.execute("SELECT nhs_number, date_of_birth, reference FROM referrals").fetchall()
    for f in files:
        if f.suffix in (".csv", ".html"):
            text = f.read_text()
            for nhs, dob, ref in patients:
                assert nhs not in text and dob not in text and ref not in text, f.name
    assert keys[12] in (tmp_path / "out" / "breaches.csv").read_text()


def test_wilson_and_percentile_known_values():
    assert stats.wilson(8, 10) == pytest.approx((0.8, 0.4901624715, 0.9433178485))
    assert stats.wilson(0, 0) is None
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5


def test_reports_page_and_csv_for_dermatologists_and_admins_only(seeded):
    app, _, keys = seeded
    derm = logged_in(app, "dr.one", "dermatologist")
    page = derm.get("/reports?from=2026-01-01&to=2026-01-31")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Service report" in html and keys[12] in html and "12.5" in html
    assert 'data-alert="fds-unread"' in html  # hub-b: the unread referral, not the one sent back to re-image
    assert "<strong>Referrals nearing 28 days unread</strong>: hub-b" in html  # the fleet page's words
    assert "hub-b: 1 referral still waiting for a reader 21 days or more" in html
    assert "/reports/plots/turnaround.png?from=2026-01-01&amp;to=2026-01-31" in html
    png = derm.get("/reports/plots/roc.png?from=2026-01-01&to=2026-01-31")
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data[:4] == b"\x89PNG"
    got = derm.get("/reports/summary.csv?from=2026-01-01&to=2026-01-31")
    assert got.status_code == 200 and "attachment" in got.headers["Content-Disposition"]
    assert "hub-b" in got.get_data(as_text=True)
    bad = derm.get("/reports?from=2026-02-01&to=2026-01-01")
    assert bad.status_code == 422 and "From must be on or before To" in bad.get_data(as_text=True)
    assert logged_in(app, "it.one", "it").get("/reports").status_code == 403
    assert logged_in(app, "ad.one", "admin").get("/reports?from=2026-01-01&to=2026-01-31").status_code == 200


def test_cli_writes_the_report(seeded, tmp_path, capsys):
    from dashboard.__main__ import main

    app, store, _ = seeded
    cfg = tmp_path / "centre.toml"
    cfg.write_text(f'[storage]\ndatabase = "{app.config["DATABASE"]}"\nimages_dir = "{app.config["IMAGES_DIR"]}"\n')
    assert main(["report", "--config", str(cfg), "--from", "2026-01-01", "--to", "2026-01-31",
                 "--out", str(tmp_path / "rep")]) == 0
    assert "13 referrals, 13 lesions" in capsys.readouterr().out
    assert (tmp_path / "rep" / "report.html").read_text().count("<table") >= 5
    assert main(["report", "--config", str(cfg), "--from", "2026-02-01", "--to", "2026-01-01",
                 "--out", str(tmp_path / "rep2")]) == 2
