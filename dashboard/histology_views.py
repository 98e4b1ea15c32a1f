"""Histology on the dashboard: a result per lesion on the referral page, and the pathology CSV import.

- ``_histology.html`` (included on the referral page with ``referral_key`` and ``lesions``): each lesion's
  result that stands, earlier ones, and a form to record one.
- ``POST /referrals/<key>/histology/<case_id>``: record a lesion's result (dermatologists, admins; audited).
  From the referral page (dermatologists) it returns there with a message; from the histology page below
  (``back=histology``, and always for admins) it returns to that page, or shows it again (422) with the error
  beside the lesion's form and what was typed kept.
- ``GET|POST /histology/find``: find a referral by the reference on the pathology report, typed into a form
  (POST: the reference is never in a URL); one match leads to its histology page, several are listed.
- ``GET /histology/referrals/<key>``: a referral's lesions (hub, date, body sites) with each one's histology and
  the form to record one: how admins, who do not read referrals, enter a result by hand.
- ``GET|POST /histology/import``: upload a pathology system's CSV (columns in :mod:`dashboard.histology`);
  the page lists what was stored and every row that was not, with why.

Views write only through :mod:`dashboard.histology`.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from . import histology
from .auth import role_required
from .db import get_store
from .reports import diagnosis_options

bp = Blueprint("histology", __name__)


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        abort(404)


def histology_context(key: str) -> dict:
    """What ``_histology.html`` shows: per lesion (case id) its results, newest first, and the form's choices."""
    return {"results": histology.lesion_results(get_store().conn, key), "confirm_types": histology.CONFIRM_TYPES,
            "benign_malignant": histology.BENIGN_MALIGNANT, "diagnosis_options": diagnosis_options}


@bp.app_context_processor
def _helpers() -> dict:
    return {"histology_context": histology_context}


@bp.post("/referrals/<key>/histology/<case_id>")
@role_required("dermatologist", "admin")
def enter(key: str, case_id: str):
    """Record one lesion's histology from the referral page's form; back to the page with what happened."""
    key, case_id = _uuid(key), _uuid(case_id)
    here = current_user.role != "dermatologist" or request.form.get("back") == "histology" \
        or "reading.referral_page" not in current_app.view_functions
    try:
        histology.enter(get_store().conn, key, case_id, current_user.username, current_user.role, request.form,
                        remote_addr=request.remote_addr or "")
    except histology.HistologyError as exc:
        if here and histology.referral_lesions(get_store().conn, key):
            return _referral(key, errors={case_id: str(exc)}, values={case_id: request.form}, status=422)
        flash(f"Histology not recorded: {exc}", "error")
    else:
        flash("Histology recorded.")
    if here:
        return redirect(url_for("histology.referral_page", key=key) + "#histology")
    return redirect(url_for("reading.referral_page", key=key) + "#histology")


def _referral(key: str, *, errors: dict | None = None, values: dict | None = None, status: int = 200):
    lesions = histology.referral_lesions(get_store().conn, key)
    if not lesions:
        abort(404)
    return render_template("histology_referral.html", referral_key=key, info=lesions[0],
                           lesions=[{"case": les} for les in lesions], histo_errors=errors or {},
                           histo_values=values or {}, histo_back="histology"), status


@bp.get("/histology/referrals/<key>")
@role_required("dermatologist", "admin")
def referral_page(key: str):
    """A referral's lesions with their histology and the form to record one (found through ``/histology/find``)."""
    return _referral(_uuid(key))


@bp.route("/histology/find", methods=["GET", "POST"])
@role_required("dermatologist", "admin")
def find_page():
    """Find a referral by the reference on the pathology report (typed, POSTed); one match opens its page."""
    found, error, typed = None, None, ""
    if request.method == "POST":
        typed = request.form.get("reference", "")
        try:
            found = histology.find_referrals(get_store().conn, typed, current_user.username, current_user.role,
                                             remote_addr=request.remote_addr or "")
        except histology.HistologyError as exc:
            error = str(exc)
        else:
            if len(found) == 1:
                return redirect(url_for("histology.referral_page", key=found[0]["key"]))
            if not found:
                error = ("No stored referral has this reference: check it against the pathology report (the e-RS "
                         "UBRN has 12 digits; a GP's reference is as on the request), or import the CSV instead.")
    return render_template("histology_find.html", found=found, error=error, typed=typed), (422 if error else 200)


@bp.route("/histology/import", methods=["GET", "POST"])
@role_required("dermatologist", "admin")
def import_page():
    """The CSV import: the form, and after an upload what was stored and each row not stored with its reason."""
    result, error = None, None
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            error = "Choose the CSV file the pathology system exported."
        else:
            try:
                result = histology.import_csv(get_store().conn, upload.read(histology.MAX_IMPORT_BYTES + 1),
                                              current_user.username, current_user.role,
                                              remote_addr=request.remote_addr or "")
            except histology.HistologyError as exc:
                error = str(exc)
    return render_template("histology_import.html", result=result, error=error, columns=histology.CSV_COLUMNS,
                           confirm_types=histology.CONFIRM_TYPES), (422 if error else 200)
