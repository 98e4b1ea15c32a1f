"""Kiosk staff in the dashboard's admin pages and CLI; the roster reaches a kiosk as a signed staff.json bundle
over the repository's TLS broker and ACL (real Mosquitto, real SQLite file)."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion

from dashboard import audit, create_app, staff, updates
from dashboard.config import UpdatesConfig
from dashboard.store import Store
from edge.update import UpdateError, verify_bundle
from tests.dashauth import csrf_token, logged_in
from wire import topics
from wire.messages import Status
from wire.staff import STAFF_FILE, StaffRoster

ROOT = Path(__file__).resolve().parent.parent


def shows_as_value(text: str, *values: str) -> bool:
    """Whether any of ``values`` (PINs) appears in ``text`` as a value of its own, not inside a longer run of
    letters and digits (a timestamp's microseconds, 00.993146, or a hash's hex may hold the same digits)."""
    return re.search(r"(?<![0-9A-Za-z])(%s)(?![0-9A-Za-z])" % "|".join(map(re.escape, values)), text) is not None


def make_app(tmp_path, updates_config=None):
    return create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"), "TESTING": True,
                       "UPDATES": updates_config})


def post(client, url, data):
    token = csrf_token(client.get("/admin/staff").get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token})


def db_roster(tmp_path) -> StaffRoster:
    s = Store(tmp_path / "c.db", tmp_path / "images")
    try:
        return staff.roster(s.conn)
    finally:
        s.close()


def test_admin_adds_resets_and_deactivates_a_photographer_audited_pin_only_hashed(tmp_path):
    app = make_app(tmp_path)
    admin = logged_in(app, "boss", "admin")
    r = post(admin, "/admin/staff", {"staff_id": "ph.jones", "name": "Alex Jones", "role": "photographer",
                                     "pin": "4821", "pin_again": "4812"})
    assert r.status_code == 422 and "The two PINs differ" in r.get_data(as_text=True)
    r = post(admin, "/admin/staff", {"staff_id": "ph jones", "name": "Alex Jones", "role": "photographer",
                                     "pin": "4821", "pin_again": "4821"})
    assert r.status_code == 422 and "A staff id is 1 to 32 letters" in r.get_data(as_text=True)
    r = post(admin, "/admin/staff", {"staff_id": "ph.jones", "name": "Alex Jones", "role": "photographer",
                                     "pin": "48a1", "pin_again": "48a1"})
    assert r.status_code == 422 and "A PIN is 4 to 8 digits" in r.get_data(as_text=True)
    r = post(admin, "/admin/staff", {"staff_id": "ph.jones", "name": "Alex Jones", "role": "photographer",
                                     "pin": "4821", "pin_again": "4821"})
    assert r.status_code == 302
    page = admin.get("/admin/staff").get_data(as_text=True)
    assert 'data-staff-id="ph.jones"' in page and "Alex Jones" in page and "roster-pending" in page
    [member] = db_roster(tmp_path).staff
    assert member.check_pin("4821") and not member.check_pin("4812") and member.pin_hash.startswith("scrypt:")
    r = post(admin, "/admin/staff", {"staff_id": "ph.jones", "name": "Other", "role": "nurse", "pin": "1111",
                                     "pin_again": "1111"})
    assert r.status_code == 422 and "exists already" in r.get_data(as_text=True)
    assert post(admin, "/admin/staff/ph.jones/pin", {"pin": "9931", "pin_again": "9931"}).status_code == 302
    [member] = db_roster(tmp_path).staff
    assert member.check_pin("9931") and not member.check_pin("4821")
    assert post(admin, "/admin/staff/ph.jones/active", {"active": "0"}).status_code == 302
    assert db_roster(tmp_path).staff == []
    assert "deactivated" in admin.get("/admin/staff").get_data(as_text=True)
    assert post(admin, "/admin/staff/nobody/active", {"active": "0"}).status_code == 404
    s = Store(tmp_path / "c.db", tmp_path / "images")
    try:
        rows = audit.entries(s.conn, action="staff")
        assert [(e["action"], e["target"], e["actor"]) for e in rows][::-1] == [
            ("staff.create", "ph.jones", "boss"), ("staff.pin", "ph.jones", "boss"),
            ("staff.deactivate", "ph.jones", "boss")]
        assert audit.verify_chain(s.conn) is None
        dump = "\n".join(s.conn.iterdump())
        assert not shows_as_value(dump, "4821", "9931")  # the PINs only ever as hashes
    finally:
        s.close()


def test_staff_pages_are_for_admins_only(tmp_path):
    app = make_app(tmp_path)
    derm = logged_in(app, "derm", "dermatologist")
    assert derm.get("/admin/staff").status_code == 403


def test_send_without_update_settings_says_what_to_configure(tmp_path):
    app = make_app(tmp_path)
    admin = logged_in(app, "boss", "admin")
    page = admin.get("/admin/staff").get_data(as_text=True)
    assert 'id="send-roster" disabled' in page and "[updates] key_file" in page
    r = post(admin, "/admin/staff/send", {})
    assert r.status_code == 409 and "key_file" in r.get_data(as_text=True)


class KioskListener:
    """A kiosk's MQTT client on the TLS broker with its own certificate, reading its update topic."""

    def __init__(self, broker, pki, device: str, site: str):
        self.got: queue.Queue[bytes] = queue.Queue()
        cert, key = pki.kiosk(device)
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
        self.c.tls_set(ca_certs=str(pki.ca), certfile=str(cert), keyfile=str(key))
        subscribed = queue.Queue()
        self.c.on_subscribe = lambda *a: subscribed.put(True)
        self.c.on_message = lambda client, userdata, msg: self.got.put(msg.payload)
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        self.c.subscribe(topics.topic(site, device, topics.UPDATE), qos=1)
        subscribed.get(timeout=10)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_send_roster_reaches_each_known_kiosk_signed_over_the_tls_broker(tmp_path, tls_broker, test_pki):
    priv, pub = updates.make_key(tmp_path / "keys")
    cfg = UpdatesConfig.model_validate({"key_file": str(priv),
                                        "broker": test_pki.ingest_broker(tls_broker, "updates")})
    app = make_app(tmp_path, cfg)
    admin = logged_in(app, "boss", "admin")
    s = Store(tmp_path / "c.db", tmp_path / "images")
    for device in ("kiosk-a", "kiosk-b"):
        s.record_status("hub-1", Status(device_id=device, state="online"))
    s.close()
    listeners = {d: KioskListener(tls_broker, test_pki, d, "hub-1") for d in ("kiosk-a", "kiosk-b")}
    try:
        for sid, name, pin in (("ph.jones", "Alex Jones", "4821"), ("ph.khan", "Sam Khan", "770133")):
            assert post(admin, "/admin/staff", {"staff_id": sid, "name": name, "role": "photographer", "pin": pin,
                                                "pin_again": pin}).status_code == 302
        r = post(admin, "/admin/staff/send", {})
        assert r.status_code == 302
        page = admin.get("/admin/staff").get_data(as_text=True)
        assert "sent to kiosk-a, kiosk-b" in page and "roster-pending" not in page
        public = serialization.load_pem_public_key(pub.read_bytes())
        for device, listener in listeners.items():
            bundle = listener.got.get(timeout=10)
            manifest, files = verify_bundle(bundle, public, device)
            assert manifest.kind == "config" and set(files) == {STAFF_FILE} and manifest.devices == [device]
            roster = StaffRoster.model_validate_json(files[STAFF_FILE])
            assert [m.staff_id for m in roster.staff] == ["ph.jones", "ph.khan"]
            assert roster.member("ph.khan").check_pin("770133") and manifest.version == roster.version
            with pytest.raises(UpdateError, match="not for"):  # signed for that kiosk only
                verify_bundle(bundle, public, "kiosk-zzz")
    finally:
        for listener in listeners.values():
            listener.close()
    s = Store(tmp_path / "c.db", tmp_path / "images")
    try:
        from dashboard.fleet import recent_updates

        sent = {(u["device"], u["kind"]) for u in recent_updates(s) if u["version"].startswith("staff-")}
        assert sent == {("kiosk-a", "config"), ("kiosk-b", "config")}
        [entry] = audit.entries(s.conn, action="staff.roster-send")
        assert "2 staff to kiosk-a, kiosk-b" in entry["detail"]
    finally:
        s.close()


