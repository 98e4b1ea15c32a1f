"""Test helpers for the dashboard's log-in: make users in a centre database, log a test client in."""

from __future__ import annotations

import re

from dashboard import ensure_schema, users
from dashboard.store import Store

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_user(database, images_dir, username: str, role: str, password: str = PASSWORD) -> users.User:
    """Create a user in the centre database at ``database`` (schema created if needed)."""
    store = Store(database, images_dir)
    try:
        ensure_schema(store.conn)
        return users.create_user(store.conn, username, password, role)
    finally:
        store.close()


def csrf_token(html: str) -> str:
    """The CSRF token in a page's first form."""
    m = _CSRF.search(html)
    assert m, "no csrf_token in the page"
    return m.group(1)


def login(client, username: str, password: str = PASSWORD, next_: str = ""):
    """Log ``client`` in through the real form (CSRF token included); return the POST's response."""
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token,
                                       "next": next_})


def logged_in(app, username: str, role: str, password: str = PASSWORD):
    """A test client of ``app`` logged in as a new user with ``role``."""
    make_user(app.config["DATABASE"], app.config["IMAGES_DIR"], username, role, password)
    client = app.test_client()
    r = login(client, username, password)
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return client
