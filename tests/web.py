"""Shared pieces of the browser tests: Debian's Chromium driven by Playwright, and a Flask app served
on a free loopback port (werkzeug in a thread)."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
#: Flags for a root, headless, offline machine (no sandbox, no background network traffic).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def playwright_or_skip():
    """The ``playwright.sync_api`` module; skips the calling test module where it or Chromium is missing."""
    api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)", allow_module_level=True)
    return api


def log_in(page, url: str, username: str, password: str) -> None:
    """Open ``url`` without a session, expect the log-in page, and log in (the caller waits for where it lands)."""
    page.goto(url)
    page.wait_for_url("**/login**")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")


def launch(p):
    """Launch Debian's Chromium headless from a ``sync_playwright()`` context."""
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def chromium():
    """Debian's Chromium, headless, closed afterwards (skips where Playwright or Chromium is missing)."""
    api = playwright_or_skip()
    with api.sync_playwright() as p:
        browser = launch(p)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def serve(app):
    """Serve a WSGI app on 127.0.0.1 at a free port; yields its base URL, stops it afterwards."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
