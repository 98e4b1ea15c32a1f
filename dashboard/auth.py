"""Log-in, log-out, sessions and roles for the dashboard (Flask-Login).

Default deny: every view needs a logged-in user whose role the view names with
:func:`role_required`; a view without it answers 403 to everyone (and is
caught by tests/test_routes_guard.py). Views that must be reachable without a
session say so with :func:`public` (the log-in page, ``/healthz``, static files;
``/metrics`` checks its own bearer token, ``METRICS_TOKEN``)::

    from dashboard.auth import role_required, public

    @bp.route("/fleet")
    @role_required("it", "admin")
    def fleet(): ...

Without a session a page redirects to the log-in page; a JSON or API request
(``Accept: application/json``, paths under ``/api/``) gets 401. The wrong role gets 403.

Sessions are server-side rows (:mod:`dashboard.users`): the signed cookie holds a
random token; log-out, deactivation and a password change end the session.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import (Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, session,
                   url_for)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from . import audit, users
from .db import get_store

bp = Blueprint("auth", __name__)
login_manager = LoginManager()

#: Where each role lands after log-in (first endpoint that exists).
HOME = {"dermatologist": ("dashboard.case_list",), "it": ("fleet.fleet", "fleet.index", "dashboard.devices"),
        "admin": ("admin.users_list",)}
GENERIC_FAILURE = "Log-in refused: wrong user name or password, or too many failed attempts. " \
                  "Try again later or ask an administrator."


class WebUser(UserMixin):
    """The logged-in user as Flask-Login sees it: a :class:`users.User` plus its session token."""

    def __init__(self, user: users.User, token: str):
        self.user = user
        self.token = token

    def get_id(self) -> str:
        """The session token (the user id is looked up from it server-side)."""
        return self.token

    @property
    def is_active(self) -> bool:
        """Whether the account may sign in (an admin can disable it)."""
        return self.user.active

    def __getattr__(self, name):
        return getattr(self.user, name)


def role_required(*roles: str):
    """Decorator: the view needs a logged-in user with one of ``roles`` (401/redirect without, 403 with another)."""
    unknown = set(roles) - set(users.ROLES)
    if not roles or unknown:
        raise ValueError(f"role_required: roles must be among {users.ROLES}, got {roles}")

    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                _deny()
            return view(*args, **kwargs)

        wrapped.roles = frozenset(roles)
        return wrapped

    return decorate


def public(view):
    """Decorator: the view is reachable without a session (it must carry no patient or fleet data)."""
    view.public = True
    return view


def _deny():
    audit.record("access.denied", request.path, f"role {current_user.role}")
    abort(403)


def wants_json() -> bool:
    """Whether the request is an API/JSON one (answered 401, not redirected, without a session)."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return request.path.startswith("/api/") or request.is_json or best == "application/json"


@login_manager.unauthorized_handler
def _unauthorized():
    if wants_json():
        return jsonify(error="login required"), 401
    nxt = request.full_path if request.method == "GET" else None
    return redirect(url_for("auth.login", next=nxt.rstrip("?") if nxt else None))


@login_manager.user_loader
def _load_user(token: str):
    cfg = current_app.config
    user = users.load_session(get_store().conn, token, cfg["SESSION_LIFETIME_S"], cfg["SESSION_IDLE_S"])
    return WebUser(user, token) if user else None


def _guard():
    """Before every request: default deny (public views and static files excepted)."""
    endpoint = request.endpoint
    if endpoint is None:
        return None  # 404 / 405: nothing to protect
    if endpoint == "static" or endpoint.endswith(".static"):
        return None
    view = current_app.view_functions.get(endpoint)
    if getattr(view, "public", False):
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    roles = getattr(view, "roles", None)
    if not roles:
        current_app.logger.error("view %s has neither role_required nor public: refused", endpoint)
        abort(403)
    if current_user.role not in roles:
        _deny()
    return None


