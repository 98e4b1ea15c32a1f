"""The ``colour-drift`` service alert on a real SQLite store: a kiosk whose dermoscopic photographs all lie further
from its calibrated colour than usual (none refused one by one) fires; a normal kiosk, an old drift and too few
photographs stay quiet; the median is on ``/metrics``."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np

from dashboard import metrics, sample
from dashboard.alerts import FleetConfig
from dashboard.servicereport import monitor
from tests.test_service_monitor import put_photograph, store  # noqa: F401  (the store fixture)
from wire.messages import Quality, QualityCheck

TODAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)


def photograph(store, seed: int, device: str, colour: float, at: datetime) -> None:
    """One referral from ``device``, photographed and received at ``at``, whose one dermoscopic photograph's colour
    check reads ``colour``."""
    q = Quality(ok=colour <= 3.5, checks={"colour": QualityCheck(value=colour, ok=colour <= 3.5, message="ok")})
    put_photograph(store, seed, device, q, at)


def seed_drifting_kiosk(store, device: str, now: datetime, first_seed: int = 5000) -> None:
    """24 photographs from ``device`` over the last 5 days whose colour lies 2.5 standard deviations off its
    calibrated normal (a cast from the kiosk), none of them refused."""
    for i, d in enumerate(distances(np.random.default_rng(3), 24, 2.5)):
        photograph(store, first_seed + i, device, d, now - timedelta(days=i % 5, hours=1))


def distances(rng, n: int, shift: float) -> list[float]:
    """Colour distances of ``n`` photographs: the length of a 2-D standard normal offset by ``shift`` (a cast of
    that many standard deviations), as the colour check measures under its calibration; none over 3.5."""
    v = np.hypot(rng.normal(shift, 1.0, 4 * n), rng.normal(0.0, 1.0, 4 * n))
    return [round(float(x), 3) for x in v[v <= 3.5][:n]]


def test_a_kiosk_whose_colour_drifted_alerts_while_no_photograph_was_refused(store):  # noqa: F811
    rng = np.random.default_rng(7)
    seed = 0
    for device, shift, days in (("kiosk-a", 0.0, 1), ("kiosk-b", 2.5, 1), ("kiosk-c", 2.5, 20)):
        for i, d in enumerate(distances(rng, 24, shift)):
            seed += 1
            photograph(store, seed, device, d, NOW - timedelta(days=days + i % 5))
    f = monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig())
    assert set(f.colour) == {"kiosk-a", "kiosk-b"}  # kiosk-c's photographs are older than 7 days
    assert f.colour["kiosk-a"][0] == 24 and f.colour["kiosk-a"][1] < 1.75 < f.colour["kiosk-b"][1]
    drift = [a for a in f.alerts if a.code == "colour-drift"]
    assert [a.subject for a in drift] == ["kiosk-b"]
    assert drift[0].value == f.colour["kiosk-b"][1] and "last 24 dermoscopic photographs" in drift[0].message
    assert "recalibrate" in drift[0].message and monitor.TITLES["colour-drift"]
    # too few photographs in the week, or a higher threshold: quiet
    for t in (monitor.MonitoringConfig(colour_drift_min_images=25), monitor.MonitoringConfig(colour_drift_median=3.0)):
        assert not [a for a in monitor.evaluate(store.conn, TODAY, t).alerts if a.code == "colour-drift"]
    text = metrics.render(store, NOW, FleetConfig()).decode()
    assert f'dermkiosk_service_colour_distance_median{{device="kiosk-b"}} {f.colour["kiosk-b"][1]}' in text
    assert 'dermkiosk_service_alert{alert="colour-drift",subject="kiosk-b"} 1.0' in text


def test_a_colour_check_that_could_not_read_the_skin_counts_as_far(store):  # noqa: F811
    # a strong cast burns out a channel over the skin: the check runs but has no value; most such: an alert
    for i in range(20):
        photograph(store, 400 + i, "kiosk-e", float("nan") if i < 12 else 1.0, NOW - timedelta(days=1))
    f = monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig())
    assert f.colour["kiosk-e"] == (20, float("inf"))
    [alert] = [a for a in f.alerts if a.code == "colour-drift"]
    assert "could not be read in most of them" in alert.message


def test_photographs_without_a_colour_value_are_left_out(store):  # noqa: F811
    # photographs whose quality result has no colour check (older kiosks, views without one): nothing to measure
    for i in range(25):
        [(h, ims)] = sample.make_referral(100 + i, device="kiosk-d", images_per_lesion=1,
                                          taken_at=NOW - timedelta(days=1))
        no_colour = [m.model_copy(update={"quality": m.quality.model_copy(update={
            "checks": {k: c for k, c in m.quality.checks.items() if k != "colour"}})}) for m in h.images]
        store.save_case(h.model_copy(update={"images": no_colour}), ims, received_at=NOW - timedelta(days=1))
    f = monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig())
    assert f.colour == {} and not [a for a in f.alerts if a.code == "colour-drift"]


def test_colour_checks_not_made_are_left_out(store):  # noqa: F811
    # A lesion larger than the view, so marked at the kiosk: the colour check passes without a value (no skin to
    # read). Such photographs say nothing of the kiosk's light, so they neither count as far nor dilute a drift.
    q = Quality(ok=True, checks={"colour": QualityCheck(
        value=None, ok=True, message="not judged: the lesion fills the view, so no skin shows the light's colour")})
    for i in range(20):
        put_photograph(store, 600 + i, "kiosk-f", q, NOW - timedelta(days=1))
    for i, d in enumerate(distances(np.random.default_rng(5), 4, 0.0)):
        photograph(store, 700 + i, "kiosk-f", d, NOW - timedelta(days=1))
    f = monitor.evaluate(store.conn, TODAY, monitor.MonitoringConfig())
    assert f.colour["kiosk-f"][0] == 4 and f.colour["kiosk-f"][1] < 3.5
    assert not [a for a in f.alerts if a.code == "colour-drift"]
