"""HTTP hardening of the kiosk page: the same headers as the centre's dashboard (dashboard/security.py).

The kiosk must not import the dashboard (the two sides share only ``wire/``), so
the policy is restated here and a test compares the two pages' headers:

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

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _headers(resp):
    h = resp.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "no-referrer")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
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