def test_staff_cli_add_with_pin_on_stdin_list_export_and_refusals(tmp_path):
    conf = tmp_path / "centre.toml"
    conf.write_text(f'[storage]\ndatabase = "{tmp_path / "c.db"}"\nimages_dir = "{tmp_path / "images"}"\n'
                    f'quarantine_dir = "{tmp_path / "q"}"\n[web]\nsecret_key_file = "{tmp_path / "secret"}"\n')

    def cli(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "dashboard", "staff", *args, "--config", str(conf)],
                              input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))

    r = cli("add", "--staff-id", "ph.demo", "--name", "Demo Photographer", "--pin-stdin", stdin="2468\n")
    assert r.returncode == 0, r.stderr
    r = cli("add", "--staff-id", "ph.demo", "--name", "Demo Photographer", "--pin-stdin", stdin="2468\n")
    assert r.returncode == 1 and "exists already" in r.stderr
    r = cli("add", "--staff-id", "ph.demo", "--name", "Demo Photographer", "--pin-stdin", "--update", stdin="1357\n")
    assert r.returncode == 0, r.stderr
    r = cli("add", "--staff-id", "ph.x", "--name", "X", "--pin-stdin", stdin="12\n")
    assert r.returncode == 1 and "A PIN is 4 to 8 digits" in r.stderr
    assert "ph.demo" in cli("list").stdout
    out = tmp_path / "staff.json"
    assert cli("export", "--out", str(out)).returncode == 0
    roster = StaffRoster.model_validate_json(out.read_bytes())
    assert roster.member("ph.demo").check_pin("1357")
    assert not shows_as_value(out.read_text(), "1357")  # a hash's hex may hold 1357
    r = cli("send")
    assert r.returncode == 1 and "[updates]" in r.stderr
    assert cli("deactivate", "--staff-id", "ph.demo").returncode == 0
    assert cli("export", "--out", str(out)).returncode == 0
    assert StaffRoster.model_validate_json(out.read_bytes()).staff == []
