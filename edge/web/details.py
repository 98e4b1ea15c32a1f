"""The appointment's details, one screen each: start or resume, patient, skin type, referral, consents.

Each screen posts its fields (patient identifiers only ever in a POST body) to the
desk; an ``AppointmentError`` is shown next to the field it concerns and the
screen keeps what was typed. Dates are typed on the digit pad as ``DD MM YYYY``.
"""

from __future__ import annotations

import re
from datetime import date

from flask import Blueprint, flash, redirect, render_template, request, url_for

from wire.messages import VIEWS
from wire.referral import FITZPATRICK, ROUTES, SEXES

from .guard import desk, field_of, form_text, login_required, settings, staff_id

bp = Blueprint("details", __name__, url_prefix="/appointment")

SEX_LABELS = {"female": "Female", "male": "Male", "indeterminate": "Indeterminate", "not-known": "Not known"}
SKIN_TYPES = {
    "I": "Always burns, never tans; very fair",
    "II": "Usually burns, tans with difficulty; fair",
    "III": "Sometimes burns, tans gradually; light brown",
    "IV": "Rarely burns, tans easily; moderate brown",
    "V": "Very rarely burns, tans very easily; dark brown",
    "VI": "Never burns; deeply pigmented dark brown to black",
}
ROUTE_LABELS = {"gp-referral": "GP referral", "direct-to-hub": "Direct to hub"}
CONSENTS = (
    ("photography", "Photographs for clinical care", "Required: without it no photograph is taken."),
    ("ai_analysis", "AI analysis of the photographs", "If no, the classifier does not run; a dermatologist reads "
                                                      "every case either way."),
    ("teaching", "Use for teaching and research", "Anonymised; the patient may say no without any effect on care."),
)
#: Words of a desk message that name the field it concerns, where the error carries no ``field``.
_FIELD_WORDS = {
    "patient": (("nhs", "nhs_number"), ("birth", "date_of_birth"), ("sex", "sex")),
    "referral": (("ubrn", "reference"), ("reference", "reference"), ("date", "referral_date"),
                 ("ods", "practice_ods"), ("practice", "practice_ods"), ("route", "route")),
}


def _field(exc, screen: str) -> str | None:
    field = field_of(exc)
    if field:
        return field
    text = str(exc).lower()
    return next((f for word, f in _FIELD_WORDS.get(screen, ()) if word in text), None)


def pad_date(text: str) -> str:
    """``DD MM YYYY`` / ``DD/MM/YYYY`` as typed on the pad -> ``DDMMYYYY`` for the desk (others unchanged)."""
    compact = re.sub(r"[\s/.-]", "", text or "")
    return compact if compact else ""


