"""The referral's lesions: the list, a lesion's place on the body map, its size and history.

A lesion is added from the body map (site, laterality, optional finer label and the
point tapped), then its size and history (optional) are recorded, then it is
photographed. After the appointment's first photograph a new lesion needs the
reason it was added (it was not on the GP's referral).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from wire.referral import DURATIONS, SEVEN_POINT

from . import bodymap
from .guard import desk, field_of, form_text, login_required, settings, staff_id
from .progress import next_missing, views_needed

bp = Blueprint("lesions", __name__, url_prefix="/lesions")

HISTORY = (("changed", "Changed"), ("bleeding", "Bleeding"), ("itching", "Itching"), ("new", "New"))
DURATION_LABELS = {"under-1-month": "< 1 month", "1-3-months": "1-3 months", "3-12-months": "3-12 months",
                   "over-1-year": "> 1 year", "not-known": "Not known"}
#: The NG12 checklist's items as the buttons say them (short enough for two rows at 800x480).
CHECKLIST_LABELS = {"change_in_size": "Change in size", "irregular_shape": "Irregular shape",
                    "irregular_colour": "Irregular colour", "diameter_7mm": "7 mm or more", "inflammation": "Inflamed",
                    "oozing": "Oozing", "change_in_sensation": "Sensation changed"}
ADDED_REASONS = ("Found during the appointment", "Patient asked for it to be checked")


def any_shot(appt) -> bool:
    """True once the appointment has its first photograph (new lesions then need a reason)."""
    return any(shots for lesion in appt.lesions for shots in lesion.shots.values())


def lesion_or_404(appt, index: int):
    """The open appointment's lesion ``index`` (1-based), else 404."""
    found = next((lesion for lesion in appt.lesions if lesion.index == index), None) if appt else None
    if found is None:
        abort(404)
    return found


def _appt():
    appt = desk().current()
    if appt is None or not appt.details_done:
        return None
    return appt


@bp.get("/")
@login_required
def index():
    """The lesions of the referral, each with what is photographed so far; add, change or photograph."""
    appt = _appt()
    if appt is None:
        return redirect(url_for("details.start"))
    todo = next(((les, next_missing(les)) for les in appt.lesions if next_missing(les)), None)
    return render_template("lesions.html", appt=appt, max_lesions=settings().max_lesions, views=views_needed(),
                           describe=bodymap.describe, todo=todo)


def _location_form() -> dict:
    fields = {"site": form_text("site", 40), "laterality": form_text("laterality", 20),
              "detail": form_text("detail", 80), "map_side": form_text("map_side", 5) or None}
    for axis in ("map_x", "map_y"):
        try:
            value = float(request.form.get(axis, ""))
            fields[axis] = value if 0.0 <= value <= 1.0 else None
        except ValueError:
            fields[axis] = None
    return fields


def _site_screen(appt, lesion, values: dict, errors: dict, code: int = 200):
    return render_template("site.html", appt=appt, lesion=lesion, values=values, errors=errors,
                           regions=bodymap.VIEWS, details=bodymap.DETAILS, site_names=bodymap.SITE_NAMES,
                           laterality_names=bodymap.LATERALITY_NAMES, width=bodymap.WIDTH, height=bodymap.HEIGHT,
                           band=bodymap.MIDLINE_BAND, needs_reason=lesion is None and any_shot(appt),
                           added_reasons=ADDED_REASONS), code


def _site_errors(exc, values: dict) -> dict:
    field = field_of(exc)
    if field is None:
        field = "site" if "site" in str(exc).lower() or not values.get("site") else "_screen"
    return {field: str(exc)}


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    """A new lesion's place on the body map; more than the configured number is refused."""
    appt = _appt()
    if appt is None:
        return redirect(url_for("details.start"))
    if request.method == "GET":
        if len(appt.lesions) >= settings().max_lesions:
            flash(f"This referral already has {len(appt.lesions)} lesions, the most one appointment may "
                  f"photograph. Submit it, then open a new appointment for the others.", "error")
            return redirect(url_for("lesions.index"))
        return _site_screen(appt, None, {}, {})
    values = _location_form()
    reason = form_text("added_reason", 200)
    if reason == "other":
        reason = form_text("added_reason_text", 200)
    try:
        lesion = desk().add_lesion(staff_id(), **values, added_reason=reason)
    except ValueError as exc:
        return _site_screen(appt, None, {**values, "added_reason": reason}, _site_errors(exc, values), 422)
    return redirect(url_for("lesions.about", index=lesion.index))


@bp.route("/<int:index>/site", methods=["GET", "POST"])
@login_required
def site(index: int):
    """Change where a lesion is."""
    appt = _appt()
    lesion = lesion_or_404(appt, index)
    if request.method == "GET":
        loc = lesion.location
        values = {"site": str(getattr(loc.site, "value", loc.site)), "laterality": loc.laterality,
                  "detail": loc.detail, "map_side": loc.map_side, "map_x": loc.map_x, "map_y": loc.map_y}
        return _site_screen(appt, lesion, values, {})
    values = _location_form()
    try:
        desk().update_lesion(staff_id(), index, **values)
    except ValueError as exc:
        return _site_screen(appt, lesion, values, _site_errors(exc, values), 422)
    return redirect(url_for("lesions.about", index=index))


def _history_form() -> dict:
    history: dict = {name: True for name, _ in HISTORY if request.form.get(name) == "yes"}
    duration = form_text("duration", 20)
    history["duration"] = duration if duration in DURATIONS else "not-known"
    history["checklist"] = {item: True for item in SEVEN_POINT if request.form.get(f"cl_{item}") == "yes"}
    return history


@bp.route("/<int:index>/about", methods=["GET", "POST"])
@login_required
def about(index: int):
    """Size in mm (digit pad), history and the NG12 7-point checklist; all optional."""
    appt = _appt()
    lesion = lesion_or_404(appt, index)
    errors: dict = {}
    size = lesion.size_mm
    history = lesion.history.model_dump()
    if request.method == "POST":
        size = form_text("size_mm", 8) or None
        history = _history_form()
        try:
            desk().update_lesion(staff_id(), index, size_mm=size, history=history)
            if not appt.photographing_started:       # every lesion of the referral first, then photographs
                return redirect(url_for("lesions.index"))
            return redirect(url_for("capture.shoot", index=index, view=_first_missing(lesion)))
        except ValueError as exc:
            errors = {field_of(exc) or ("size_mm" if "size" in str(exc).lower() else "_screen"): str(exc)}
    size_text = "" if size is None else (f"{size:g}" if isinstance(size, float) else str(size))
    return render_template("about.html", appt=appt, lesion=lesion, size=size_text, history=history,
                           errors=errors, history_items=HISTORY, durations=DURATION_LABELS,
                           seven_point=SEVEN_POINT, checklist_labels=CHECKLIST_LABELS, describe=bodymap.describe), (422 if errors else 200)


def _first_missing(lesion) -> str:
    return next((v for v in views_needed() if not lesion.shots.get(v)), views_needed()[0])


@bp.post("/<int:index>/remove")
@login_required
def remove(index: int):
    """Remove a lesion (and its photographs) from the appointment."""
    try:
        desk().remove_lesion(staff_id(), index)
        flash(f"Lesion L{index} removed.", "ok")
    except ValueError as exc:
        flash(str(exc), "error")
    return redirect(url_for("lesions.index"))
