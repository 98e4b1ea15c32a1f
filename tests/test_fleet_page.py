"""Fleet page and /metrics over a real centre database filled through the ingest's own recording code."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard import create_app, fleet, registry
from dashboard.alerts import FleetConfig
from dashboard.store import Store
from edge.health import FOCUS_OUTDATED  # what a kiosk calibrated by an older release reports
from tests.dashauth import logged_in
from wire.messages import Health, Status, UpdateManifest, UpdateResult

TOKEN = "metrics-token-0123456789abcdef"


def health(device: str, at: datetime, **kw) -> Health:
    """A plausible health report of ``device`` taken at kiosk time ``at``."""
    base = dict(device_id=device, at=at, interval_s=30, uptime_s=86400 * 3, service_uptime_s=7200,
                cpu_temp_c=52.0, throttled_bits=0, load1=0.4, load5=0.3, load15=0.2, mem_total_mb=3800,
                mem_available_mb=2900, disk_total_mb=29000, disk_free_mb=21000, outbox_depth=0,
                last_capture_at=at - timedelta(minutes=20), last_delivery_at=at - timedelta(minutes=19),
                camera_connected=True, classifier_latency_ms=84.0, model_version="lesion-v1",
                software_version="0.1.0", clock_synced=True)
    base.update(kw)
    return Health(**base)


def populate(database, images_dir, now: datetime | None = None) -> datetime:
    """Three kiosks with 24 h of history: one healthy, one hot and nearly full, one gone (last will)."""
    now = now or datetime.now(timezone.utc)
    store = Store(database, images_dir)
    try:
        fleet.ensure_schema(store)
        for dev, site in (("kiosk-0001", "hub-north"), ("kiosk-0002", "hub-north"), ("kiosk-0003", "hub-south")):
            registry.register(store.conn, dev, site, cert_serial="1" + dev[-1], actor="test",
                              at=now - timedelta(days=2))
        for i in range(48):                       # every 30 min over the last day
            t = now - timedelta(minutes=30 * (47 - i))
            fleet.record_health(store, "hub-north", health("kiosk-0001", t, cpu_temp_c=48 + 6 * (i % 6) / 5,
                                                           load1=0.2 + (i % 5) / 10,
                                                           calibration="hub north, 2026-12-01" + FOCUS_OUTDATED), t)
            fleet.record_health(store, "hub-north", health(
                "kiosk-0002", t + timedelta(minutes=4), cpu_temp_c=70 + i * 0.25, disk_free_mb=6000 - i * 100,
                outbox_depth=i // 8, outbox_oldest_s=(i // 8) * 900.0 or None,
                throttled_bits=0x50005 if i > 44 else 0,
                throttled=["under-voltage-now", "throttled-now", "under-voltage-occurred", "throttled-occurred"]
                if i > 44 else [], calibration=""), t)
            if i < 30:
                fleet.record_health(store, "hub-south", health("kiosk-0003", t, model_version="lesion-v0"), t)
        for dev, site in (("kiosk-0001", "hub-north"), ("kiosk-0002", "hub-north")):
            store.record_status(site, Status(device_id=dev, state="online", at=now), now - timedelta(hours=2))
        for dev, status, reason in (("kiosk-0001", "applied", "self-test passed"),
                                    ("kiosk-0003", "refused", "bad signature: bundle.sig does not verify")):
            m = UpdateManifest(bundle_id=uuid.uuid4(), kind="model", version="lesion-v1", created_at=now,
                               files={"model.tflite": "0" * 64, "manifest.json": "1" * 64})
            site = "hub-south" if dev == "kiosk-0003" else "hub-north"
            fleet.record_update_sent(store, m, site, dev, now - timedelta(hours=3))
            fleet.record_update_result(store, site, UpdateResult(
                device_id=dev, bundle_id=m.bundle_id, kind="model", version="lesion-v1", status=status,
                reason=reason, serving="lesion-v1" if status == "applied" else "lesion-v0", at=now),
                now - timedelta(hours=3) + timedelta(seconds=40))
        gone = now - timedelta(minutes=30 * 18)
        store.record_status("hub-south", Status(device_id="kiosk-0003", state="offline", at=gone), gone)
    finally:
        store.close()
    return now


@pytest.fixture
def app(tmp_path):
    a = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"),
                    "METRICS_TOKEN": TOKEN, "FLEET": FleetConfig(approved_model="lesion-v1")})
    populate(a.config["DATABASE"], a.config["IMAGES_DIR"])
    return a


def test_fleet_page_for_it(app):
    client = logged_in(app, "it-1", "it")
    r = client.get("/fleet")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert 'id="kiosk-kiosk-0001" data-presence="online"' in html
    assert 'id="kiosk-kiosk-0003" data-presence="offline"' in html
    second = html.split('id="kiosk-kiosk-0002"')[1].split("</section>")[0]
    for code in ("disk", "throttled", "backlog", "calibration"):
        assert f'data-alert="{code}"' in second
    assert "NOT calibrated" in second and "python -m edge calibrate" in second
    first = html.split('id="kiosk-kiosk-0001"')[1].split("</section>")[0]
    assert "calibrated: hub north, 2026-12-01 (sharpness measured by an older release: calibrate again)" in first
    assert 'data-alert="calibration"' not in first  # calibrated, if the old way: no alert, the card says it
    gone = html.split('id="kiosk-kiosk-0003"')[1].split("</section>")[0]
    assert 'data-alert="offline"' in gone and 'data-alert="model"' in gone
    assert 'data-alert="calibration"' not in gone             # an older kiosk does not report it
    assert html.count("<polyline") >= 8                       # charts drawn server-side
    assert "<script" not in html
    assert "bad signature" in html and "self-test passed" in html
    assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_fleet_page_roles(app):
    assert logged_in(app, "admin-1", "admin").get("/fleet").status_code == 200
    assert logged_in(app, "dr-1", "dermatologist").get("/fleet").status_code == 403
    r = app.test_client().get("/fleet")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_metrics_needs_the_token_and_parses(app):
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    fams = {f.name: f for f in text_string_to_metric_families(r.get_data(as_text=True))}
    val = {(f.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}

    def get(name, device, **extra):
        return val[(name, tuple(sorted({"site": "hub-south" if device == "kiosk-0003" else "hub-north",
                                        "device": device, **extra}.items())))]

    assert val[("dermkiosk_devices", ())] == 3
    assert get("dermkiosk_device_online", "kiosk-0001") == 1
    assert get("dermkiosk_device_online", "kiosk-0003") == 0
    assert get("dermkiosk_device_alerts", "kiosk-0001") == 0
    assert get("dermkiosk_device_alert", "kiosk-0002", alert="disk") == 1
    assert get("dermkiosk_device_alert", "kiosk-0002", alert="temperature") == 1      # 81.75 °C
    assert get("dermkiosk_device_alert", "kiosk-0002", alert="clock") == 1            # 4 min ahead
    assert get("dermkiosk_device_clock_skew_seconds", "kiosk-0002") == pytest.approx(240)
    assert get("dermkiosk_device_alert", "kiosk-0001", alert="clock") == 0
    assert get("dermkiosk_device_alert", "kiosk-0003", alert="offline") == 1
    assert get("dermkiosk_device_cpu_temperature_celsius", "kiosk-0002") == pytest.approx(70 + 47 * 0.25)
    assert get("dermkiosk_device_disk_used_ratio", "kiosk-0002") == pytest.approx(1 - 1300 / 29000, abs=1e-3)
    assert get("dermkiosk_device_outbox_depth", "kiosk-0002") == 5
    assert get("dermkiosk_device_outbox_oldest_age_seconds", "kiosk-0002") > 3600
    assert get("dermkiosk_device_throttled", "kiosk-0002") == 1


def test_metrics_off_without_a_token(tmp_path):
    a = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images")})
    assert a.test_client().get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 404


def test_history_is_pruned_to_the_window(tmp_path):
    store = Store(tmp_path / "c.db", tmp_path / "images")
    now = datetime.now(timezone.utc)
    for h in (30, 25, 1):
        t = now - timedelta(hours=h)
        fleet.record_health(store, "s", health("k1", t), t)
    fleet.prune_history(store, now - timedelta(hours=24))
    rows = fleet.history(store, "k1", now - timedelta(days=7))
    assert len(rows) == 1
    # the latest report wins even when an older one arrives late
    fleet.record_health(store, "s", health("k1", now - timedelta(hours=5), cpu_temp_c=99.0), now - timedelta(hours=5))
    assert fleet.device_states(store)[0].health.cpu_temp_c == 52.0
    store.close()


def test_sparkline_is_svg_with_gaps_and_limit():
    t0 = 0.0
    svg = str(fleet.sparkline([(0, 1.0), (10, 2.0), (20, None), (30, 3.0), (40, 2.5)], t0, 40, "°C", limit=2.8))
    assert svg.startswith("<svg") and svg.count("<polyline") == 2 and "spark-limit" in svg
    assert "no data" in str(fleet.sparkline([], 0, 1))


def test_the_page_and_metrics_say_when_no_ingest_is_taking_cases(app):
    """The ingest's worker beats in the database; silent for a minute, or stopped, it is not taking cases."""
    client = logged_in(app, "it-1", "it")
    html = client.get("/fleet").get_data(as_text=True)
    assert 'id="ingest-down"' in html and "It has never run on this database." in html
    now = datetime.now(timezone.utc)
    store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"])
    try:
        fleet.record_ingest_alive(store, "ingest", now - timedelta(hours=1), now - timedelta(seconds=5))
        html = client.get("/fleet").get_data(as_text=True)
        assert 'id="ingest-down"' not in html and 'id="ingest-up"' in html and "Ingest ingest running since" in html

        def scrape() -> dict:
            r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            return {(s.name, s.labels.get("client_id")): s.value
                    for f in text_string_to_metric_families(r.get_data(as_text=True)) for s in f.samples}
        got = scrape()
        assert got[("dermkiosk_ingest_up", "ingest")] == 1
        assert 4 <= got[("dermkiosk_ingest_last_heard_age_seconds", "ingest")] < 60
        fleet.record_ingest_alive(store, "ingest", now - timedelta(hours=1), now - timedelta(minutes=5))
        html = client.get("/fleet").get_data(as_text=True)
        assert 'id="ingest-down"' in html and "ingest: silent, last heard 5 min ago." in html
        assert scrape()[("dermkiosk_ingest_up", "ingest")] == 0
        # Two processes, one of them silent: cases still flow, but the broker keeps the silent one's share.
        fleet.record_ingest_alive(store, "ingest-2", now - timedelta(hours=1), now - timedelta(seconds=5))
        html = client.get("/fleet").get_data(as_text=True)
        assert 'id="ingest-down"' not in html and "Ingest ingest-2 running since" in html
        assert 'id="ingest-silent-ingest"' in html and "the broker keeps its share" in html
        assert 'id="ingest-silent-ingest-2"' not in html
        fleet.record_ingest_stopped(store, "ingest-2", now)
        fleet.record_ingest_alive(store, "ingest", now, now)
        fleet.record_ingest_stopped(store, "ingest", now)
        html = client.get("/fleet").get_data(as_text=True)
        assert 'id="ingest-down"' in html and "ingest: stopped" in html and "ingest-silent" not in html
    finally:
        store.close()


