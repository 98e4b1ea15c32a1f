"""Issue 25 at the centre's pages: registering kiosks (admin, audited, errors beside nothing lost), the
quarantine's download (admin only, an attachment with a non-identifying name, audited, never inline, no
release path), and the alerts IT needs (quarantine rate, unsynchronised clock, malformed health, an
expiring certificate from the PKI index) on the fleet page and in /metrics, which promtool accepts."""

from __future__ import annotations

import shutil
from html import unescape
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard import audit, counters, create_app, fleet, registry
from dashboard.alerts import FleetConfig
from dashboard.intake import handle_case, handle_kiosk_message
from dashboard.pki import Pki
from dashboard.config import RegistryConfig
from dashboard.sample import make_frame
from dashboard.store import Store
from tests.dashauth import csrf_token, logged_in
from tests.test_fleet_page import health
from wire import topics

TOKEN = "metrics-token-pages-0123456789abcdef"


def fill(app, now: datetime) -> None:
    """Two registered kiosks (one with an unsynchronised clock, a malformed health report and a case under
    another hub), a stranger's case, counters as the ingest adds them; the PKI has a certificate that
    expires in 20 days."""
    store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"], app.config["QUARANTINE_DIR"])
    try:
        fleet.ensure_schema(store)
        pki = Pki(app.config["REGISTRY"].pki_dir)
        for dev, days in (("kiosk-n1", 397), ("kiosk-n2", 20)):
            pki.issue_kiosk(dev, days=days, site="hub-north")
        assert [k.device for k in registry.seed_from_pki(store.conn, pki.dir, actor="test")] == ["kiosk-n1", "kiosk-n2"]
        for dev, synced in (("kiosk-n1", False), ("kiosk-n2", True)):
            fleet.record_health(store, "hub-north", health(dev, now, clock_synced=synced), now)
        bad = health("kiosk-n1", now).model_dump_json().replace('"outbox_depth":0', '"outbox_depth":-3').encode()
        assert handle_kiosk_message(store, topics.topic("hub-north", "kiosk-n1", "health"), bad, now,
                                    require_registration=True).reason == "invalid-health"
        _, frame = make_frame(7, site="hub-south", device="kiosk-n1")
        assert handle_case(store, topics.topic("hub-south", "kiosk-n1", "case"), frame, now,
                           require_registration=True).reason == "wrong-hub"
        _, frame = make_frame(8, site="hub-x", device="kiosk-zz")
        assert handle_case(store, topics.topic("hub-x", "kiosk-zz", "case"), frame, now,
                           require_registration=True).reason == "unregistered"
        counters.flush(store.conn, "ingest", Counter(
            {(counters.STORED, ""): 5, (counters.QUARANTINED, "wrong-hub"): 1, (counters.ACKS_SENT, ""): 7}))
    finally:
        store.close()


@pytest.fixture
def app(tmp_path):
    a = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"),
                    "QUARANTINE_DIR": str(tmp_path / "quarantine"), "METRICS_TOKEN": TOKEN,
                    "FLEET": FleetConfig(), "REGISTRY": RegistryConfig(pki_dir=tmp_path / "pki")})
    Pki(tmp_path / "pki").init()
    fill(a, datetime.now(timezone.utc))
    return a


def test_the_fleet_page_alerts_it_to_what_goes_wrong(app):
    html = logged_in(app, "it-p", "it").get("/fleet").get_data(as_text=True)
    n1 = html.split('id="kiosk-kiosk-n1"')[1].split("</section>")[0]
    n2 = html.split('id="kiosk-kiosk-n2"')[1].split("</section>")[0]
    assert 'data-alert="clock-sync"' in n1 and 'data-alert="clock-sync"' not in n2
    assert 'data-alert="malformed"' in n1 and "1 malformed health/status message(s)" in n1
    assert 'data-alert="quarantine"' in n1 and "2 message(s) quarantined in the last 1.0 h" in n1
    assert 'data-alert="certificate"' in n2 and "(in 20 days): renew it (pki renew-kiosk)" in n2
    assert 'data-alert="certificate"' not in n1
    assert 'data-alert="unregistered" data-device="kiosk-zz"' in html and 'id="kiosk-kiosk-zz"' not in html


def test_metrics_counters_and_gauges_follow_prometheus_conventions(app):
    r = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    body = r.get_data(as_text=True)
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    for name in ("dermkiosk_ingest_cases_stored", "dermkiosk_ingest_cases_duplicate",
                 "dermkiosk_ingest_messages_quarantined", "dermkiosk_ingest_acks_sent"):
        assert fams[name].type == "counter", name
        assert f"# TYPE {name}_total counter" in body or f"# TYPE {name} counter" in body
    assert "dermkiosk_ingest_cases_stored_total{client_id=\"ingest\"} 5.0" in body
    assert 'dermkiosk_ingest_messages_quarantined_total{client_id="ingest",reason="wrong-hub"} 1.0' in body
    alert = {(s.labels["device"], s.labels["alert"]): s.value for s in fams["dermkiosk_device_alert"].samples}
    assert alert[("kiosk-n1", "clock-sync")] == 1 and alert[("kiosk-n2", "certificate")] == 1
    assert alert[("kiosk-n2", "clock-sync")] == 0
    assert fams["dermkiosk_unregistered_kiosks"].samples[0].value == 1
    expiry = {s.labels["device"]: s.value for s in fams["dermkiosk_device_certificate_expiry_timestamp_seconds"].samples}
    assert 19 * 86400 < expiry["kiosk-n2"] - datetime.now(timezone.utc).timestamp() < 21 * 86400
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt: prometheus); the exposition parsed with prometheus_client")
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check.stdout + check.stderr