def show_date(value) -> str:
    """A date (or an ISO date string) as the pad types it, ``DD MM YYYY``; '' for None."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return value
    return value.strftime("%d %m %Y") if isinstance(value, date) else ""


def entered(appt) -> dict:
    """What was entered so far on the details screens (for Back), from the open appointment."""
    out = {k: getattr(appt, k) for k in ("nhs_number", "sex", "fitzpatrick") if getattr(appt, k)}
    if appt.date_of_birth:
        out["date_of_birth"] = show_date(appt.date_of_birth)
    if appt.referral:
        out.update(appt.referral)
        out["referral_date"] = show_date(appt.referral.get("referral_date"))
    if appt.consents is not None:
        for name, *_ in CONSENTS:
            out[name] = "yes" if getattr(appt.consents, name).given else "no"
    return out


def next_screen(appt) -> str:
    """The first details screen still to do, else the lesions list."""
    if not appt.nhs_number:
        return url_for("details.patient")
    if not appt.fitzpatrick:
        return url_for("details.skin")
    if not appt.referral:
        return url_for("details.referral")
    if appt.consents is None:
        return url_for("details.consents")
    return url_for("lesions.index")


@bp.get("/")
@login_required
def start():
    """New appointment, or resume the open one (it survives a restart and a sign-out)."""
    appt = desk().current()
    return render_template("start.html", appt=appt)


@bp.post("/open")
@login_required
def open_():
    """Open a new appointment, or go on with the open one."""
    appt = desk().current()
    if appt is None:
        try:
            appt = desk().open(staff_id())
        except ValueError as exc:
            flash(str(exc), "error")
            return redirect(url_for("details.start"))
    return redirect(next_screen(appt))


def _screen(name: str, template: str, values: dict | None = None, errors: dict | None = None, code: int = 200,
            back: str | None = None):
    appt = desk().current()
    if appt is None:
        return redirect(url_for("details.start"))
    shown = entered(appt) if values is None else values
    return render_template(template, appt=appt, values=shown, errors=errors or {}, screen=name,
                           sexes=SEXES, sex_labels=SEX_LABELS, skin_types=SKIN_TYPES, fitzpatrick=FITZPATRICK,
                           routes=ROUTES, route_labels=ROUTE_LABELS, consents=CONSENTS,
                           practices=settings().practices, back=back), code


@bp.route("/patient", methods=["GET", "POST"])
@login_required
def patient():
    """NHS number and date of birth on the digit pad, sex as buttons."""
    if request.method == "GET":
        return _screen("patient", "patient.html")
    values = {k: form_text(k, 40) for k in ("nhs_number", "date_of_birth", "sex")}
    errors = {}
    if not values["sex"]:
        errors["sex"] = "Choose the patient's sex as recorded on the referral."
    if not errors:
        try:
            desk().set_patient(staff_id(), values["nhs_number"], pad_date(values["date_of_birth"]), values["sex"])
            return redirect(url_for("details.skin"))
        except ValueError as exc:
            errors[_field(exc, "patient") or "_screen"] = str(exc)
    return _screen("patient", "patient.html", values, errors, 422)


@bp.route("/skin", methods=["GET", "POST"])
@login_required
def skin():
    """Fitzpatrick skin type I-VI. Opened from a lesion's photographs (``lesion`` and ``view`` given: a photograph
    refused as too dark), it goes back there; the photographs already taken are judged again by the new type."""
    back = _photos_to_return_to()
    if request.method == "GET":
        return _screen("skin", "skin.html", back=back)
    try:
        desk().set_skin_type(staff_id(), form_text("fitzpatrick", 4))
        return redirect(back or url_for("details.referral"))
    except ValueError as exc:
        return _screen("skin", "skin.html", errors={field_of(exc) or "fitzpatrick": str(exc)}, code=422, back=back)


def _photos_to_return_to() -> str | None:
    """The capture screen named by the ``lesion`` and ``view`` of the request (a lesion number and a view, never
    a free address), or None."""
    lesion, view = request.values.get("lesion", ""), request.values.get("view", "")
    if not lesion.isdigit() or view not in VIEWS:
        return None
    return url_for("capture.shoot", index=int(lesion), view=view)


@bp.route("/referral", methods=["GET", "POST"])
@login_required
def referral():
    """Referral reference (UBRN on the pad, or a local reference on the letter keyboard), date, practice, route."""
    if request.method == "GET":
        return _screen("referral", "referral.html")
    values = {k: form_text(k, 40) for k in ("reference", "referral_date", "practice_ods", "route")}
    values["practice_ods"] = form_text("practice_other", 12) or values["practice_ods"]   # typed beats a quick pick
    try:
        desk().set_referral(staff_id(), values["reference"], pad_date(values["referral_date"]),
                            values["practice_ods"], values["route"])
        return redirect(url_for("details.consents"))
    except ValueError as exc:
        return _screen("referral", "referral.html", values, {_field(exc, "referral") or "_screen": str(exc)}, 422)


@bp.route("/consents", methods=["GET", "POST"])
@login_required
def consents():
    """Three separate yes/no consents; no to photography ends the appointment and says what to do."""
    if request.method == "GET":
        return _screen("consents", "consents.html")
    values = {name: form_text(name, 3) for name, *_ in CONSENTS}
    errors = {name: "Answer yes or no." for name, v in values.items() if v not in ("yes", "no")}
    if errors:
        return _screen("consents", "consents.html", values, errors, 422)
    try:
        desk().set_consents(staff_id(), *(values[name] == "yes" for name, *_ in CONSENTS))
        return redirect(url_for("lesions.index"))
    except ValueError as exc:
        if desk().current() is None:          # no consent to photography: the appointment has ended
            return render_template("message.html", title="Appointment ended", message=str(exc),
                                   next_label="Next patient", next_url=url_for("details.start")), 200
        return _screen("consents", "consents.html", values, {field_of(exc) or "_screen": str(exc)}, 422)


@bp.route("/discard", methods=["GET", "POST"])
@login_required
def discard():
    """Ask first (GET), then drop the open appointment (POST): nothing is sent; back to the start."""
    if request.method == "GET":
        if desk().current() is None:
            return redirect(url_for("details.start"))
        return render_template("discard.html")
    if desk().current() is not None:
        desk().discard(staff_id(), "discarded at the kiosk")
        flash("Appointment discarded: nothing was sent.", "ok")
    return redirect(url_for("details.start"))
