"""Log-in: password hashing, lock-out per account and per address (surviving a restart), server-side
sessions (log-out, deactivation, password change, idle time), cookie flags, redirects, the CLI."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dashboard import create_app, users
from dashboard.auth import GENERIC_FAILURE
from tests.dashauth import PASSWORD, csrf_token, logged_in, login, make_user

ROOT = Path(__file__).resolve().parents[1]


def _app(tmp_path, **extra):
    return create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"), **extra})


def _db(tmp_path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "c.db")


def test_password_is_stored_as_an_scrypt_hash(tmp_path):
    make_user(tmp_path / "c.db", tmp_path / "images", "dr.a", "dermatologist")
    make_user(tmp_path / "c.db", tmp_path / "images", "dr.b", "dermatologist")  # same password
    rows = _db(tmp_path).execute("SELECT password_hash FROM users ORDER BY username").fetchall()
    a, b = rows[0][0], rows[1][0]
    assert a.startswith("scrypt:32768:8:1$") and PASSWORD not in a
    assert a != b  # random salt
    raw = (tmp_path / "c.db").read_bytes() + (tmp_path / "c.db-wal").read_bytes() \
        if (tmp_path / "c.db-wal").exists() else (tmp_path / "c.db").read_bytes()
    assert PASSWORD.encode() not in raw


def test_weak_or_bad_accounts_refused(tmp_path):
    make_user(tmp_path / "c.db", tmp_path / "images", "dr.a", "dermatologist")
    for name, pw, role, words in [("dr.b", "short", "dermatologist", "12 characters"),
                                  ("Dr A", PASSWORD, "dermatologist", "user name"),
                                  ("dr.c", PASSWORD, "root", "role"),
                                  ("DR.A", PASSWORD, "it", "taken")]:
        with pytest.raises(users.UserError, match=words):
            make_user(tmp_path / "c.db", tmp_path / "images", name, role, pw)


def test_login_success_and_generic_failure(tmp_path):
    app = _app(tmp_path)
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "dr.a", "dermatologist")
    c = app.test_client()
    r = login(c, "dr.a", "wrong password here")
    assert r.status_code == 401 and GENERIC_FAILURE in r.get_data(as_text=True)
    r2 = login(c, "nobody", "wrong password here")
    assert r2.status_code == 401 and GENERIC_FAILURE in r2.get_data(as_text=True)  # same answer, unknown user
    r = login(c, "DR.A", PASSWORD)  # user names are case-insensitive
    assert r.status_code == 302 and r.headers["Location"] == "/cases"
    assert c.get("/cases").status_code == 200
    assert c.get("/login").headers["Location"] == "/cases"  # already logged in


def test_account_locks_after_five_failures_and_survives_a_restart(tmp_path):
    app = _app(tmp_path, LOGIN_LOCKOUT_S=2)
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "dr.a", "dermatologist")
    c = app.test_client()
    for _ in range(5):
        assert login(c, "dr.a", "not the password").status_code == 401
    row = _db(tmp_path).execute("SELECT locked_until FROM users WHERE username='dr.a'").fetchone()
    assert row[0] and datetime.fromisoformat(row[0]) > datetime.now(timezone.utc)
    assert login(c, "dr.a", PASSWORD).status_code == 401  # right password, but locked
    # a restarted dashboard (new app, same database) keeps the lock
    app2 = _app(tmp_path, LOGIN_LOCKOUT_S=2)
    c2 = app2.test_client()
    r = login(c2, "dr.a", PASSWORD)
    assert r.status_code == 401 and GENERIC_FAILURE in r.get_data(as_text=True)
    reasons = [r[0] for r in _db(tmp_path).execute(
        "SELECT detail FROM audit_log WHERE action='login.failed' ORDER BY id")]
    assert reasons == ["bad-password"] * 5 + ["account-locked"] * 2
    time.sleep(2.1)  # the lock-out ends by itself
    assert login(c2, "dr.a", PASSWORD).status_code == 302


def test_four_failures_then_success_resets_the_count(tmp_path):
    app = _app(tmp_path)
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "dr.a", "dermatologist")
    c = app.test_client()
    for _ in range(4):
        login(c, "dr.a", "nope nope nope")
    assert login(c, "dr.a", PASSWORD).status_code == 302
    assert _db(tmp_path).execute("SELECT failed_count FROM users").fetchone()[0] == 0


def test_admin_unlocks_a_locked_account(tmp_path):
    app = _app(tmp_path)
    admin = logged_in(app, "boss", "admin")
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "dr.a", "dermatologist")
    c = app.test_client()
    for _ in range(5):
        login(c, "dr.a", "wrong wrong wrong")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "locked until" in page
    uid = _db(tmp_path).execute("SELECT id FROM users WHERE username='dr.a'").fetchone()[0]
    r = admin.post(f"/admin/users/{uid}/unlock", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 302
    assert login(c, "dr.a", PASSWORD).status_code == 302


def test_address_throttle_blocks_guessing_across_user_names(tmp_path):
    app = _app(tmp_path, LOGIN_ADDR_MAX_FAILURES=3)
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "dr.a", "dermatologist")
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "10.9.9.9"
    for name in ("alice", "bob", "carol"):
        login(attacker, name, "guess guess guess")
    r = login(attacker, "dr.a", PASSWORD)  # even the right password, from that address
    assert r.status_code == 401
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.1.1.1"
    assert login(other, "dr.a", PASSWORD).status_code == 302  # the account itself is not locked
    rows = _db(tmp_path).execute("SELECT actor, detail, remote_addr FROM audit_log WHERE action='login.failed' "
                                 "ORDER BY id").fetchall()
    assert rows[-1] == ("dr.a", "address-locked", "10.9.9.9")
    assert all(r[2] == "10.9.9.9" for r in rows)


def test_logout_ends_the_session_server_side(tmp_path):
    app = _app(tmp_path)
    c = logged_in(app, "dr.a", "dermatologist")
    stolen = c.get_cookie("dermkiosk_session").value
    r = c.post("/logout", data={"csrf_token": csrf_token(c.get("/account").get_data(as_text=True))})
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert c.get("/cases").status_code == 302
    replay = app.test_client()
    replay.set_cookie("dermkiosk_session", stolen)
    assert replay.get("/cases").status_code == 302  # a copied cookie dies with the log-out


def test_deactivation_and_password_change_end_sessions(tmp_path):
    app = _app(tmp_path)
    admin = logged_in(app, "boss", "admin")
    derm = logged_in(app, "dr.a", "dermatologist")
    derm2 = app.test_client()
    login(derm2, "dr.a")
    uid = _db(tmp_path).execute("SELECT id FROM users WHERE username='dr.a'").fetchone()[0]
    token = csrf_token(admin.get("/admin/users").get_data(as_text=True))
    new_pw = "a different long password"
    assert admin.post(f"/admin/users/{uid}/password", data={"csrf_token": token, "password": new_pw}).status_code == 302
    assert derm.get("/cases").status_code == 302 and derm2.get("/cases").status_code == 302
    assert login(derm, "dr.a", PASSWORD).status_code == 401
    assert login(derm, "dr.a", new_pw).status_code == 302 and derm.get("/cases").status_code == 200
    assert admin.post(f"/admin/users/{uid}/active", data={"csrf_token": token, "active": "0"}).status_code == 302
    assert derm.get("/cases").status_code == 302
    assert login(derm, "dr.a", new_pw).status_code == 401  # deactivated: refused


def test_last_admin_cannot_be_deactivated_or_demoted(tmp_path):
    app = _app(tmp_path)
    admin = logged_in(app, "boss", "admin")
    uid = _db(tmp_path).execute("SELECT id FROM users WHERE username='boss'").fetchone()[0]
    token = csrf_token(admin.get("/admin/users").get_data(as_text=True))
    admin.post(f"/admin/users/{uid}/active", data={"csrf_token": token, "active": "0"})
    admin.post(f"/admin/users/{uid}/role", data={"csrf_token": token, "role": "it"})
    assert _db(tmp_path).execute("SELECT active, role FROM users WHERE id=?", (uid,)).fetchone() == (1, "admin")
    assert admin.get("/admin/users").status_code == 200


def test_admin_creates_a_user_who_can_log_in(tmp_path):
    app = _app(tmp_path)
    admin = logged_in(app, "boss", "admin")
    token = csrf_token(admin.get("/admin/users").get_data(as_text=True))
    r = admin.post("/admin/users", data={"csrf_token": token, "username": "it.one", "role": "it",
                                         "password": "short"})
    assert r.status_code == 422 and "at least 12 characters" in r.get_data(as_text=True)
    r = admin.post("/admin/users", data={"csrf_token": token, "username": "it.one", "role": "it",
                                         "password": PASSWORD})
    assert r.status_code == 302
    c = app.test_client()
    assert login(c, "it.one").status_code == 302
    assert c.get("/cases").status_code == 403 and c.get("/devices").status_code == 200


def test_idle_session_expires(tmp_path):
    app = _app(tmp_path, SESSION_IDLE_S=1)
    c = logged_in(app, "dr.a", "dermatologist")
    assert c.get("/cases").status_code == 200
    time.sleep(1.3)
    assert c.get("/cases").status_code == 302


def test_cookie_flags_and_hsts(tmp_path):
    app = _app(tmp_path)
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "dr.a", "dermatologist")
    c = app.test_client()
    r = login(c, "dr.a")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "Strict-Transport-Security" not in r.headers
    tls_app = create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images"), "TLS": True})
    c = tls_app.test_client()
    r = c.get("/login", base_url="https://centre.example")
    assert r.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    token = csrf_token(r.get_data(as_text=True))
    # no Referer: the pages' Referrer-Policy is no-referrer, so a browser sends none over HTTPS either
    r = c.post("/login", base_url="https://centre.example",
               data={"username": "dr.a", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302
    assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]


def test_next_is_followed_only_within_the_site(tmp_path):
    app = _app(tmp_path)
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "dr.a", "dermatologist")
    c = app.test_client()
    r = c.get("/cases?show=all")
    assert r.headers["Location"] == "/login?next=/cases?show%3Dall"
    assert login(c, "dr.a", next_="/cases?show=all").headers["Location"] == "/cases?show=all"
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        c2 = app.test_client()
        assert login(c2, "dr.a", next_=evil).headers["Location"] == "/cases", evil


def test_role_homes(tmp_path):
    app = _app(tmp_path)
    assert logged_in(app, "adm", "admin").get("/").headers["Location"] == "/admin/users"
    it_home = logged_in(app, "itx", "it").get("/").headers["Location"]
    assert it_home in ("/fleet", "/devices")


def _cli(tmp_path, *args, stdin=""):
    cfg = tmp_path / "centre.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path}/c.db"\nimages_dir = "{tmp_path}/images"\n'
                   f'[web]\nsecret_key_file = "{tmp_path}/secret"\n')
    return subprocess.run([sys.executable, "-m", "dashboard", *args, "--config", str(cfg)], cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_create_admin_and_create_user_commands(tmp_path):
    r = _cli(tmp_path, "create-admin", "--username", "root.admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert "root.admin: created, role admin" in r.stdout and PASSWORD not in r.stdout + r.stderr
    r = _cli(tmp_path, "create-admin", "--username", "second", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.returncode == 1 and "administrator exists already" in r.stderr
    r = _cli(tmp_path, "create-user", "--username", "dr.demo", "--role", "dermatologist", "--password-stdin",
             stdin="short\n")
    assert r.returncode == 1 and "at least 12 characters" in r.stderr
    r = _cli(tmp_path, "create-user", "--username", "dr.demo", "--role", "dermatologist", "--password-stdin",
             stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    r = _cli(tmp_path, "create-user", "--username", "dr.demo", "--role", "dermatologist", "--password-stdin",
             stdin=PASSWORD + "\n")
    assert r.returncode == 1 and "taken" in r.stderr
    r = _cli(tmp_path, "create-user", "--username", "dr.demo", "--role", "dermatologist", "--password-stdin",
             "--update", stdin="another long password\n")
    assert r.returncode == 0, r.stderr
    app = _app(tmp_path)
    c = app.test_client()
    assert login(c, "dr.demo", "another long password").status_code == 302
    assert login(app.test_client(), "root.admin").headers["Location"] == "/admin/users"
    rows = _db(tmp_path).execute("SELECT actor, action, target FROM audit_log WHERE actor LIKE 'cli:%' ORDER BY id")
    assert [(a, t) for _, a, t in rows] == [("user.create", "root.admin"), ("user.create", "dr.demo"),
                                            ("user.password", "dr.demo")]


def test_behind_a_trusted_proxy_the_client_address_and_https_are_used(tmp_path):
    app = _app(tmp_path, TRUSTED_PROXIES=1)
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], "dr.a", "dermatologist")
    c = app.test_client()
    fwd = {"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https"}
    page = c.get("/login", headers=fwd)
    assert "Strict-Transport-Security" in page.headers
    r = c.post("/login", headers=fwd,
               data={"username": "dr.a", "password": "wrong password x", "csrf_token": csrf_token(page.get_data(as_text=True))})
    assert r.status_code == 401
    assert _db(tmp_path).execute("SELECT remote_addr FROM audit_log").fetchone() == ("192.0.2.7",)
    # without a trusted proxy the header is ignored (the audit keeps the socket's address)
    app2 = _app(tmp_path)
    c2 = app2.test_client()
    login(c2, "dr.a", "wrong again wrong")
    assert _db(tmp_path).execute("SELECT remote_addr FROM audit_log ORDER BY id DESC").fetchone() == ("127.0.0.1",)


def test_demo_log_ins_work(tmp_path):
    sys.path.insert(0, str(ROOT))
    import demo

    cfg = tmp_path / "centre.toml"
    cfg.write_text(f'[storage]\ndatabase = "{tmp_path}/c.db"\nimages_dir = "{tmp_path}/images"\n'
                   f'[web]\nsecret_key_file = "{tmp_path}/secret"\n')
    demo.ensure_demo_users(cfg)
    demo.ensure_demo_users(cfg)  # a second start re-sets them, no error
    app = _app(tmp_path)
    homes = {}
    for name, role in demo.DEMO_USERS:
        c = app.test_client()
        r = login(c, name, demo.DEMO_PASSWORD)
        assert r.status_code == 302, name
        homes[role] = r.headers["Location"]
    assert homes["dermatologist"] == "/cases" and homes["admin"] == "/admin/users"
    assert _db(tmp_path).execute("SELECT count(*) FROM users").fetchone()[0] == 3


def test_user_changes_own_password(tmp_path):
    app = _app(tmp_path)
    c = logged_in(app, "dr.a", "dermatologist")
    other = app.test_client()
    login(other, "dr.a")
    token = csrf_token(c.get("/account").get_data(as_text=True))
    new = "my new long passphrase"
    r = c.post("/account/password", data={"csrf_token": token, "current": "not it at all", "new": new, "again": new})
    assert r.status_code == 422 and "current password is not right" in r.get_data(as_text=True)
    assert _db(tmp_path).execute("SELECT failed_count FROM users").fetchone()[0] == 1  # counts toward lock-out
    r = c.post("/account/password", data={"csrf_token": token, "current": PASSWORD, "new": new, "again": new + "x"})
    assert r.status_code == 422 and "differ" in r.get_data(as_text=True)
    r = c.post("/account/password", data={"csrf_token": token, "current": PASSWORD, "new": new, "again": new})
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert c.get("/cases").status_code == 302 and other.get("/cases").status_code == 302  # all sessions ended
    assert login(app.test_client(), "dr.a", PASSWORD).status_code == 401
    assert login(app.test_client(), "dr.a", new).status_code == 302
    actions = [r[0] for r in _db(tmp_path).execute("SELECT action FROM audit_log WHERE action LIKE 'user.password%' ORDER BY id")]
    assert actions == ["user.password.failed", "user.password"]


def test_throttle_and_session_rows_are_pruned(tmp_path):
    make_user(tmp_path / "c.db", tmp_path / "images", "dr.a", "dermatologist")
    from dashboard.store import Store

    s = Store(tmp_path / "c.db", tmp_path / "images")
    conn = s.conn
    user = users.get_user(conn, username="dr.a")
    long_ago = datetime.now(timezone.utc) - timedelta(days=10)
    old_token = users.start_session(conn, user, "10.0.0.1", now=long_ago)
    users.authenticate(conn, "ghost", "x" * 12, "10.0.0.2", now=long_ago)
    assert conn.execute("SELECT count(*) FROM login_throttle").fetchone()[0] == 1
    users.authenticate(conn, "ghost", "x" * 12, "10.0.0.3")
    assert [r[0] for r in conn.execute("SELECT remote_addr FROM login_throttle")] == ["10.0.0.3"]
    users.start_session(conn, user, "10.0.0.1")
    assert conn.execute("SELECT count(*) FROM web_sessions").fetchone()[0] == 1
    assert users.load_session(conn, old_token, 3600, 3600) is None
    s.close()
