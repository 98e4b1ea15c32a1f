"""Sign-in: tap your name on the roster, then your PIN on the digit pad; sign-out; keep-alive."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from . import guard
from .guard import desk, login_required, staff_id

bp = Blueprint("signin", __name__)


@bp.get("/")
def roster():
    """The roster's names to tap; a signed-in photographer goes on to their appointment."""
    if staff_id():
        return redirect(url_for("details.start"))
    return render_template("signin.html", roster=desk().roster())


@bp.get("/signin/<member>")
def pin(member: str):
    """The PIN pad for one person of the roster (a staff id in the URL is not a patient identifier)."""
    if staff_id():
        return redirect(url_for("details.start"))
    person = next((m for m in desk().roster() if m.staff_id == member), None)
    if person is None:
        abort(404)
    return render_template("pin.html", person=person)


@bp.post("/signin/<member>")
def sign_in(member: str):
    """Check the PIN; a wrong one (or a locked account) shows the desk's message under the PIN."""
    person = next((m for m in desk().roster() if m.staff_id == member), None)
    if person is None:
        abort(404)
    try:
        signed = desk().sign_in(member, request.form.get("pin", ""))
    except ValueError as exc:
        return render_template("pin.html", person=person, error=str(exc)), 422
    guard.sign_in_session(signed)
    return redirect(url_for("details.start"))


@bp.post("/signout")
def sign_out():
    """Sign out (``why=idle`` when the page's idle timer did it): the screen returns to the roster."""
    why = "idle" if request.form.get("why") == "idle" else "signed-out"
    was = staff_id()
    guard.end_session(why)
    if was:
        flash(guard.IDLE_MESSAGE if why == "idle" else "Signed out.", "ok")
    return redirect(url_for("signin.roster"))


@bp.post("/alive")
@login_required
def alive():
    """The page's script: the photographer is using the screen (taps on pads make no other request)."""
    return "", 204
