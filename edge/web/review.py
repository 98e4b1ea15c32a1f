"""Review and submit: a grid of every lesion and view, what is still missing, submit, and a clean screen."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, session, url_for

from edge.outbox import DiskFullError

from . import bodymap
from .capture import VIEW_NAMES
from .guard import desk, login_required, staff_id
from .progress import view_done, views_needed

bp = Blueprint("review", __name__)


@bp.get("/review")
@login_required
def index():
    """Every lesion x view with the shot to send; submit when nothing is missing."""
    appt = desk().current()
    if appt is None or not appt.details_done:
        return redirect(url_for("details.start"))
    return render_template("review.html", appt=appt, views=views_needed(), view_names=VIEW_NAMES,
                           view_done=view_done, missing=desk().missing(), describe=bodymap.describe)


@bp.post("/submit")
@login_required
def submit():
    """Send the referral (one case per lesion) to the outbox; refusals are shown on the review screen."""
    try:
        cases = desk().submit(staff_id())
    except DiskFullError as exc:
        flash(str(exc), "diskfull")
        return redirect(url_for("review.index"))
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("review.index"))
    session["sent"] = len(cases)
    return redirect(url_for("review.sent"))


@bp.get("/sent")
@login_required
def sent():
    """A clean screen for the next patient: how many cases were saved, no patient data."""
    return render_template("sent.html", count=session.pop("sent", None))
