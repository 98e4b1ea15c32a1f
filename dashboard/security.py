"""HTTP hardening of the dashboard: CSRF on every form, secure headers, session cookie flags.

* CSRF: Flask-WTF's :class:`CSRFProtect` checks every POST/PUT/PATCH/DELETE
  (token in the form field ``csrf_token`` or the ``X-CSRFToken`` header); a
  missing or wrong token answers 400.
* Headers on every response: a same-origin-only Content-Security-Policy with no
  inline script or style, ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``,
  ``nosniff``, ``Referrer-Policy: no-referrer``, a Permissions-Policy that
  turns off camera/microphone/geolocation, HSTS when served over TLS.
* ``Cache-Control: no-store`` on every HTML page and JSON answer (pages carry patient
  data); images set their own private caching.
* Cookies: HttpOnly, SameSite=Lax, Secure when ``TLS`` is configured.
"""

from __future__ import annotations

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from wire.webheaders import CSP, set_security_headers  # noqa: F401 (CSP: re-exported for the tests)

csrf = CSRFProtect()


def _headers(resp):
    h = resp.headers
    set_security_headers(h)
    if request.is_secure or _tls():
        h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if resp.mimetype in ("text/html", "application/json"):
        h["Cache-Control"] = "no-store"
        h["Pragma"] = "no-cache"
    return resp


def _tls() -> bool:
    from flask import current_app

    return bool(current_app.config.get("TLS"))


def _csrf_error(exc: CSRFError):
    return render_template("error.html", code=400, message=f"The form was refused: {exc.description} "
                           "Reload the page and try again."), 400


MESSAGES = {403: "Your role does not give access to this page. The attempt has been recorded.",
            404: "There is no such page, case or image.",
            405: "This address does not take that kind of request."}


def _http_error(exc):
    from flask import jsonify

    from .auth import wants_json

    code = getattr(exc, "code", 500) or 500
    if wants_json():
        return jsonify(error=MESSAGES.get(code, "error")), code
    return render_template("error.html", code=code, message=MESSAGES.get(code, "Something went wrong.")), code


def init_app(app: Flask) -> None:
    """Install CSRF protection, the headers and the cookie flags on ``app``."""
    tls = bool(app.config.get("TLS"))
    app.config.update(
        SESSION_COOKIE_NAME="dermkiosk_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=tls,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=tls,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session, which has its own limits
        # Pages send Referrer-Policy: no-referrer, so browsers post forms without a Referer: the
        # per-session token (and the SameSite=Lax cookie) is the CSRF defence, not a Referer check.
        WTF_CSRF_SSL_STRICT=False,
    )
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", app.config["SESSION_LIFETIME_S"])
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    csrf.init_app(app)
    app.register_error_handler(CSRFError, _csrf_error)
    for code in MESSAGES:
        app.register_error_handler(code, _http_error)
    app.after_request(_headers)
