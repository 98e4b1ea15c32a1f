"""Administration of kiosk staff (role ``admin``): add a photographer, reset a PIN, deactivate, send the roster.

Every change goes through :mod:`dashboard.staff` (the service layer) and into the
audit log; a PIN is never shown, logged or audited. "Send roster to kiosks"
signs ``staff.json`` into a config bundle per known kiosk and publishes it
(:func:`dashboard.staff.send_roster`), with the centre's ``[updates]`` settings.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from . import audit, staff
from .auth import role_required
from .db import get_store

bp = Blueprint("admin_staff", __name__, url_prefix="/admin/staff")


def _page(error: str | None = None, form: dict | None = None, status: int = 200):
    conn = get_store().conn
    cfg = current_app.config.get("UPDATES")
    return render_template("admin_staff.html", staff=staff.list_staff(conn), roles=staff.ROLES, error=error,
                           form=form or {}, pin_min=staff.PIN_MIN, pin_max=staff.PIN_MAX,
                           pending=staff.pending_since(conn), kiosks=get_store().list_devices(),
                           can_send=bool(cfg and cfg.key_file and cfg.broker)), status


@bp.route("")
@role_required("admin")
def staff_list():
    """Kiosk staff with role and state, the add form and the send-roster action."""
    return _page()


@bp.route("", methods=["POST"])
@role_required("admin")
def staff_add():
    """Add a staff member (PIN entered twice, kept only as a hash)."""
    form = {k: request.form.get(k, "") for k in ("staff_id", "name", "role")}
    try:
        member = staff.add(get_store().conn, form["staff_id"], form["name"], form["role"],
                           request.form.get("pin", ""), request.form.get("pin_again", ""))
    except staff.StaffError as exc:
        return _page(str(exc), form, 422)
    audit.record("staff.create", member["staff_id"], f"role {member['role']}")
    flash(f"{member['name']} ({member['staff_id']}) added. Send the roster to the kiosks for it to take effect.")
    return redirect(url_for("admin_staff.staff_list"))


@bp.route("/<staff_id>/pin", methods=["POST"])
@role_required("admin")
def staff_pin(staff_id: str):
    """Reset a staff member's PIN (entered twice)."""
    try:
        staff.reset_pin(get_store().conn, staff_id, request.form.get("pin", ""), request.form.get("pin_again", ""))
    except staff.StaffError as exc:
        return _page(f"{staff_id}: {exc}", status=422)
    audit.record("staff.pin", staff_id)
    flash(f"New PIN set for {staff_id}. Send the roster to the kiosks for it to take effect.")
    return redirect(url_for("admin_staff.staff_list"))


@bp.route("/<staff_id>/active", methods=["POST"])
@role_required("admin")
def staff_active(staff_id: str):
    """Deactivate (left out of the next roster) or reactivate a staff member."""
    active = request.form.get("active") == "1"
    try:
        staff.set_active(get_store().conn, staff_id, active)
    except staff.StaffError as exc:
        return _page(str(exc), status=404)
    audit.record("staff.activate" if active else "staff.deactivate", staff_id)
    flash(f"{staff_id} {'reactivated' if active else 'deactivated'}. Send the roster to the kiosks for it to take "
          "effect.")
    return redirect(url_for("admin_staff.staff_list"))


@bp.route("/send", methods=["POST"])
@role_required("admin")
def staff_send():
    """Send the roster of active staff to every known kiosk (signed config bundle with staff.json)."""
    try:
        roster, sent = staff.send_roster(get_store(), current_app.config.get("UPDATES"))
    except staff.StaffError as exc:
        return _page(str(exc), status=409)
    ok = [s.device for s in sent if s.error is None]
    failed = [f"{s.device} ({s.error})" for s in sent if s.error is not None]
    audit.record("staff.roster-send", roster.version,
                 f"{len(roster.staff)} staff to {', '.join(ok) or 'no kiosk'}"
                 + (f"; not sent to {', '.join(failed)}" if failed else ""))
    if ok:
        flash(f"Roster {roster.version} ({len(roster.staff)} staff) sent to {', '.join(ok)}. Each kiosk confirms on "
              "the fleet page.")
    if failed:
        flash(f"Not sent to {', '.join(failed)}: try again once the broker is reachable.", "error")
    return redirect(url_for("admin_staff.staff_list"))
