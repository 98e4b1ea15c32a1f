"""Centre configuration errors and the Flask dashboard views (per-test temporary database)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dashboard import create_app, sample
from dashboard.__main__ import main
from dashboard.config import CentreConfig, load_config, secret_key
from dashboard.store import Store
from wire import codec
from wire.messages import QualityCheck
from wire.tomlconfig import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "firmware_config" / "centre.demo.toml"


# -- configuration ------------------------------------------------------------------


def test_demo_config_loads():
    cfg = load_config(DEMO)
    assert (cfg.broker.host, cfg.broker.port, cfg.broker.tls) == ("127.0.0.1", 1883, False)
    assert cfg.web.host == "127.0.0.1"
    assert cfg.storage.database == Path("var/centre/centre.db")


@pytest.mark.parametrize("toml, field, words", [
    ('[broker]\nurl = "http://x:1"\n', "broker.url", "mqtt://"),
    ('[broker]\nurl = "mqtt://h:99999"\n', "broker.url", "port"),
    ('[broker]\nkeepalive_s = "soon"\n', "broker.keepalive_s", "integer"),
    ('[broker]\ncert_file = "c.pem"\n', "broker", "key_file"),
    ('[broker]\nshare_group = "Has Spaces"\n', "broker.share_group", "pattern"),
    ('[web]\nprot = 8080\n', "web.prot", "unknown field"),
    ('[web]\nport = 0\n', "web.port", "greater than or equal"),
    ('[ingest]\nincomplete_case_timeout_s = 1\n', "ingest.incomplete_case_timeout_s", "greater"),
    ('[ingest]\ndecoder_threads = 0\n', "ingest.decoder_threads", "greater than or equal"),
    ('[storage]\ndatabase = 3\n', "storage.database", "path"),
    ('extra = 1\n', "extra", "unknown field"),
])
def test_config_errors_name_file_and_field(tmp_path, toml, field, words):
    path = tmp_path / "centre.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: {field}: "), msg
    assert words.lower() in msg.lower(), msg


def test_config_not_toml_or_missing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[broker\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")


def test_cli_exits_2_with_one_message(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text('[web]\nport = "eighty"\n')
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--config", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"configuration error: {path}: web.port: Input should be a valid integer, unable to parse " \
                  "string as an integer"


def test_cli_as_a_process(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[broker]\nurll = "mqtt://x"\n')
    r = subprocess.run([sys.executable, "-m", "dashboard", "ingest", "--config", str(path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "broker.urll: unknown field" in r.stderr and str(path) in r.stderr


def test_secret_key_file_created_private(tmp_path):
    key = secret_key(tmp_path / "k" / "secret")
    assert len(key) == 64 and secret_key(tmp_path / "k" / "secret") == key
    assert (tmp_path / "k" / "secret").stat().st_mode & 0o777 == 0o600


# -- views --------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path):
    return create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"),
                       "TESTING": True})


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "c.db", tmp_path / "images")
    yield s
    s.close()


PASSWORD = "correct horse battery staple"


def make_user(db_path, username: str, role: str) -> bool:
    """Create a user if this dashboard has accounts (the log-in issue); False when it has none."""
    try:
        from dashboard import users
    except ImportError:
        return False
    s = Store(db_path, Path(db_path).parent / "images")
    try:
        users.ensure_schema(s.conn)
        if users.get_user(s.conn, username=username) is None:
            users.create_user(s.conn, username, PASSWORD, role)
    finally:
        s.close()
    return True


def logged_in(app, role: str = "dermatologist"):
    """A test client, logged in with ``role`` when the app asks for a log-in (before that, as is)."""
    import re

    client = app.test_client()
    first = client.get("/cases")
    if first.status_code != 302 or "/login" not in first.headers.get("Location", ""):
        return client
    name = f"test-{role}"
    assert make_user(app.config["DATABASE"], name, role)
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    r = client.post("/login", data={"username": name, "password": PASSWORD,
                                    "csrf_token": token.group(1) if token else ""})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return client


@pytest.fixture
def client(app):
    return logged_in(app)


@pytest.fixture
def it_client(app):
    return logged_in(app, "it")


def test_create_app_requires_a_database():
    with pytest.raises(ValueError, match="DATABASE"):
        create_app({"IMAGES_DIR": "/tmp/x"})


def test_empty_worklist(client):
    r = client.get("/cases")
    assert r.status_code == 200
    assert b"No cases yet" in r.data
    assert b"not a medical device" in r.data
    assert client.get("/").status_code == 302
    assert client.get("/").headers["Location"].endswith("/cases")


def test_worklist_oldest_first_within_a_tier_with_risk_badges(client, store):
    t0 = datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)
    headers = []
    for i, minutes in enumerate([10, 30, 20]):
        h, ims = sample.make_case(60 + i)
        h = h.model_copy(update={"classification": h.classification.model_copy(update={"risk": "benign"})})
        store.save_case(h, ims, received_at=t0 + timedelta(minutes=minutes))
        headers.append(h)
    html = client.get("/cases").get_data(as_text=True)
    order = [html.index(h.referral_ref) for h in headers]
    assert order[0] < order[2] < order[1]  # received 09:10, 09:20, 09:30: the longest waiting first
    assert "referred 01 May 2026" in html  # a v1 case's referral date is the day it was received
    for h in headers:
        assert f'class="badge risk-{h.classification.risk}"' in html
        assert f'data-referral-key="{h.case_id}"' in html  # a v1 case is a one-lesion referral keyed by its id


def test_case_page_shows_images_result_quality_and_device(client, store):
    h, ims = sample.make_case(70, n_images=3)
    store.save_case(h, ims)
    r = client.get(f"/cases/{h.case_id}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    for im in h.images:
        assert f'src="/images/{im.sha256}.jpg"' in html
    for label, p in h.classification.probabilities.items():
        assert f"{100 * p:.1f} %" in html and f">{label}</abbr>" in html
    assert f'class="badge risk-{h.classification.risk}"' in html
    assert h.classification.model in html
    assert "focus" in html and "quality passed" in html
    assert "kiosk-1" in html and "site-1" in html
    assert "Decision support only; not a medical device" in html
    assert r.headers["Cache-Control"] == "no-store"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]


def test_case_page_without_classification_or_quality(client, store):
    h, ims = sample.make_case(71, n_images=1)
    meta = h.images[0].model_copy(update={"quality": None, "classification": None})
    h = h.model_copy(update={"images": [meta], "classification": None})
    store.save_case(h, ims)
    html = client.get(f"/cases/{h.case_id}").get_data(as_text=True)
    assert "no classifier output" in html and "no quality result" in html


def test_failed_quality_check_is_marked(client, store):
    h, ims = sample.make_case(72, n_images=1)
    q = sample.gate_result(True)
    # a refusal just past its limit: the value column shows the figure as reported, not rounded onto the limit
    cast = QualityCheck(value=3.5035, ok=False, message="Colours look wrong (yellow cast: 3.503 from this kiosk's "
                        "normal colour, at most 3.5): check the lighting and white balance, and tap again")
    q = q.model_copy(update={"checks": {**q.checks, "colour": cast}})
    h = h.model_copy(update={"images": [h.images[0].model_copy(update={"quality": q})]})
    store.save_case(h, ims)
    html = client.get(f"/cases/{h.case_id}").get_data(as_text=True)
    assert "quality failed" in html and '<tr class="fail">' in html
    assert "Image is blurred (sharpness 12% of this kiosk&#39;s normal, needs 35%)" in html
    assert '<td class="num">3.5035</td>' in html and "yellow cast: 3.503 from" in html


def test_html_is_escaped(client, store):
    h, ims = sample.make_case(73)
    h = h.model_copy(update={"note": "<script>alert(1)</script>", "referral_ref": "<b>R</b>"})
    store.save_case(h, ims)
    html = client.get(f"/cases/{h.case_id}").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "<b>R</b>" not in client.get("/cases").get_data(as_text=True)


def test_images_served_by_hash_only(client, store, tmp_path):
    h, ims = sample.make_case(74)
    store.save_case(h, ims)
    sha = h.images[0].sha256
    r = client.get(f"/images/{sha}.jpg")
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and r.data == ims[0]
    assert codec.sha256_hex(r.data) == sha
    assert client.get(f"/images/{'0' * 64}.jpg").status_code == 404
    assert client.get("/images/..%2F..%2Fc.db.jpg").status_code == 404
    assert client.get(f"/images/{sha.upper()}.jpg").status_code == 404
    stray = sample.make_jpeg(999)  # a file on disk that no committed case uses is not served
    store.write_image(stray)
    assert client.get(f"/images/{codec.sha256_hex(stray)}.jpg").status_code == 404


def test_unknown_case_is_404(client):
    assert client.get("/cases/not-a-uuid").status_code == 404
    assert client.get("/cases/6f1c1d9e-1111-4222-8333-444455556666").status_code == 404


def test_quarantine_and_devices_pages(it_client, store):
    client = it_client
    store.quarantine("dermkiosk/v1/site-1/kiosk-1/case", "image 0 sha256 mismatch", b"xx", device="kiosk-1",
                     site="site-1")
    h, ims = sample.make_case(75, site="site-4", device="kiosk-4")
    store.save_case(h, ims)
    q = client.get("/quarantine").get_data(as_text=True)
    assert "image 0 sha256 mismatch" in q
    d = client.get("/devices").get_data(as_text=True)
    assert "kiosk-4" in d and "site-4" in d
    assert client.get("/healthz").get_json() == {"ok": True, "cases": 1}


def test_pagination(client, store):
    for i in range(55):
        h, ims = sample.make_case(100 + i, images=[sample.make_jpeg(1, 32, 24)] if i else None)
        store.save_case(h, ims)
    first = client.get("/cases").get_data(as_text=True)
    second = client.get("/cases?page=2").get_data(as_text=True)
    assert "page 1 of 2" in first and "next" in first
    assert second.count('data-referral-key=') == 5


def test_app_from_config_file(tmp_path, monkeypatch):
    cfg = tmp_path / "centre.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path}/d/c.db"\nimages_dir = "{tmp_path}/d/img"\n'
                   f'[web]\nsecret_key_file = "{tmp_path}/d/secret"\n')
    monkeypatch.setenv("DERMKIOSK_CENTRE_CONFIG", str(cfg))
    app = create_app()
    assert app.config["DATABASE"] == f"{tmp_path}/d/c.db"
    assert app.config["SECRET_KEY"] == (tmp_path / "d" / "secret").read_text().strip()
    assert isinstance(CentreConfig(), CentreConfig)
    assert logged_in(app).get("/cases").status_code == 200


def test_serve_command_binds_loopback_and_stops_on_sigterm(tmp_path):
    import signal
    import time
    import urllib.request

    from tests.broker import free_port

    port = free_port()
    cfg = tmp_path / "centre.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path}/c.db"\nimages_dir = "{tmp_path}/images"\n'
                   f'[web]\nport = {port}\nsecret_key_file = "{tmp_path}/secret"\n')
    proc = subprocess.Popen([sys.executable, "-m", "dashboard", "serve", "--config", str(cfg)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == f"dashboard: http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200 and b'"cases":0' in r.read().replace(b" ", b"")
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_every_centre_example_config_validates():
    """Each centre example in firmware_config/ loads with the real pydantic model (no stale field)."""
    from dashboard.config import load_config

    files = sorted((ROOT / "firmware_config").glob("centre.*.toml"))
    assert {f.name for f in files} >= {"centre.demo.toml", "centre.server.toml"}
    for f in files:
        cfg = load_config(f)
        assert cfg.broker.url
    server = load_config(ROOT / "firmware_config" / "centre.server.toml")
    assert server.broker.url.startswith("mqtts://") and server.web.tls and server.web.host == "127.0.0.1"


def test_ingest_instances_share_the_store_with_their_own_identity(tmp_path):
    """Process 1 is the file's config; process N has client id <id>-N and certificate files <stem>-N.<ext>."""
    from dashboard.config import MAX_INGEST_INSTANCES, ingest_instance

    path = tmp_path / "c.toml"
    path.write_text('[broker]\nurl = "mqtts://broker:8883"\nclient_id = "ingest"\nca_file = "/etc/dk/ca.crt"\n'
                    'cert_file = "/etc/dk/ingest.crt"\nkey_file = "/etc/dk/ingest.key"\n'
                    f'[storage]\ndatabase = "{tmp_path}/c.db"\n')
    config = load_config(path)
    assert ingest_instance(config, 1) is config
    two = ingest_instance(config, 2)
    assert (two.broker.client_id, two.broker.cert_file, two.broker.key_file, two.broker.ca_file) == \
        ("ingest-2", Path("/etc/dk/ingest-2.crt"), Path("/etc/dk/ingest-2.key"), Path("/etc/dk/ca.crt"))
    assert (two.storage, two.broker.share_group, two.broker.url) == \
        (config.storage, config.broker.share_group, config.broker.url)
    for bad in (0, MAX_INGEST_INSTANCES + 1):
        with pytest.raises(ValueError, match="instance"):
            ingest_instance(config, bad)
    r = subprocess.run([sys.executable, "-m", "dashboard", "ingest", "--config", str(path), "--instance", "5"],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--instance" in r.stderr


def test_the_broker_rules_grant_every_ingest_identity_the_same_topics():
    """dashboard.brokerctl: every ingest process name is a client of the broker's ingest role."""
    from dashboard.brokerctl import config
    from dashboard.pki import INGEST_NAMES

    rules = config({})
    roles = {c["username"]: [r["rolename"] for r in c["roles"]] for c in rules["clients"]}
    assert all(roles[name] == ["ingest"] for name in INGEST_NAMES)
    ingest = next(r for r in rules["roles"] if r["rolename"] == "ingest")
    assert {"acltype": "subscribePattern", "topic": "$share/ingest/dermkiosk/v1/+/+/case", "priority": 0,
            "allow": True} in ingest["acls"]