def home_url(role: str) -> str:
    """The landing page for a role."""
    for endpoint in HOME.get(role, ()):
        if endpoint in current_app.view_functions:
            return url_for(endpoint)
    return url_for("auth.account")


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths are followed after log-in (no open redirect)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    """The log-in form; on success a new server-side session and the role's home page."""
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(home_url(current_user.role))
        return render_template("login.html", next=request.args.get("next", ""))
    cfg = current_app.config
    conn = get_store().conn
    username = request.form.get("username", "")[:128]
    password = request.form.get("password", "")
    addr = request.remote_addr or ""
    policy = users.Policy(cfg["LOGIN_MAX_FAILURES"], cfg["LOGIN_LOCKOUT_S"], cfg["LOGIN_ADDR_MAX_FAILURES"])
    result = users.authenticate(conn, username, password, addr, policy)
    if result.reason != "ok":
        audit.append(conn, actor=username.strip().lower() or "(blank)", action="login.failed",
                     detail=result.reason, remote_addr=addr)
        return render_template("login.html", error=GENERIC_FAILURE, next=request.form.get("next", ""),
                               username=username), 401
    nxt = _safe_next(request.form.get("next"))
    session.clear()  # new session contents (fresh CSRF token) on privilege change
    token = users.start_session(conn, result.user, addr)
    session.permanent = True
    login_user(WebUser(result.user, token))
    audit.append(conn, actor=result.user.username, role=result.user.role, action="login.ok", remote_addr=addr)
    return redirect(nxt or home_url(result.user.role))


@bp.route("/logout", methods=["POST"])
@role_required(*users.ROLES)
def logout():
    """End the session (server-side too) and go back to the log-in page."""
    audit.record("logout")
    users.end_session(get_store().conn, current_user.token)
    logout_user()
    session.clear()
    flash("You are logged out.")
    return redirect(url_for("auth.login"))


@bp.route("/account")
@role_required(*users.ROLES)
def account():
    """Who is logged in, with which role (the landing page of a role without another home)."""
    return render_template("account.html", roles=users.ROLE_NAMES)


@bp.app_context_processor
def _nav() -> dict:
    fleet = next((e for e in HOME["it"][:-1] if e in current_app.view_functions), None)
    return {"fleet_endpoint": fleet}


@bp.route("/account/password", methods=["POST"])
@role_required(*users.ROLES)
def change_password():
    """Change one's own password: the current one is checked (failures count toward the lock-out),
    then every session of the user ends, this one included, and the user logs in again."""
    cfg = current_app.config
    conn = get_store().conn
    addr = request.remote_addr or ""
    policy = users.Policy(cfg["LOGIN_MAX_FAILURES"], cfg["LOGIN_LOCKOUT_S"], cfg["LOGIN_ADDR_MAX_FAILURES"])
    new, again = request.form.get("new", ""), request.form.get("again", "")
    result = users.authenticate(conn, current_user.username, request.form.get("current", ""), addr, policy)
    error = None
    if result.reason != "ok":
        audit.record("user.password.failed", current_user.username, result.reason)
        error = "The current password is not right (or the account is locked)."
    elif new != again:
        error = "The two new passwords differ."
    else:
        try:
            users.set_password(conn, current_user.id, new)
        except users.UserError as exc:
            error = str(exc)
    if error:
        return render_template("account.html", roles=users.ROLE_NAMES, error=error), 422
    audit.record("user.password", current_user.username, "own password")
    users.end_user_sessions(conn, current_user.id)
    logout_user()
    session.clear()
    flash("Password changed. Log in with the new one.")
    return redirect(url_for("auth.login"))


def init_app(app) -> None:
    """Install Flask-Login, the default-deny guard and the log-in pages on ``app``."""
    login_manager.init_app(app)
    login_manager.session_protection = "strong"
    app.config.setdefault("REMEMBER_COOKIE_DURATION", 0)
    app.before_request(_guard)
    app.register_blueprint(bp)
