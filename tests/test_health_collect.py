"""Kiosk health: throttling bits decoded, real sysfs reading, and a report of a real kiosk service
(real outbox, camera, classifier; only the Pi's sensors faked)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from edge import health
from edge.config import KioskConfig
from edge.service import KioskService
from wire.kioskconfig.quality import FOCUS_MEASURE_FLAGS, GreyPatch
from wire.messages import Health

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "models" / "lesion"


def test_decode_throttled():
    assert health.decode_throttled(0) == []
    assert health.decode_throttled(0x50005) == ["under-voltage-now", "throttled-now",
                                                "under-voltage-occurred", "throttled-occurred"]
    assert health.decode_throttled(0x80000) == ["soft-temp-limit-occurred"]


def test_system_sensors_read_the_hottest_thermal_zone(tmp_path):
    for i, milli in enumerate(("41250", "63500", "garbage")):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "temp").write_text(milli + "\n")
    s = health.SystemSensors(thermal_glob=str(tmp_path / "thermal_zone*" / "temp"))
    assert s.cpu_temp_c() == 63.5
    empty = health.SystemSensors(thermal_glob=str(tmp_path / "none*"))
    if not empty._vcgencmd:
        assert empty.cpu_temp_c() is None and empty.throttled_bits() is None
    assert s.clock_synced() in (True, False, None)
    assert health.adjtimex_synced() in (True, False, None)


def test_machine_figures():
    total, avail = health.memory_mb()
    assert total > 0 and 0 < avail <= total
    assert health.uptime_s() > 0


@pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="no shipped model")
def test_report_of_a_running_kiosk(tmp_path):
    cfg = KioskConfig.model_validate({
        "device_id": "kiosk-h", "site": "hub-h", "model_dir": str(MODEL_DIR), "data_dir": str(tmp_path / "k"),
        "classifier_threads": 1, "retention": {"min_free_mb": 0},
        "camera": {"source": "replay", "replay": {"width": 640, "height": 480, "seed": 2}}})
    sensors = health.FakeSensors(temp_c=83.4, throttled=0x50005, synced=False)
    with KioskService(cfg, with_link=False, sensors=sensors) as service:
        empty = health.collect(service, sensors, 15.0)
        assert empty.outbox_depth == 0 and empty.outbox_oldest_s is None and empty.last_capture_at is None
        service.capture_case("REF-1", "L1", "anterior torso", ["dermoscopic"])
        r = health.collect(service, sensors, 15.0)
    assert isinstance(r, Health) and Health.model_validate_json(r.model_dump_json()) == r
    assert r.device_id == "kiosk-h" and r.interval_s == 15.0
    assert r.cpu_temp_c == 83.4 and r.throttled_bits == 0x50005 and "under-voltage-now" in r.throttled
    assert r.clock_synced is False
    assert r.outbox_depth == 1 and 0 <= r.outbox_oldest_s < 60
    assert r.last_capture_at is not None and r.last_delivery_at is None
    assert r.camera_connected and not r.link_connected
    assert r.classifier_latency_ms and r.classifier_latency_ms > 0
    assert r.model_version == service.model_version and r.software_version
    assert r.calibration == ""                            # never calibrated: the built-in quality reference
    calibrated = cfg.model_copy(update={"quality": cfg.quality.model_copy(update={
        "reference": cfg.quality.reference.model_copy(update={"images": 14, "note": "hub h, 2026-12-05",
                                                              **dict.fromkeys(FOCUS_MEASURE_FLAGS, True)})})})
    assert health.calibration_note(calibrated) == "hub h, 2026-12-05"
    # calibrated by a release before the focus check's even weighing: IT is told a new calibration brings it
    older = calibrated.quality.model_copy(update={"reference": calibrated.quality.reference.model_copy(
        update={"focus_even": False})})
    assert health.calibration_note(calibrated.model_copy(update={"quality": older})) == \
        "hub h, 2026-12-05" + health.FOCUS_OUTDATED
    long = older.model_copy(update={"reference": older.reference.model_copy(update={"note": "x" * 200}),
                                    "grey_patch": GreyPatch(x=0.5, y=0.9, radius=0.04)})
    both = health.calibration_note(calibrated.model_copy(update={"quality": long}))
    assert len(both) == 200 and both.endswith(health.PATCH_UNCALIBRATED + health.FOCUS_OUTDATED)
    report = r.model_copy(update={"calibration": both})
    assert Health.model_validate_json(report.model_dump_json()).calibration == both  # within the report's limit
    patch = GreyPatch(x=0.5, y=0.9, radius=0.04)  # a grey patch added after that calibration: IT is told to redo it
    fitted = calibrated.quality.model_copy(update={"grey_patch": patch})
    assert health.calibration_note(calibrated.model_copy(update={"quality": fitted})) == \
        "hub h, 2026-12-05" + health.PATCH_UNCALIBRATED
    measured = fitted.model_copy(update={"reference": fitted.reference.model_copy(update={"patch_level": 140.0})})
    assert health.calibration_note(calibrated.model_copy(update={"quality": measured})) == "hub h, 2026-12-05"
    usage = os.statvfs(tmp_path)
    assert abs(r.disk_free_mb - usage.f_bavail * usage.f_frsize / 2**20) < 64
    assert abs((datetime.now(timezone.utc) - r.at).total_seconds()) < 10