def test_an_admin_registers_a_kiosk_errors_beside_the_field_and_audited(app):
    admin = logged_in(app, "admin-p", "admin")
    page = admin.get("/devices").get_data(as_text=True)
    assert 'id="register-kiosk"' in page and "kiosk-zz" in page.split('id="unregistered"')[1]
    token = csrf_token(page)
    bad = admin.post("/devices/register", data={"csrf_token": token, "device": "kiosk-zz", "site": "Hub X",
                                                "cert_serial": "abc"})
    html = unescape(bad.get_data(as_text=True))
    assert bad.status_code == 422 and "hub 'Hub X' must be 1-32 characters" in html
    assert 'value="kiosk-zz"' in html and 'value="abc"' in html           # what was typed is kept
    assert 'id="site" name="site" value="Hub X" required' in html and 'aria-invalid="true"' in html
    bad = admin.post("/devices/register", data={"csrf_token": token, "device": "kiosk-zz", "site": "hub-x"})
    assert bad.status_code == 422 and "expected certificate: give its serial" in bad.get_data(as_text=True)
    ok = admin.post("/devices/register", data={"csrf_token": token, "device": "kiosk-zz", "site": "hub-x",
                                               "cert_sha256": "AB:" * 31 + "AB"})
    assert ok.status_code == 303
    page = admin.get("/devices").get_data(as_text=True)
    assert 'id="unregistered"' not in page and 'data-device="kiosk-zz"' in page
    assert "broker not configured" in page                                 # the flash says what is left
    assert admin.post("/devices/kiosk-zz/unregister", data={"csrf_token": token}).status_code == 303
    it = logged_in(app, "it-q", "it")
    assert it.post("/devices/register", data={"csrf_token": csrf_token(it.get("/devices").get_data(as_text=True)),
                                              "device": "kiosk-x", "site": "hub-x", "cert_serial": "ab"}).status_code == 403
    store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"])
    try:
        rows = audit.entries(store.conn, action="kiosk.")
        assert [(r["action"], r["actor"]) for r in rows] == [("kiosk.unregister", "admin-p"), ("kiosk.register", "admin-p")]
        assert "sha256 abababababababab" in rows[1]["detail"]
    finally:
        store.close()


def test_an_admin_downloads_a_quarantined_payload_as_an_attachment_audited(app):
    store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"], app.config["QUARANTINE_DIR"])
    try:
        q = next(q for q in store.list_quarantine() if q["reason"].startswith("kiosk kiosk-n1 is registered"))
        kept = store.quarantine_payload_path(q).read_bytes()
    finally:
        store.close()
    it = logged_in(app, "it-d", "it")
    page = it.get("/quarantine").get_data(as_text=True)
    assert "kiosk kiosk-n1 is registered for hub hub-north, not hub-south" in page and "wrong-hub" in page
    assert "invalid health message" in page and "/payload" not in page     # IT sees why, not the payload
    assert it.get(f"/quarantine/{q['id']}/payload").status_code == 403
    admin = logged_in(app, "admin-d", "admin")
    assert f"/quarantine/{q['id']}/payload" in admin.get("/quarantine").get_data(as_text=True)
    r = admin.get(f"/quarantine/{q['id']}/payload")
    assert r.status_code == 200 and r.data == kept
    assert r.headers["Content-Disposition"] == f"attachment; filename=quarantine-{q['id']}.bin"
    assert r.mimetype == "application/octet-stream" and r.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in r.headers["Content-Security-Policy"] and r.headers["Cache-Control"] == "no-store"
    assert admin.get("/quarantine/99999/payload").status_code == 404
    # no release path: nothing under /quarantine takes a POST
    token = csrf_token(admin.get("/devices").get_data(as_text=True))
    for url in (f"/quarantine/{q['id']}/payload", f"/quarantine/{q['id']}/release", "/quarantine"):
        assert admin.post(url, data={"csrf_token": token}).status_code in (404, 405)
    assert not [r for r in app.url_map.iter_rules() if r.rule.startswith("/quarantine") and "POST" in r.methods]
    store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"])
    try:
        [e] = audit.entries(store.conn, action="quarantine.")
        assert (e["actor"], e["target"]) == ("admin-d", f"quarantine {q['id']}")
        assert q["payload_sha256"] in e["detail"] and "wrong-hub" in e["detail"]
    finally:
        store.close()
