"""ROC against histology per model version, on the seeded store of :mod:`tests.test_service_report` (hand-computed).

Model m-1 (lesions 1-9), histology on lesions 1-6. Malignancy score (summed cancer-tier probabilities) of the
malignant ones: .9, .8, .8 (bcc .7 + mel .1), .6, .2; of the benign one (5): .55 -> 4 of 5 pairs ordered, AUC 0.8.
Melanoma (truth: the melanoma branch, lesions 1, 2, 4): .9, .8, .6 against .1, .55, 0 -> AUC 1.0.
Model m-2: histology only on lesion 12 (benign): no curve (it needs a positive and a negative).
"""

from __future__ import annotations

import csv
import io

import pytest

from dashboard.servicereport import export, plots
from tests.dashauth import logged_in
from tests.test_service_report import report_of, seeded  # noqa: F401  (the fixture)


def test_roc_per_model_version_equals_the_hand_computed_one(seeded):  # noqa: F811
    _, store, _ = seeded
    r = report_of(store)
    assert set(r.roc_by_model) == {"m-1", "m-2"}
    m1 = r.roc_by_model["m-1"]
    assert m1["malignancy"]["auc"] == pytest.approx(0.8)
    assert (m1["malignancy"]["positives"], m1["malignancy"]["negatives"]) == (5, 1)
    # thresholds .9, .8, .7+.1 (a float just under .8: its own step), .6, .55, .2
    assert m1["malignancy"]["fpr"] == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    assert m1["malignancy"]["tpr"] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 0.8, 1.0])
    assert m1["melanoma"]["auc"] == pytest.approx(1.0)
    assert (m1["melanoma"]["positives"], m1["melanoma"]["negatives"]) == (3, 3)
    assert r.roc_by_model["m-2"] == {"malignancy": None, "melanoma": None}
    # the overall curve is unchanged by the split: 9 of 10 pairs (m-2's benign lesion scores .1)
    assert r.roc["malignancy"]["auc"] == pytest.approx(0.9)


def test_roc_csv_suppresses_small_curves_and_lists_each_model(seeded):  # noqa: F811
    _, store, _ = seeded
    r = report_of(store)
    rows = lambda text: [(d["model"], d["curve"], d["auc"], d["positives"], d["negatives"])  # noqa: E731
                         for d in csv.DictReader(io.StringIO(text))]
    whole = rows(export.csv_tables(r, suppress=False)["roc.csv"])
    assert whole == [("all", "malignancy", "0.900", "5", "2"), ("all", "melanoma", "1.000", "3", "4"),
                     ("m-1", "malignancy", "0.800", "5", "1"), ("m-1", "melanoma", "1.000", "3", "3"),
                     ("m-2", "malignancy", "", "", ""), ("m-2", "melanoma", "", "", "")]
    suppressed = rows(export.csv_tables(r, suppress=True)["roc.csv"])
    assert suppressed[2] == ("m-1", "malignancy", "*", "*", "*")  # one benign lesion: fewer than 5
    assert suppressed[0] == ("all", "malignancy", "*", "*", "*")
    assert plots.roc(r)[:8] == b"\x89PNG\r\n\x1a\n" and plots.roc(r, suppress=True)[:4] == b"\x89PNG"


def test_reports_page_shows_auc_by_model_version(seeded):  # noqa: F811
    app, _, _ = seeded
    html = logged_in(app, "dr.one", "dermatologist").get("/reports?from=2026-01-01&to=2026-01-31").get_data(
        as_text=True)
    table = html[html.index('id="roc-by-model"'):]
    table = table[:table.index("</table>")]
    assert '<th scope="row">m-1</th><td>malignancy</td><td>0.800</td><td>5</td><td>1</td>' in table
    assert '<th scope="row">m-2</th><td>malignancy</td><td>needs a positive and a negative</td>' in table
