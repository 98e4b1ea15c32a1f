"""Each fleet alert rule fires past its threshold and clears below it (pure function, no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dashboard.alerts import DeviceState, FleetConfig, evaluate, presence
from wire.messages import Health

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
T = FleetConfig(approved_model="m-1")


def health(**kw) -> Health:
    base = dict(device_id="k1", at=NOW, interval_s=30, uptime_s=100, cpu_temp_c=50.0, throttled_bits=0,
                disk_total_mb=1000.0, disk_free_mb=500.0, outbox_depth=0, outbox_oldest_s=None,
                model_version="m-1", clock_synced=True)
    base.update(kw)
    return Health(**base)


def state(**kw) -> DeviceState:
    base = dict(device="k1", site="s1", last_seen=NOW - timedelta(seconds=5), state="online",
                state_at=NOW - timedelta(hours=1), health=health(), health_at=NOW - timedelta(seconds=5),
                skew_s=0.5, model_version="m-1")
    base.update(kw)
    return DeviceState(**base)


def codes(d: DeviceState, now: datetime = NOW, t: FleetConfig = T) -> set[str]:
    return {a.code for a in evaluate(d, now, t)}


def test_healthy_kiosk_has_no_alert():
    assert codes(state()) == set()
    assert presence(state(), NOW, T) == "online"


def test_offline_by_last_will_fires_after_10_minutes_and_clears_when_back():
    d = state(state="offline", state_at=NOW - timedelta(minutes=9), last_seen=NOW - timedelta(minutes=9))
    assert presence(d, NOW, T) == "offline"
    assert codes(d) == set()                                  # down, but not yet 10 min
    assert codes(d, NOW + timedelta(minutes=2)) == {"offline"}
    back = state(state="online", state_at=NOW, last_seen=NOW)
    assert codes(back, NOW + timedelta(minutes=2)) == set()


def test_silent_kiosk_is_stale_then_offline():
    d = state(last_seen=NOW - timedelta(minutes=3))
    assert presence(d, NOW, T) == "stale"
    assert "offline" not in codes(d)
    d = state(last_seen=NOW - timedelta(minutes=11))
    [alert] = [a for a in evaluate(d, NOW, T) if a.code == "offline"]
    assert "no message" in alert.message and alert.severity == "critical"


@pytest.mark.parametrize("code, bad, good", [
    ("disk", dict(disk_free_mb=95.0), dict(disk_free_mb=110.0)),                 # 90.5 % vs 89 %
    ("temperature", dict(cpu_temp_c=80.5), dict(cpu_temp_c=79.5)),
    ("throttled", dict(throttled_bits=0x50005, throttled=["under-voltage-now", "throttled-now",
                                                          "under-voltage-occurred", "throttled-occurred"]),
     dict(throttled_bits=0x50000, throttled=["under-voltage-occurred", "throttled-occurred"])),
    ("backlog", dict(outbox_depth=3, outbox_oldest_s=3590.0), dict(outbox_depth=3, outbox_oldest_s=3500.0)),
    ("model", dict(model_version="m-0"), dict(model_version="m-1")),
    ("calibration", dict(calibration=""), dict(calibration="hub 3, 2026-12-04")),
    ("calibration", dict(calibration=""), dict(calibration=None)),            # an older kiosk: not reported
])
def test_health_rule_fires_and_clears(code, bad, good):
    fired = state(health=health(**bad), health_at=NOW - timedelta(seconds=30))
    cleared = state(health=health(**good), health_at=NOW - timedelta(seconds=30))
    assert code in codes(fired)
    assert code not in codes(cleared)
    assert codes(cleared) == set()


def test_backlog_ages_while_no_report_arrives():
    d = state(health=health(outbox_depth=1, outbox_oldest_s=3000.0), health_at=NOW)
    assert "backlog" not in codes(d)
    assert "backlog" in codes(d, NOW + timedelta(minutes=11))


def test_clock_skew_either_way():
    assert "clock" in codes(state(skew_s=121))
    assert "clock" in codes(state(skew_s=-121))
    assert "clock" not in codes(state(skew_s=119))
    [a] = evaluate(state(skew_s=-300, health=health(clock_synced=False)), NOW, T)
    assert "behind" in a.message and "NTP" in a.message


def test_no_approved_model_means_no_model_alert():
    assert "model" not in codes(state(health=health(model_version="other")), t=FleetConfig())


def test_thresholds_are_configurable():
    t = FleetConfig(disk_used_pct=40, temp_c=45, offline_after_s=60)
    assert {"disk", "temperature"} <= codes(state(), t=t)
    d = state(state="offline", state_at=NOW - timedelta(seconds=90))
    assert "offline" in codes(d, t=t)
