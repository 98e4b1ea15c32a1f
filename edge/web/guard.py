"""Who is signed in at the kiosk page, the idle timeout, and helpers the screens share.

The signed-in staff id and the time of their last request live in the Flask
session (a signed cookie). After ``appointment.idle_timeout_s`` without a request
the next request signs them out (``desk.sign_out(staff, "idle")``) and lands on the
sign-in screen; the page's script does the same at the same time without waiting
for a request. The status poll and the preview stream are not activity.
"""

from __future__ import annotations

import functools
import time

from flask import current_app, flash, redirect, request, session, url_for
from flask_wtf import FlaskForm

#: Endpoints that are not a photographer's activity (polled or streamed by the page itself).
PASSIVE = {"live.status", "live.preview", "live.preview_still", "static"}


class ActionForm(FlaskForm):
    """A form that carries only the CSRF token; the fields are read from ``request.form``."""


def service():
    """The running :class:`edge.service.KioskService`."""
    return current_app.extensions["kiosk_service"]


def desk():
    """The kiosk's :class:`edge.appointment.desk.AppointmentDesk`."""
    return service().desk


def settings():
    """The kiosk's ``[appointment]`` settings."""
    return service().cfg.appointment


def staff_id() -> str | None:
    """The signed-in photographer's staff id, or None."""
    return session.get("staff")


def sign_in_session(member) -> None:
    """Remember the signed-in photographer (a fresh session: nothing of the one before)."""
    session.clear()
    session["staff"] = member.staff_id
    session["name"] = member.name
    session["seen"] = time.time()


def end_session(why: str) -> None:
    """Sign the photographer out at the desk (audited) and forget the session, but for why it ended (``ended``)."""
    staff = session.get("staff")
    pending = session.get("_flashes")      # a message already meant for the screen (e.g. the idle one) stays
    session.clear()
    if pending:
        session["_flashes"] = pending
    session["ended"] = why
    if staff:
        try:
            desk().sign_out(staff, why)
        except ValueError:             # already signed out at the desk
            pass


#: What the sign-in screen says after the idle timeout signed the photographer out.
IDLE_MESSAGE = "Signed out after a time without use. Nothing entered so far is lost: sign in to go on."


def ended_idle() -> bool:
    """Whether this browser's session was ended by the idle timeout, and no one has signed in since."""
    return not staff_id() and session.get("ended") == "idle"


def check_idle() -> None:
    """``before_request``: sign out after the idle timeout; any other request counts as activity."""
    staff = session.get("staff")
    if not staff:
        return
    now = time.time()
    if now - session.get("seen", now) > settings().idle_timeout_s:
        end_session("idle")
        flash(IDLE_MESSAGE, "ok")
        return
    if request.endpoint not in PASSIVE:
        session["seen"] = now


def login_required(view):
    """Send a request without a signed-in photographer to the sign-in screen."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not staff_id():
            return redirect(url_for("signin.roster"))
        if desk().signed_in(staff_id()) is None:      # e.g. the kiosk restarted: sign-ins are in memory only
            session.clear()
            flash("Please sign in again. Nothing entered so far is lost.", "ok")
            return redirect(url_for("signin.roster"))
        return view(*args, **kwargs)
    return wrapper


def not_signed_in(exc):
    """Error handler for the desk's ``NotSignedIn``: back to the sign-in screen, nothing lost."""
    session.clear()
    flash("Please sign in again. Nothing entered so far is lost.", "ok")
    return redirect(url_for("signin.roster"))


def field_of(exc) -> str | None:
    """The form field an AppointmentError concerns (None: the whole screen)."""
    return getattr(exc, "field", None)


def form_text(name: str, limit: int = 200) -> str:
    """A text field of the posted form, stripped and cut to ``limit`` characters."""
    return (request.form.get(name) or "").strip()[:limit]
