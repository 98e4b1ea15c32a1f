"""Tasks from the centre: re-image requests with the reader's reason, and the status of referrals sent.

The outcome of a read referral arrives over the link (:mod:`edge.outcomes`); a lesion the reader
wants photographed again is a task here until a signed-in photographer marks it done. Who the patient
is (NHS number, date of birth, referral reference) is shown only to signed-in staff; the sign-in
screen shows how many tasks wait, nothing more. URLs carry the kiosk's own referral UUID and a
lesion label, never a patient identifier.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for

from wire.referral import format_nhs_number

from ..outcomes import lesion_text
from .guard import desk, login_required, service, staff_id

bp = Blueprint("tasks", __name__)


def open_task_count() -> int:
    """Open re-image tasks at this kiosk (0 when the kiosk keeps no outcomes)."""
    store = service().outcomes
    return store.task_count() if store is not None else 0


@bp.get("/tasks")
@login_required
def index():
    """The open re-image tasks, then every referral sent from here with its status."""
    svc = service()
    store = svc.outcomes

    def case_state(case_id: str):
        row = svc.outbox.get(case_id)
        return row.state if row else None

    return render_template("tasks.html", tasks=store.tasks(), referrals=store.referrals(case_state)[:20],
                           nhs=format_nhs_number, lesion_text=lesion_text)


@bp.post("/tasks/<referral_id>/<label>/done")
@login_required
def done(referral_id: str, label: str):
    """Mark one lesion's re-image task done (the new photographs were taken, or the recall arranged)."""
    try:
        desk().complete_task(staff_id(), referral_id, label)
    except ValueError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Task for lesion {label} marked done.", "ok")
    return redirect(url_for("tasks.index"))
