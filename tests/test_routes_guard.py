"""Every route in the dashboard's URL map is refused without a session, with the wrong role, and
when a form is posted without its CSRF token. The walk is over ``app.url_map``, so a route added
later (fleet pages, /metrics) is covered without editing this file; only the public list is fixed.
"""

from __future__ import annotations

import re

import pytest

from dashboard import create_app, sample, users
from dashboard.store import Store
from tests.dashauth import csrf_token, logged_in

#: The only views reachable without a session. Adding one means adding it here, on purpose.
PUBLIC = {"static", "auth.login", "dashboard.healthz", "metrics.metrics", "fleet.metrics", "dashboard.metrics"}
METRICS_TOKEN = "m" * 40


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One app over a database with a case, one logged-in client per role, and URL arguments."""
    tmp = tmp_path_factory.mktemp("routes")
    store = Store(tmp / "c.db", tmp / "images")
    header, images = sample.make_case(500, n_images=1)
    store.save_case(header, images)
    store.close()
    app = create_app({"DATABASE": str(tmp / "c.db"), "IMAGES_DIR": str(tmp / "images"),
                      "METRICS_TOKEN": METRICS_TOKEN})
    clients = {role: logged_in(app, f"walk-{role}", role) for role in users.ROLES}
    logged_in(app, "walk-target", "dermatologist")  # a user the admin routes act on
    with app.app_context():
        from dashboard.db import get_store

        uid = users.get_user(get_store().conn, username="walk-target").id
    values = {"case_id": str(header.case_id), "sha256": header.images[0].sha256, "user_id": uid,
              "filename": "dashboard.css", "device": "kiosk-1", "device_id": "kiosk-1", "site": "site-1",
              "staff_id": "ph.walk", "qid": 1, "key": str(header.case_id),
              "kind": "gp", "name": "summary"}
    return app, clients, values


def _routes(app):
    """(endpoint, method, url) for every rule and method, with arguments filled in."""
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule.endpoint, method, rule))
    return out


def _url(app, rule, values):
    missing = [a for a in rule.arguments if a not in values]
    assert not missing, f"add a sample value for {missing} of {rule.rule} to this test"
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **{a: values[a] for a in rule.arguments})


def _public(app, endpoint):
    return endpoint == "static" or getattr(app.view_functions[endpoint], "public", False)


def test_public_views_are_only_the_listed_ones(world):
    app, _, _ = world
    public = {e for e in app.view_functions if _public(app, e)}
    assert public <= PUBLIC, f"new public views {public - PUBLIC}: a session must be required"
    assert {"static", "auth.login", "dashboard.healthz"} <= public


def test_every_protected_view_names_its_roles(world):
    app, _, _ = world
    for endpoint, view in app.view_functions.items():
        if not _public(app, endpoint):
            roles = getattr(view, "roles", None)
            assert roles and roles <= set(users.ROLES), f"{endpoint} has no role_required"


def test_without_a_session_every_route_is_refused(world):
    app, _, values = world
    anon = app.test_client()
    token = csrf_token(anon.get("/login").get_data(as_text=True))
    checked = 0
    for endpoint, method, rule in _routes(app):
        if _public(app, endpoint):
            continue
        url = _url(app, rule, values)
        for data in ({}, {"csrf_token": token}):  # refused with or without a valid CSRF token
            r = anon.open(url, method=method, data=data if method != "GET" else None)
            assert r.status_code == 302 and r.headers["Location"].startswith("/login"), \
                f"{method} {url} without a session: {r.status_code}"
            j = anon.open(url, method=method, headers={"Accept": "application/json"},
                          data=data if method != "GET" else None)
            assert j.status_code == 401 and j.get_json() == {"error": "login required"}, f"{method} {url} (JSON)"
            checked += 1
    assert checked >= 2 * 15


def test_the_wrong_role_gets_403_on_every_route(world):
    app, clients, values = world
    checked = 0
    for endpoint, method, rule in _routes(app):
        if _public(app, endpoint):
            continue
        allowed = app.view_functions[endpoint].roles
        url = _url(app, rule, values)
        for role, client in clients.items():
            if role in allowed:
                continue
            token = csrf_token(client.get("/account").get_data(as_text=True))
            r = client.open(url, method=method, data={"csrf_token": token} if method != "GET" else None)
            assert r.status_code == 403, f"{role} {method} {url}: {r.status_code}"
            checked += 1
    # it and admin never see a case, an image or a decision form
    for role in ("it", "admin"):
        for path in ("/cases", f"/cases/{values['case_id']}", f"/images/{values['sha256']}.jpg"):
            assert clients[role].get(path).status_code == 403, (role, path)
    denied = clients["dermatologist"].get("/admin/users")
    assert denied.status_code == 403 and "does not give access" in denied.get_data(as_text=True)
    assert clients["it"].get("/cases", headers={"Accept": "application/json"}).status_code == 403
    assert checked >= 20


def test_posting_without_a_csrf_token_is_400_on_every_form(world):
    app, clients, values = world
    posts = 0
    for endpoint, method, rule in _routes(app):
        if method == "GET":
            continue
        url = _url(app, rule, values)
        view = app.view_functions[endpoint]
        roles = getattr(view, "roles", None) or users.ROLES
        client = clients[sorted(roles)[0]] if not _public(app, endpoint) else app.test_client()
        for data in ({}, {"csrf_token": "forged"}):
            r = client.open(url, method=method, data=data)
            assert r.status_code == 400, f"{method} {url} without a CSRF token: {r.status_code}"
        posts += 1
    assert posts >= 7  # log-in, log-out, decision, five user-admin forms (some share a URL)


def test_every_form_in_every_page_carries_a_csrf_token(world):
    app, clients, values = world
    for endpoint, method, rule in _routes(app):
        if method != "GET" or "<" in rule.rule and endpoint not in ("dashboard.case_page",):
            continue
        url = _url(app, rule, values)
        for client in [app.test_client()] + list(clients.values()):
            r = client.get(url)
            if r.status_code != 200 or r.mimetype != "text/html":
                continue
            html = r.get_data(as_text=True)
            for form in re.findall(r"<form\b.*?</form>", html, re.S):
                if 'method="post"' in form:
                    assert 'name="csrf_token"' in form, f"{url}: a POST form without a CSRF token"


def test_headers_on_every_response(world):
    app, clients, values = world
    for endpoint, method, rule in _routes(app):
        if method != "GET":
            continue
        url = _url(app, rule, values)
        for client in [app.test_client(), clients["dermatologist"], clients["admin"]]:
            r = client.get(url)
            h = r.headers
            assert "default-src 'self'" in h["Content-Security-Policy"], url
            assert "unsafe-inline" not in h["Content-Security-Policy"], url
            assert "frame-ancestors 'none'" in h["Content-Security-Policy"], url
            assert h["X-Frame-Options"] == "DENY" and h["X-Content-Type-Options"] == "nosniff", url
            assert h["Referrer-Policy"] == "no-referrer", url
            assert "Strict-Transport-Security" not in h  # plain HTTP, TLS not configured
            if r.mimetype in ("text/html", "application/json", "image/jpeg", "text/csv"):
                assert h["Cache-Control"] == "no-store", url  # patient data is never cached


def test_public_views_carry_no_patient_data(world):
    app, _, values = world
    anon = app.test_client()
    with app.app_context():
        from dashboard.db import get_store

        refs = [r[0] for r in get_store().conn.execute("SELECT referral_ref FROM cases")]
    for path in ("/login", "/healthz"):
        body = anon.get(path).get_data(as_text=True)
        assert not any(ref in body for ref in refs), path
        assert values["case_id"] not in body and values["sha256"] not in body, path


def test_metrics_needs_its_own_token_when_present(world):
    app, clients, _ = world
    rules = [r for r in app.url_map.iter_rules() if r.rule == "/metrics"]
    if not rules:
        pytest.skip("no /metrics endpoint in this build")
    anon = app.test_client()
    assert anon.get("/metrics").status_code in (401, 403)
    assert anon.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40}).status_code in (401, 403)
    # a dashboard session is not a metrics credential
    assert clients["admin"].get("/metrics").status_code in (401, 403)
    ok = anon.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert ok.status_code == 200