def test_an_ingest_blocked_by_storage_is_shown_with_its_reason_and_clears(app):
    """Alive but retrying a storage problem: the page and /metrics say so, since when and why, then clear."""
    client = logged_in(app, "it-1", "it")
    now = datetime.now(timezone.utc)
    store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"])
    problem = "storage unavailable: No space left on device (OSError)"
    try:
        fleet.record_ingest_alive(store, "ingest", now - timedelta(hours=1), now - timedelta(minutes=3), problem)
        fleet.record_ingest_alive(store, "ingest", now - timedelta(hours=1), now - timedelta(seconds=5), problem)
        [beat] = fleet.ingest_states(store, now)
        assert beat["state"] == "blocked" and beat["problem"] == problem
        assert beat["problem_since"] == now - timedelta(minutes=3), "later beats keep the problem's start"
        html = client.get("/fleet").get_data(as_text=True)
        assert 'id="ingest-down"' in html and "ingest: blocked" in html, "a blocked ingest takes no cases"
        assert 'id="ingest-blocked-ingest"' in html and "Ingest ingest cannot store cases" in html
        assert "No space left on device" in html and "nothing is lost" in html
        r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        got = {(s.name, s.labels.get("client_id")): s.value
               for f in text_string_to_metric_families(r.get_data(as_text=True)) for s in f.samples}
        assert got[("dermkiosk_ingest_storage_blocked", "ingest")] == 1
        assert got[("dermkiosk_ingest_up", "ingest")] == 0
        # a second process still stores: cases flow, and the blocked one is still named
        fleet.record_ingest_alive(store, "ingest-2", now - timedelta(hours=1), now)
        html = client.get("/fleet").get_data(as_text=True)
        assert 'id="ingest-down"' not in html and 'id="ingest-blocked-ingest"' in html
        # storage works again: the next beat clears it
        fleet.record_ingest_alive(store, "ingest", now - timedelta(hours=1), now)
        [beat, _] = fleet.ingest_states(store, now)
        assert beat["state"] == "running" and beat["problem"] is None and beat["problem_since"] is None
        assert "ingest-blocked" not in client.get("/fleet").get_data(as_text=True)
        # a problem that ends with a clean stop is not shown again
        fleet.record_ingest_alive(store, "ingest", now - timedelta(hours=1), now, problem)
        fleet.record_ingest_stopped(store, "ingest", now)
        assert fleet.ingest_states(store, now)[0]["state"] == "stopped"
    finally:
        store.close()


