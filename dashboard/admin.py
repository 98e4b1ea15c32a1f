"""Administration pages (role ``admin``): users and the audit log.

Users: list, create (with an initial password the person changes... by asking
an administrator: there is no self-service reset), deactivate / reactivate,
reset password, unlock, change role. Every change is written to the audit log
and ends the user's open sessions where it takes rights away. The last active
administrator cannot be deactivated or demoted from here.

Kiosks are listed on ``/devices`` (shared with ``it``); revoking a kiosk's
certificate is done with ``python -m dashboard pki revoke`` on the centre.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from . import audit, users
from .auth import role_required
from .db import get_store

bp = Blueprint("admin", __name__, url_prefix="/admin")
AUDIT_PAGE = 200


def _user_or_404(user_id: int) -> users.User:
    user = users.get_user(get_store().conn, user_id=user_id)
    if user is None:
        abort(404)
    return user


def _users_page(error: str | None = None, form: dict | None = None, status: int = 200):
    conn = get_store().conn
    return render_template("admin_users.html", users=users.list_users(conn), roles=users.ROLE_NAMES,
                           error=error, form=form or {}, min_password=users.MIN_PASSWORD,
                           now=users.utcnow()), status


@bp.route("/users")
@role_required("admin")
def users_list():
    """All accounts with role, state, last log-in and lock-out."""
    return _users_page()


@bp.route("/users", methods=["POST"])
@role_required("admin")
def user_create():
    """Create an account with an initial password."""
    conn = get_store().conn
    form = {"username": request.form.get("username", ""), "role": request.form.get("role", "")}
    try:
        user = users.create_user(conn, form["username"], request.form.get("password", ""), form["role"])
    except users.UserError as exc:
        return _users_page(str(exc), form, 422)
    audit.record("user.create", user.username, f"role {user.role}")
    flash(f"User {user.username} created ({users.ROLE_NAMES[user.role]}).")
    return redirect(url_for("admin.users_list"))


def _last_admin(conn, user: users.User) -> bool:
    return user.role == "admin" and user.active and users.count_admins(conn) <= 1


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@role_required("admin")
def user_active(user_id: int):
    """Deactivate (``active=0``, ends the user's sessions) or reactivate an account."""
    conn = get_store().conn
    user = _user_or_404(user_id)
    active = request.form.get("active") == "1"
    if not active and _last_admin(conn, user):
        flash("The last active administrator cannot be deactivated.", "error")
        return redirect(url_for("admin.users_list")), 303
    users.set_active(conn, user.id, active)
    if not active:
        users.end_user_sessions(conn, user.id)
    audit.record("user.activate" if active else "user.deactivate", user.username)
    flash(f"User {user.username} {'reactivated' if active else 'deactivated'}.")
    return redirect(url_for("admin.users_list"))


@bp.route("/users/<int:user_id>/password", methods=["POST"])
@role_required("admin")
def user_password(user_id: int):
    """Set a new password (ends the user's sessions, clears a lock-out)."""
    conn = get_store().conn
    user = _user_or_404(user_id)
    try:
        users.set_password(conn, user.id, request.form.get("password", ""))
    except users.UserError as exc:
        return _users_page(f"{user.username}: {exc}", status=422)
    users.end_user_sessions(conn, user.id)
    audit.record("user.password", user.username)
    flash(f"New password set for {user.username}.")
    return redirect(url_for("admin.users_list"))


@bp.route("/users/<int:user_id>/unlock", methods=["POST"])
@role_required("admin")
def user_unlock(user_id: int):
    """Clear an account's lock-out after repeated failed log-ins."""
    user = _user_or_404(user_id)
    users.unlock(get_store().conn, user.id)
    audit.record("user.unlock", user.username)
    flash(f"User {user.username} unlocked.")
    return redirect(url_for("admin.users_list"))


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@role_required("admin")
def user_role(user_id: int):
    """Change an account's role (ends its sessions, so the new rights apply at the next log-in)."""
    conn = get_store().conn
    user = _user_or_404(user_id)
    role = request.form.get("role", "")
    if role != "admin" and _last_admin(conn, user):
        flash("The last active administrator cannot lose the role.", "error")
        return redirect(url_for("admin.users_list")), 303
    try:
        users.set_role(conn, user.id, role)
    except users.UserError as exc:
        return _users_page(f"{user.username}: {exc}", status=422)
    users.end_user_sessions(conn, user.id)
    audit.record("user.role", user.username, f"{user.role} -> {role}")
    flash(f"User {user.username} is now {users.ROLE_NAMES[role]}.")
    return redirect(url_for("admin.users_list"))


@bp.route("/audit")
@role_required("admin")
def audit_log():
    """The audit log, newest first, filtered by user and/or action (prefix, e.g. ``user``)."""
    conn = get_store().conn
    actor = request.args.get("actor", "").strip().lower()[:128]
    action = request.args.get("action", "").strip()[:64]
    before = request.args.get("before", type=int)
    rows = audit.entries(conn, actor=actor, action=action, limit=AUDIT_PAGE, before_id=before)
    broken = audit.verify_chain(conn)
    audit.record("audit.view", "", f"actor={actor} action={action}")
    return render_template("admin_audit.html", rows=rows, actor=actor, action=action, actions=audit.actions(conn),
                           broken=broken, more=len(rows) == AUDIT_PAGE, me=current_user.username)
