"""HTTP hardening of the kiosk page: the same headers as the centre's dashboard (dashboard/security.py).

The kiosk must not import the dashboard (the two sides share only ``wire/``), so both take
the policy from ``wire.webheaders``, and a test compares the two pages' headers:

* a same-origin-only Content-Security-Policy with no inline script or style,
  ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``;
* ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
  ``Cross-Origin-Opener-Policy: same-origin`` and a Permissions-Policy that turns
  off the page's access to camera, microphone and geolocation (the camera is
  read by the service, never by the browser);
* ``Cache-Control: no-store`` on every response (pages carry patient data, and
  the preview and shots are photographs of a patient's skin);
* the session cookie HttpOnly and SameSite=Lax.
"""

from __future__ import annotations

from flask import Flask

from wire.webheaders import CSP, set_security_headers  # noqa: F401 (CSP: re-exported for the tests)


def _headers(resp):
    h = resp.headers
    set_security_headers(h)
    h["Cache-Control"] = "no-store"
    h["Pragma"] = "no-cache"
    return resp


def init_app(app: Flask) -> None:
    """Install the security headers and cookie flags on the kiosk page's ``app``."""
    app.config.update(
        SESSION_COOKIE_NAME="dermkiosk_kiosk",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,   # the token lives as long as the session (signed out when idle)
        WTF_CSRF_SSL_STRICT=False,  # no-referrer: forms are posted without a Referer
    )
    app.after_request(_headers)
