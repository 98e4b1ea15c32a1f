"""The ``focus-drift`` service alert on a real SQLite store: a kiosk whose dermoscopic photographs have all grown
softer than its calibrated normal (none of them refused one by one) fires; a normal kiosk, an old drift, too few
photographs and photographs without a focus value stay quiet; the median is on ``/metrics`` and heads ``/fleet``."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np

from dashboard import metrics
from dashboard.alerts import FleetConfig
from dashboard.servicereport import monitor
from tests.test_service_monitor import put_photograph, store  # noqa: F401  (the store fixture)
from wire.messages import Quality, QualityCheck

TODAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)


def photograph(store, seed: int, device: str, sharpness: float | None, at: datetime) -> None:
    """One referral from ``device``, photographed and received at ``at``, whose one dermoscopic photograph's focus
    check reads ``sharpness`` (None: the file could not be read, only its decode check ran)."""
    if sharpness is None:
        q = Quality(ok=False, checks={"decode": QualityCheck(value=None, ok=False, message="not readable")})
    else:
        q = Quality(ok=sharpness >= 0.35, checks={"focus": QualityCheck(value=sharpness, ok=sharpness >= 0.35,
                                                                        message="ok")})
    put_photograph(store, seed, device, q, at)


def sharpness(rng, n: int, normal: float) -> list[float]:
    """Focus values of ``n`` photographs: log-normal about ``normal`` (the spread of one kiosk's patients), none
    under the check's limit 0.35 (no single photograph refused)."""
    v = normal * np.exp(rng.normal(0.0, 0.3, 4 * n))
    return [round(float(x), 4) for x in v[v >= 0.35][:n]]


def seed_softened_kiosk(store, device: str, now: datetime, first_seed: int = 7000) -> None:
    """24 photographs from ``device`` over the last 5 days at 0.42 of its normal sharpness (a smeared contact
    plate), none refused."""
    for i, v in enumerate(sharpness(np.random.default_rng(4), 24, 0.42)):
        photograph(store, first_seed + i, device, v, now - timedelta(days=i % 5, hours=1))


def test_a_kiosk_whose_photographs_softened_alerts_while_none_was_refused(store):  # noqa: F811
    rng = np.random.default_rng(11)
    seed = 0
    for device, normal, days in (("kiosk-a", 1.0, 1), ("kiosk-b", 0.42, 1), ("kiosk-c", 0.42, 20)):
        for i, v in enumerate(sharpness(rng, 24, normal)):
            seed += 1
            photograph(store, seed, device, v, NOW - timedelta(days=days + i % 5))
    f = monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig())
    assert set(f.focus) == {"kiosk-a", "kiosk-b"}  # kiosk-c's photographs are older than 7 days
    assert f.focus["kiosk-a"][0] == 24 and f.focus["kiosk-b"][1] < 0.5 < f.focus["kiosk-a"][1]
    drift = [a for a in f.alerts if a.code == "focus-drift"]
    assert [a.subject for a in drift] == ["kiosk-b"]
    assert drift[0].value == f.focus["kiosk-b"][1] and "last 24 dermoscopic photographs" in drift[0].message
    assert f"a median {f.focus['kiosk-b'][1]:.0%} as sharp" in drift[0].message and "contact plate" in drift[0].message
    assert monitor.TITLES["focus-drift"] and not [a for a in f.alerts if a.code == "colour-drift"]
    # too few photographs in the week, or a lower threshold: quiet
    for t in (monitor.MonitoringConfig(focus_drift_min_images=25), monitor.MonitoringConfig(focus_drift_median=0.3)):
        assert not [a for a in monitor.evaluate(store.conn, TODAY, t).alerts if a.code == "focus-drift"]
    text = metrics.render(store, NOW, FleetConfig()).decode()
    assert f'dermkiosk_service_sharpness_median{{device="kiosk-b"}} {f.focus["kiosk-b"][1]}' in text
    assert 'dermkiosk_service_alert{alert="focus-drift",subject="kiosk-b"} 1.0' in text


def test_photographs_without_a_focus_value_are_left_out(store):  # noqa: F811
    # unreadable files (a decode check only) say nothing of the optics: neither soft nor sharp
    for i in range(30):
        photograph(store, 300 + i, "kiosk-d", None if i < 26 else 0.9, NOW - timedelta(days=1))
    f = monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig())
    assert f.focus == {"kiosk-d": (4, 0.9)} and not [a for a in f.alerts if a.code == "focus-drift"]
