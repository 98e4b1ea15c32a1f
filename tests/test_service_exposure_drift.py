"""The ``exposure-drift`` service alert on a real SQLite store: a kiosk whose dermoscopic photographs of the last week
are brighter than over the two weeks before (none of them refused one by one) fires; a steady kiosk, a darker week, a
kiosk without enough photographs before, and a higher threshold stay quiet; both medians are on ``/metrics``."""

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


def photograph(store, seed: int, device: str, brightness: float, at: datetime) -> None:
    """One referral from ``device``, photographed and received at ``at``, whose one dermoscopic photograph's exposure
    check reads ``brightness`` (passed: 130-253)."""
    q = Quality(ok=True, checks={"exposure": QualityCheck(value=brightness, ok=True, message="ok")})
    put_photograph(store, seed, device, q, at)


def brightness(rng, n: int, median: float) -> list[float]:
    """The skin brightness of ``n`` photographs about ``median`` (patients' skins differ), all within 130-253."""
    return [float(np.clip(round(v), 131, 252)) for v in rng.normal(median, 14.0, n)]


def seed_brightened_kiosk(store, device: str, now: datetime, first_seed: int = 8000) -> None:
    """30 photographs from ``device`` over the two weeks before (median about 200) and 24 in the last 6 days a stop
    brighter (about 238), none refused."""
    rng = np.random.default_rng(6)
    for i, v in enumerate(brightness(rng, 30, 200) + brightness(rng, 24, 238)):
        at = now - (timedelta(days=8 + i % 12) if i < 30 else timedelta(days=i % 6, hours=1))
        photograph(store, first_seed + i, device, v, at)


def test_a_kiosk_whose_photographs_brightened_alerts(store):  # noqa: F811
    rng = np.random.default_rng(21)
    seed = 0
    kiosks = {"kiosk-a": (205, 205, 30), "kiosk-b": (200, 238, 30), "kiosk-c": (210, 150, 30),
              "kiosk-d": (200, 238, 10)}  # (median before, median this week, photographs before)
    for device, (before, week, n_before) in kiosks.items():
        for i, v in enumerate(brightness(rng, n_before, before)):
            seed += 1
            photograph(store, seed, device, v, NOW - timedelta(days=8 + i % 12))
        for i, v in enumerate(brightness(rng, 24, week)):
            seed += 1
            photograph(store, seed, device, v, NOW - timedelta(days=i % 6, hours=1))
    f = monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig())
    assert set(f.exposure) == set(kiosks)
    (nb, b), (nc, c) = f.exposure["kiosk-b"]
    assert (nb, nc) == (30, 24) and c - b > 25
    drift = [a for a in f.alerts if a.code == "exposure-drift"]
    # kiosk-c's week is darker (a failing light is refused photograph by photograph), kiosk-d has 10 before
    assert [a.subject for a in drift] == ["kiosk-b"]
    assert drift[0].value == c and f"up {c - b:.0f} from {b:.0f} over the 14 days before (30 photographs), more than 25 levels" in drift[0].message
    assert "last 24 dermoscopic photographs" in drift[0].message and "exposure and gain" in drift[0].message
    assert monitor.TITLES["exposure-drift"] == "Kiosk photographs brightening"
    for t in (monitor.MonitoringConfig(exposure_drift_levels=60), monitor.MonitoringConfig(exposure_drift_min_images=31)):
        assert not [a for a in monitor.evaluate(store.conn, TODAY, t).alerts if a.code == "exposure-drift"]
    # photographs older than the 14 days before the week are not the kiosk's usual brightness any more
    for i, v in enumerate(brightness(rng, 40, 150)):
        photograph(store, 5000 + i, "kiosk-b", v, NOW - timedelta(days=25 + i % 20))
    assert monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig()).exposure["kiosk-b"] == f.exposure["kiosk-b"]
    text = metrics.render(store, NOW, FleetConfig()).decode()
    assert f'dermkiosk_service_brightness_median{{device="kiosk-b",window="current"}} {c}' in text
    assert f'dermkiosk_service_brightness_median{{device="kiosk-b",window="baseline"}} {b}' in text
    assert 'dermkiosk_service_alert{alert="exposure-drift",subject="kiosk-b"} 1.0' in text


def test_a_kiosk_with_photographs_only_this_week_is_not_judged(store):  # noqa: F811
    # a new kiosk: nothing before to compare with
    for i, v in enumerate(brightness(np.random.default_rng(2), 25, 245)):
        photograph(store, 900 + i, "kiosk-new", v, NOW - timedelta(days=i % 6))
    f = monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig())
    assert f.exposure["kiosk-new"][0] == (0, None) and f.exposure["kiosk-new"][1][0] == 25
    assert not [a for a in f.alerts if a.code == "exposure-drift"]