def test_the_page_and_metrics_show_the_centres_own_free_disk_space(app):
    """Read by the dashboard itself (no database needed): images and database folders, merged when on one disk."""
    client = logged_in(app, "it-1", "it")
    html = client.get("/fleet").get_data(as_text=True)
    assert 'id="centre-disks"' in html and 'data-holds="images database"' in html
    assert "images and database:" in html and " free of " in html and "% used" in html
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    got = {(s.name, s.labels.get("holds")): s.value
           for f in text_string_to_metric_families(r.get_data(as_text=True)) for s in f.samples}
    assert got[("dermkiosk_centre_disk_free_bytes", "images database")] > 0
    assert 0 < got[("dermkiosk_centre_disk_used_ratio", "images database")] < 1


def test_centre_disks_merges_file_systems_and_alerts(tmp_path):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    used = 100.0 * (1 - usage.free / usage.total)
    [disk] = fleet.centre_disks({"images": tmp_path / "not" / "made" / "yet", "database": tmp_path}, 100.0)
    assert disk["labels"] == ["images", "database"] and disk["total"] == usage.total and not disk["alert"]
    assert abs(disk["used_pct"] - used) < 1.0
    [disk] = fleet.centre_disks({"images": tmp_path}, used / 2)
    assert disk["alert"], "more used than the limit"
    assert fleet.format_bytes(3 * 2**30 // 2) == "1.5 GiB" and fleet.format_bytes(5 * 2**20) == "5 MiB"
    assert fleet.format_bytes(2 * 2**40) == "2.0 TiB" and fleet.format_bytes(None) == ""


def test_heartbeats_of_an_older_database_gain_the_problem_columns(tmp_path):
    """A database made before ``problem`` existed: opening it adds the columns, its rows keep their values."""
    import sqlite3

    db = tmp_path / "centre.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE ingest_heartbeat (client_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, "
                 "alive_at TEXT NOT NULL, stopped_at TEXT)")
    now = datetime.now(timezone.utc)
    conn.execute("INSERT INTO ingest_heartbeat VALUES ('ingest', ?, ?, NULL)", (now.isoformat(), now.isoformat()))
    conn.commit()
    conn.close()
    store = Store(db, tmp_path / "images")
    try:
        [beat] = fleet.ingest_states(store, now)
        assert beat["state"] == "running" and beat["problem"] is None
        fleet.record_ingest_alive(store, "ingest", now, now, "storage unavailable: disk I/O error (OperationalError)")
        assert fleet.ingest_states(store, now)[0]["state"] == "blocked"
    finally:
        store.close()
