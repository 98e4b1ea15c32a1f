"""Photographing a lesion: the live preview beside the capture button, a tab per view, several shots
per view with the quality gate's verdict, the shot to send, and "send with a reason" for a failed one.

The forms work as plain POSTs (redirect back to the screen); the page's script posts
them with ``fetch`` and swaps the screen's panel in place, so the preview keeps
streaming and nothing scrolls. A shot that passes the gate moves the screen on to
the lesion's next view still missing.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for

from wire.messages import LABEL_NAMES, VIEWS
from wire.referral import OVERRIDE_REASONS

from ..quality import MESSAGES
from . import bodymap
from .guard import desk, form_text, login_required, settings, staff_id
from .lesions import lesion_or_404
from .progress import next_missing, view_done, views_needed

bp = Blueprint("capture", __name__, url_prefix="/lesions")

VIEW_HELP = {
    "dermoscopic": "Dermatoscope pressed flat on the lesion",
    "close-up": "The lesion and the skin around it, without the dermatoscope",
    "regional": "The body region, to show where the lesion is",
}
VIEW_NAMES = {"dermoscopic": "Dermoscopic", "close-up": "Close-up", "regional": "Regional"}


def _lesion(index: int, view: str):
    if view not in VIEWS:
        abort(404)
    appt = desk().current()
    if appt is None or not appt.details_done:
        return None, None
    return appt, lesion_or_404(appt, index)


#: How the gate's refusals of a too-dark photograph begin (``MESSAGES["dark"]`` and ``["dark_type"]`` alike).
TOO_DARK = MESSAGES["dark"].split(" (", 1)[0]


def too_dark(shot) -> bool:
    """Whether ``shot`` was refused as too dark: the recorded skin type may be what is wrong (the exposure
    check expects darker skin dimmer), so the screen offers the skin-type screen beside the verdict. Read from
    the gate's own words, which the kiosk and the centre both show."""
    check = shot.quality.checks.get("exposure")
    return check is not None and not check.ok and check.message.startswith(TOO_DARK)


#: The checks that read the skin round the lesion, or its outline: a lesion larger than the view fails them
#: for want of skin, which the photographer can say (``mark_fills_view``), not fix.
NEEDS_SKIN = ("exposure", "colour", "lesion", "framing")


def may_fill_view(lesion, view: str, shot) -> bool:
    """Whether to offer "Lesion larger than the view" beside ``shot``'s refusal: a dermoscopic photograph of a
    lesion not yet so marked, refused by a check that needs skin or the lesion's outline in view."""
    return view == "dermoscopic" and not lesion.fills_view and any(
        not c.ok for name, c in shot.quality.checks.items() if name in NEEDS_SKIN)


@bp.get("/<int:index>/shoot/<view>")
@login_required
def shoot(index: int, view: str):
    """The capture screen of one view of one lesion."""
    appt, lesion = _lesion(index, view)
    if appt is None:
        return redirect(url_for("details.start"))
    shots = lesion.shots.get(view, [])
    order = views_needed() + [v for v in VIEWS if v not in views_needed()]
    return render_template(
        "capture.html", appt=appt, lesion=lesion, view=view, shots=shots, views=order,
        required=views_needed(), view_help=VIEW_HELP, view_names=VIEW_NAMES, view_done=view_done,
        next_view=next_missing(lesion, view), reasons=OVERRIDE_REASONS, describe=bodymap.describe,
        send_all=settings().send_shots == "all", label_names=LABEL_NAMES,
        show_classifier=desk().can_show_classifier(staff_id()), too_dark=too_dark, may_fill_view=may_fill_view,
        next_lesion=next((les for les in appt.lesions if les.index != index and next_missing(les)), None))


@bp.post("/<int:index>/shoot/<view>")
@login_required
def take(index: int, view: str):
    """Take a shot; a shot that passes moves on to the next view still missing."""
    appt, lesion = _lesion(index, view)
    if appt is None:
        return redirect(url_for("details.start"))
    try:
        shot = desk().capture(staff_id(), index, view)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("capture.shoot", index=index, view=view))
    if not shot.quality.ok:
        return redirect(url_for("capture.shoot", index=index, view=view, _anchor="shots"))
    lesion = lesion_or_404(desk().current(), index)       # a shot that passed is the one marked to send
    following = next_missing(lesion, view)
    flash(f"{VIEW_NAMES[view]} photograph passed the quality check."
          + (f" Now the {VIEW_NAMES[following].lower()} view." if following else " All views done."), "ok")
    return redirect(url_for("capture.shoot", index=index, view=following or view))


@bp.post("/<int:index>/shoot/<view>/<int:shot_no>/select")
@login_required
def select(index: int, view: str, shot_no: int):
    """Mark the shot to send for this view."""
    if _lesion(index, view)[0] is None:
        return redirect(url_for("details.start"))
    try:
        desk().select(staff_id(), index, view, shot_no)
    except ValueError as exc:
        flash(str(exc), "error")
    return redirect(url_for("capture.shoot", index=index, view=view))


@bp.post("/<int:index>/shoot/<view>/<int:shot_no>/override")
@login_required
def override(index: int, view: str, shot_no: int):
    """Send a shot that failed the gate with the photographer's reason; then on to the next view."""
    if _lesion(index, view)[0] is None:
        return redirect(url_for("details.start"))
    reason = form_text("reason", 40)
    try:
        desk().override(staff_id(), index, view, shot_no, reason, form_text("text", 200))
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("capture.shoot", index=index, view=view, _anchor="shots"))
    lesion = lesion_or_404(desk().current(), index)
    following = next_missing(lesion, view)
    flash(f"{VIEW_NAMES[view]} photograph will be sent with the reason given.", "ok")
    return redirect(url_for("capture.shoot", index=index, view=following or view))


@bp.post("/<int:index>/fills-view")
@login_required
def fills_view(index: int):
    """Mark the lesion as larger than the dermatoscope's view (``fills=1``) or take the mark back (``fills=0``);
    its dermoscopic photographs are judged again, and the screen shows their new verdicts."""
    if _lesion(index, "dermoscopic")[0] is None:
        return redirect(url_for("details.start"))
    marked = form_text("fills", 1) == "1"
    try:
        desk().mark_fills_view(staff_id(), index, marked)
    except ValueError as exc:
        flash(str(exc), "error")
    return redirect(url_for("capture.shoot", index=index, view="dermoscopic", _anchor="shots"))


@bp.get("/<int:index>/shot/<view>/<int:shot_no>.jpg")
@login_required
def shot_jpeg(index: int, view: str, shot_no: int):
    """A shot's JPEG (thumbnails and the review grid; signed-in staff only, never cached)."""
    if view not in VIEWS:
        abort(404)
    try:
        return Response(desk().shot_jpeg(index, view, shot_no), mimetype="image/jpeg")
    except (ValueError, KeyError, IndexError):
        abort(404)
