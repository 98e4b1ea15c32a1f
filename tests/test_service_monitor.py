"""The service's monitoring alerts on a real SQLite store (referrals saved by ``Store.save_case``): the cancer-call
drift per hub firing on a seeded shift and quiet without one, the sensitivity floor against histology, a hub's
quality-override jump, referrals nearing the 28-day standard unread; and their Prometheus gauges."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from dashboard import histology, metrics, sample
from dashboard.alerts import FleetConfig
from dashboard.servicereport import monitor
from dashboard.store import Store

TODAY = date(2026, 3, 2)
MEL = "Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma Invasive"


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "c.db", tmp_path / "images")
    from dashboard import ensure_schema

    ensure_schema(s.conn)
    yield s
    s.close()


def put(store, seed, day, risk, site="hub-a", override=False, images=1):
    [(h, ims)] = sample.make_referral(seed, override=override, images_per_lesion=images)
    h = h.model_copy(update={"referral": h.referral.model_copy(update={"referral_date": day}), "site": site,
                             "device_id": f"{site}-k1",
                             "classification": h.classification.model_copy(update={"risk": risk})})
    store.save_case(h, ims)
    return h


def put_photograph(store, seed: int, device: str, quality, at: datetime) -> None:
    """One referral from ``device``, photographed and received at ``at``, whose one dermoscopic photograph carries the
    quality gate's result ``quality`` (a ``wire.messages.Quality``): what the kiosk drift alerts read."""
    [(h, ims)] = sample.make_referral(seed, device=device, images_per_lesion=1, taken_at=at)
    h = h.model_copy(update={"images": [h.images[0].model_copy(update={"quality": quality})]})
    store.save_case(h, ims, received_at=at)


def seed_weeks(store, current_cancer: int, start_seed=0):
    """hub-a: 20 lesions over the 8 baseline weeks, 2 called cancer (10 %); 20 in the last 7 days, ``current_cancer``
    of them cancer. hub-b: 10 % throughout."""
    n = start_seed
    for site in ("hub-a", "hub-b"):
        for i in range(20):
            n += 1
            put(store, n, TODAY - timedelta(days=10 + i * 2), "cancer" if i < 2 else "benign", site)
        cancer = current_cancer if site == "hub-a" else 2
        for i in range(20):
            n += 1
            put(store, n, TODAY - timedelta(days=i % 7), "cancer" if i < cancer else "benign", site)


def test_cancer_drift_fires_on_a_seeded_shift(store):
    seed_weeks(store, current_cancer=10)
    f = monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig())
    assert f.cancer_share["hub-a"] == (10.0, 50.0) and f.cancer_share["hub-b"] == (10.0, 10.0)
    drift = [a for a in f.alerts if a.code == "cancer-drift"]
    assert [(a.subject, a.value) for a in drift] == [("hub-a", 50.0)]
    assert "50.0 % of lesions cancer in the last 7 days (20 lesions) against 10.0 %" in drift[0].message
    # a higher threshold keeps it quiet; too few lesions too
    assert not [a for a in monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig(drift_points=45)).alerts
                if a.code == "cancer-drift"]
    assert not [a for a in monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig(drift_min_lesions=21)).alerts
                if a.code == "cancer-drift"]


def test_cancer_drift_quiet_without_a_shift(store):
    seed_weeks(store, current_cancer=3)  # 15 % against 10 %: within 10 points
    f = monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig())
    assert f.cancer_share["hub-a"] == (10.0, 15.0)
    assert not [a for a in f.alerts if a.code == "cancer-drift"]


def test_sensitivity_floor_unread_override_and_gauges(store):
    cases = []
    for i in range(6):  # 6 malignant on histology, the classifier called 3 of them cancer: 50 %
        cases.append(put(store, 200 + i, TODAY - timedelta(days=40), "cancer" if i < 3 else "benign", "hub-c"))
    rows = "referral_reference,lesion_id,diagnosis,benign_malignant,confirm_type,report_date,report_reference\n"
    rows += "".join(f"{h.referral.reference},L1,{MEL},,,2026-02-01,P-{i}\n" for i, h in enumerate(cases))
    assert len(histology.import_csv(store.conn, rows, "dr.one").stored) == 6
    t = monitor.MonitoringConfig(sensitivity_min_positives=6, sensitivity_floor=0.8, override_min_images=3)
    f = monitor.evaluate(store.conn, TODAY, t)
    floor = [a for a in f.alerts if a.code == "sensitivity-floor"]
    assert f.sensitivity_positives == 6 and f.sensitivity[0] == 0.5 and len(floor) == 1
    assert "found 3 of 6" in floor[0].message
    assert not [a for a in monitor.evaluate(store.conn, TODAY, t.model_copy(update={"sensitivity_min_positives": 7}))
                .alerts if a.code == "sensitivity-floor"]
    # the six referrals of hub-c are open 40 days after their date: nearing (past) the standard, unread
    assert f.unread == {"hub-c": 6} and [a.subject for a in f.alerts if a.code == "fds-unread"] == ["hub-c"]
    # override jump: hub-d had no override before; this week one in three images was sent with one
    for i in range(3):
        put(store, 300 + i, TODAY - timedelta(days=20), "benign", "hub-d", images=3)
        put(store, 310 + i, TODAY - timedelta(days=1), "benign", "hub-d", override=True, images=3)
    f = monitor.evaluate(store.conn, TODAY, t)
    assert f.override_share["hub-d"][0] == 0.0 and f.override_share["hub-d"][1] == pytest.approx(100 / 3)
    assert [a.subject for a in f.alerts if a.code == "override-jump"] == ["hub-d"]
    now = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)
    text = metrics.render(store, now, FleetConfig(), monitoring=t).decode()
    assert 'dermkiosk_service_alert{alert="sensitivity-floor",subject="all"} 1.0' in text
    assert 'dermkiosk_service_alert{alert="override-jump",subject="hub-d"} 1.0' in text
    assert "dermkiosk_service_sensitivity_histology 0.5" in text
    assert 'dermkiosk_service_referrals_nearing_fds{site="hub-c"} 6.0' in text


def test_the_window_is_searched_by_received_date_and_keeps_a_case_received_the_evening_before(store):
    """The lesion and image counts reach the window through the cases' received_at index (no full scan of a
    year's cases), and a case photographed just after midnight in summer (received 23:30 UTC the day before its
    referral date) still counts on its referral date."""
    t = monitor.MonitoringConfig()
    first = TODAY - timedelta(days=6) - timedelta(weeks=t.baseline_weeks)      # the window's first day
    h = put(store, 1, first, "cancer", images=2)
    store.conn.execute("UPDATE cases SET received_at=? WHERE case_id=?",
                       (f"{first - timedelta(days=1)}T23:30:00+00:00", str(h.case_id)))
    before = put(store, 2, first - timedelta(days=1), "cancer")                 # the day before the window
    store.conn.execute("UPDATE cases SET received_at=? WHERE case_id=?",
                       (f"{first - timedelta(days=1)}T09:00:00+00:00", str(before.case_id)))
    store.conn.commit()
    f = monitor.evaluate(store.conn, TODAY, t)
    assert f.cancer_share["hub-a"] == (100.0, None)
    assert f.override_share["hub-a"][0] is not None
    span = ("2026-01-01", "2026-03-02", "2026-02-24", "2025-12-31")
    plan = " | ".join(row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + monitor._WINDOW, span))
    assert "SEARCH c USING INDEX cases_received" in plan and "USING INDEX case_images_override" in plan, plan
