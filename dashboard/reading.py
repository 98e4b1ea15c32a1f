"""The referral review page and its forms: read every lesion, sign a report per lesion, add addenda.

URLs name a referral by its key (the referral's UUID, or a version-1 case's UUID), never by a patient
identifier. Opening the page claims the referral for the reader (:mod:`dashboard.claims`); signing needs
the claim. Every form carries the CSRF token and the referral's reading version: a form sent twice, or
after someone else signed, is refused with a message and nothing is overwritten. Writes go through
:mod:`dashboard.reports` only; every view and signature is audited.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from . import audit, claims, readhooks, readnext, referralview, reports
from .auth import role_required
from .db import get_store

bp = Blueprint("reading", __name__)


def _settings():
    return reports.settings_of(current_app.config.get("READING"))


def _resolved_or_404(key: str) -> dict:
    resolved = referralview.resolve(get_store(), key)
    if resolved is None:
        abort(404)
    return resolved


def _render(resolved: dict, *, claim=None, error: str | None = None, error_case: str | None = None,
            form: dict | None = None, status: int = 200):
    ctx = referralview.page(get_store(), resolved, current_user.username, _settings())
    if claim is None:
        claim = claims.holder(get_store().conn, resolved["key"])
    return render_template("referral.html", **ctx, referral_key=resolved["key"], claim=claim, error=error,
                           error_case=error_case, form=form or {}, diagnosis_options=reports.diagnosis_options(),
                           diagnosis_options_form=reports.diagnosis_options((form or {}).get("diagnosis")),
                           management=reports.MANAGEMENT, kinds=reports.KINDS, states=reports.STATES,
                           diagnosis_name=reports.diagnosis_name), status


@bp.route("/referrals/<key>")
@role_required("dermatologist")
def referral_page(key: str):
    """A referral: every lesion with all its views side by side, earlier images, classifier, history, reports."""
    resolved = referralview.resolve(get_store(), key)
    if resolved is None:
        case = get_store().get_case(key) if referralview.normal_key(key) else None
        if case is not None:  # a version-2 case's id: its referral's page
            return redirect(url_for("reading.referral_page", key=case["referral_id"]))
        abort(404)
    claim = claims.claim_on_open(resolved["key"])
    audit.record("referral.view", resolved["key"], f"{len(resolved['cases'])} lesions")
    return _render(resolved, claim=claim)


def _case_of(resolved: dict, case_id: str) -> dict:
    for case in resolved["cases"]:
        if case["case_id"] == case_id:
            return case
    abort(404)


@bp.route("/referrals/<key>/lesions/<case_id>/report", methods=["POST"])
@role_required("dermatologist")
def sign_report(key: str, case_id: str):
    """Sign the reader's report on one lesion (diagnosis, management, free text); then back to the referral."""
    resolved = _resolved_or_404(key)
    case = _case_of(resolved, case_id)
    f = request.form
    store = get_store()
    fitz = resolved["referral"]["fitzpatrick"] if resolved["referral"] else None
    try:
        done = reports.sign(store.conn, resolved["key"], case, resolved["expected"], current_user.username,
                            f.get("version"), f.get("diagnosis", ""), f.get("management", ""), f.get("text", ""),
                            _settings(), fitzpatrick=fitz, case_ids=[c["case_id"] for c in resolved["cases"]])
    except reports.ReportError as exc:
        audit.record("report.refused", resolved["key"], f"case {case_id}: {exc}"[:900])
        status = 409 if isinstance(exc, (reports.StaleForm, reports.ClaimRefused)) else 422
        return _render(resolved, error=str(exc), error_case=case_id, form=dict(f), status=status)
    audit.record("report.sign", resolved["key"], f"case {case_id}: {done.kind} read (report {done.report_id})"
                 + (", second read needed" if done.second_read else ""))
    message = f"{reports.KINDS[done.kind]} signed by {current_user.username}."
    if done.second_read:
        message += " A second, independent read is needed before this lesion's report is final."
    flash(message)
    if done.completed:
        audit.record("referral.signed", resolved["key"], "every lesion's report is final")
        for problem in readhooks.on_signed(store, resolved["key"]):
            flash(f"The referral is signed, but a follow-up step failed: {problem}", "error")
    return redirect(url_for("reading.referral_page", key=resolved["key"]) + f"#lesion-{case_id}")


@bp.route("/referrals/<key>/lesions/<case_id>/addendum", methods=["POST"])
@role_required("dermatologist")
def add_addendum(key: str, case_id: str):
    """Add an addendum to a lesion's signed report (the report itself never changes)."""
    resolved = _resolved_or_404(key)
    _case_of(resolved, case_id)
    f = request.form
    try:
        addendum_id = reports.add_addendum(get_store().conn, resolved["key"], case_id, current_user.username,
                                           f.get("version"), f.get("addendum", ""))
    except reports.ReportError as exc:
        audit.record("addendum.refused", resolved["key"], f"case {case_id}: {exc}"[:900])
        status = 409 if isinstance(exc, (reports.StaleForm, reports.ClaimRefused)) else 422
        return _render(resolved, error=str(exc), error_case=case_id, form=dict(f), status=status)
    audit.record("addendum.add", resolved["key"], f"case {case_id}: addendum {addendum_id}")
    store = get_store()
    if not reports.referral_signed(store.conn, resolved["key"]):
        flash("Addendum added.")       # no letter yet: the letters made at sign-off will hold it
        return redirect(url_for("reading.referral_page", key=resolved["key"]) + f"#lesion-{case_id}")
    problems = readhooks.on_amended(store, resolved["key"])
    for problem in problems:
        flash(f"The addendum is kept, but a follow-up step failed: {problem}", "error")
    if problems:
        flash("Addendum added.")
    else:
        audit.record("letters.amended", resolved["key"], f"GP letter made again with addendum {addendum_id}")
        flash("Addendum added. The GP letter was made again with it (marked as amended).")
    return redirect(url_for("reading.referral_page", key=resolved["key"]) + f"#lesion-{case_id}")


@bp.route("/referrals/<key>/next")
@role_required("dermatologist")
def next_referral(key: str):
    """The next referral to read after this one (worklist order), without going back to the list."""
    nxt = readnext.next_key(get_store().conn, referralview.normal_key(key) or "", current_user.username,
                             _settings())
    if nxt is None:
        flash("No other referral is waiting to be read.")
        return redirect(url_for("dashboard.case_list"))
    return redirect(url_for("reading.referral_page", key=nxt))


@bp.route("/model-card")
@role_required("dermatologist")
def model_card():
    """The classifier's model card (what it was trained on, how well it does, where it must not be trusted)."""
    path, text = referralview.model_card_text(_settings())
    if text is None:
        abort(404)
    return render_template("model_card.html", text=text, name=path.name)
