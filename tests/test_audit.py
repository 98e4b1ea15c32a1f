"""The audit log: every case view, image view, decision, log-in, log-out, denial and user change is
written (who, what, when, from where); SQLite refuses UPDATE and DELETE; the hash chain shows tampering;
admins read it newest first with filters, nobody else can."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from dashboard import audit, create_app, sample
from dashboard.store import Store
from tests.dashauth import csrf_token, logged_in, login


@pytest.fixture
def app(tmp_path):
    return create_app({"DATABASE": str(tmp_path / "c.db"), "IMAGES_DIR": str(tmp_path / "images")})


@pytest.fixture
def case(tmp_path):
    s = Store(tmp_path / "c.db", tmp_path / "images")
    header, images = sample.make_case(900, n_images=2)
    s.save_case(header, images)
    s.close()
    return header


def _rows(tmp_path):
    conn = sqlite3.connect(tmp_path / "c.db")
    cols = ("id", "at", "actor", "role", "action", "target", "detail", "remote_addr")
    return [dict(zip(cols, r)) for r in conn.execute(f"SELECT {', '.join(cols)} FROM audit_log ORDER BY id")]


def test_every_sensitive_action_is_recorded(app, case, tmp_path):
    before = datetime.now(timezone.utc)
    derm = logged_in(app, "dr.a", "dermatologist")
    derm.environ_base["REMOTE_ADDR"] = "10.2.3.4"
    cid = str(case.case_id)
    assert derm.get(f"/cases/{cid}").status_code == 200
    for im in case.images:
        assert derm.get(f"/images/{im.sha256}.jpg").status_code == 200
    page = derm.get(f"/cases/{cid}").get_data(as_text=True)
    assert derm.post(f"/cases/{cid}/decision", data={"csrf_token": csrf_token(page), "outcome": "routine",
                                                     "note": "see in clinic"}).status_code == 302
    assert derm.get("/admin/audit").status_code == 403          # denied, and recorded
    derm.post("/logout", data={"csrf_token": csrf_token(page)})
    login(app.test_client(), "dr.a", "a wrong password!")      # failure recorded with the typed name
    admin = logged_in(app, "boss", "admin")
    token = csrf_token(admin.get("/admin/users").get_data(as_text=True))
    admin.post("/admin/users", data={"csrf_token": token, "username": "dr.b", "role": "dermatologist",
                                     "password": "a long enough password"})

    rows = _rows(tmp_path)
    seen = [(r["actor"], r["action"], r["target"]) for r in rows]
    assert ("dr.a", "login.ok", "") in seen
    assert seen.count(("dr.a", "case.view", cid)) == 2
    for im in case.images:
        assert ("dr.a", "image.view", im.sha256) in seen
    assert ("dr.a", "decision.record", cid) in seen
    assert ("dr.a", "access.denied", "/admin/audit") in seen
    assert ("dr.a", "logout", "") in seen
    assert ("dr.a", "login.failed", "") in seen
    assert ("boss", "login.ok", "") in seen and ("boss", "user.create", "dr.b") in seen
    decision = next(r for r in rows if r["action"] == "decision.record")
    assert decision["remote_addr"] == "10.2.3.4" and decision["role"] == "dermatologist"
    assert "routine" in decision["detail"]
    image = next(r for r in rows if r["action"] == "image.view")
    assert cid in image["detail"]
    for r in rows:
        at = datetime.fromisoformat(r["at"])
        assert at.utcoffset().total_seconds() == 0 and before <= at <= datetime.now(timezone.utc)
    # no referral reference or lesion id anywhere in the log
    blob = repr(rows)
    assert case.referral_ref not in blob and case.lesion_id not in blob
    assert audit.verify_chain(sqlite3.connect(tmp_path / "c.db")) is None


def test_update_and_delete_are_refused_by_sqlite(app, tmp_path):
    logged_in(app, "dr.a", "dermatologist")
    conn = sqlite3.connect(tmp_path / "c.db")
    n = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    assert n >= 1
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'someone-else'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log")
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == n
    assert {r[0] for r in conn.execute("SELECT actor FROM audit_log")} == {"dr.a"}


def test_tampering_around_the_triggers_breaks_the_chain(app, tmp_path):
    derm = logged_in(app, "dr.a", "dermatologist")
    for _ in range(3):
        derm.get("/cases")
    conn = sqlite3.connect(tmp_path / "c.db")
    assert audit.verify_chain(conn) is None
    conn.execute("DROP TRIGGER audit_log_no_update")
    victim = conn.execute("SELECT id FROM audit_log WHERE action = 'worklist.view' ORDER BY id LIMIT 1").fetchone()[0]
    conn.execute("UPDATE audit_log SET actor = 'nobody' WHERE id = ?", (victim,))
    conn.commit()
    assert audit.verify_chain(conn) == victim
    html = logged_in(app, "boss", "admin").get("/admin/audit").get_data(as_text=True)
    assert f"hash chain is broken at entry {victim}" in html


def test_admin_reads_the_log_newest_first_with_filters(app, case, tmp_path):
    derm = logged_in(app, "dr.a", "dermatologist")
    derm.get(f"/cases/{case.case_id}")
    logged_in(app, "dr.b", "dermatologist").get(f"/cases/{case.case_id}")
    admin = logged_in(app, "boss", "admin")
    html = admin.get("/admin/audit").get_data(as_text=True)
    assert "Hash chain verified" in html
    ids = [int(x) for x in __import__("re").findall(r'<td class="num tiny muted">(\d+)</td>', html)]
    assert ids == sorted(ids, reverse=True) and len(ids) == 7  # 3 log-ins, 2 case views, dr.a's claim, dr.b's refusal
    only_b = admin.get("/admin/audit?actor=dr.b").get_data(as_text=True)
    assert "dr.b" in only_b and ">dr.a<" not in only_b
    views = admin.get("/admin/audit?action=case.view").get_data(as_text=True)
    assert views.count('class="audit-row action-case-view"') == 2 and "action-login-ok" not in views
    logins = admin.get("/admin/audit?action=login").get_data(as_text=True)
    assert "action-login-ok" in logins and "action-case-view" not in logins
    assert logged_in(app, "it.x", "it").get("/admin/audit").status_code == 403


def test_append_outside_a_request(tmp_path):
    s = Store(tmp_path / "c.db", tmp_path / "images")
    audit.ensure_schema(s.conn)
    first = audit.append(s.conn, actor=audit.cli_actor(), action="device.revoke", target="kiosk-7",
                         detail="stolen")
    second = audit.append(s.conn, actor="cli:x", action="device.issue", target="kiosk-8")
    assert second == first + 1
    rows = audit.entries(s.conn, action="device")
    assert [r["target"] for r in rows] == ["kiosk-8", "kiosk-7"]
    assert audit.verify_chain(s.conn) is None
    s.close()
