"""Dashboard pages: the worklist, a case and its decision, the image store, devices and quarantine.

Images are served by their SHA-256 (``/images/<sha256>.jpg``), never by a
patient identifier; cases by their UUID. Worklist, cases, images and decisions
are for the ``dermatologist`` role only; kiosks and quarantine (no patient data)
for ``it`` and ``admin``. Every case view, image view and decision is written to
the audit log. Headers and CSRF: :mod:`dashboard.security`.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from wire.messages import LABEL_NAMES, LABELS, TIER_OF_LABEL, TIERS

from . import audit, casefacts, claims, review, worklist_views
from .auth import home_url, public, role_required
from .db import get_store
from .store import summary
from .users import ROLE_NAMES, ROLES

bp = Blueprint("dashboard", __name__)

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")



@bp.app_template_filter("when")
def format_when(value: str | datetime | None) -> str:
    """Render an ISO timestamp as ``YYYY-MM-DD HH:MM:SS UTC`` (blank when missing)."""
    if not value:
        return ""
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if dt.utcoffset() is not None:
        dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_filter("percent")
def format_percent(value: float | None) -> str:
    """Render a probability as a percentage with one decimal."""
    return "" if value is None else f"{100 * value:.1f} %"


@bp.app_context_processor
def _globals() -> dict:
    return {"LABEL_NAMES": LABEL_NAMES, "TIERS": TIERS, "ROLE_NAMES": ROLE_NAMES, "OUTCOMES": review.OUTCOMES,
            "OUTCOME_SHORT": review.OUTCOME_SHORT}


@bp.route("/")
@role_required(*ROLES)
def index():
    """The start page: the role's home (worklist, fleet or users)."""
    return redirect(home_url(current_user.role))


@bp.route("/cases")
@role_required("dermatologist")
def case_list():
    """The referral worklist: most severe lesion first, then the FDS clock; filters and search
    (:mod:`dashboard.worklist_views`)."""
    return worklist_views.render_worklist()


@bp.route("/cases/export.csv")
@role_required("dermatologist")
def export_decisions():
    """Decided cases with their latest decision as CSV (for letters to the GPs); recorded as an export."""
    rows = review.decided_rows(get_store().conn)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(review.EXPORT_COLUMNS)
    writer.writerows([review.csv_safe(v) for v in row] for row in rows)
    audit.record("export", "decisions.csv", f"{len(rows)} decided cases")
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    resp = Response(out.getvalue(), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="dermkiosk-decisions-{day}.csv"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def probability_rows(probabilities: dict[str, float] | None) -> list[dict]:
    """Per-class rows for display, most probable first: label, name, tier and probability."""
    if not probabilities:
        return []
    rows = [{"label": lab, "name": LABEL_NAMES.get(lab, lab), "tier": TIER_OF_LABEL.get(lab, ""),
             "p": float(probabilities.get(lab, 0.0))} for lab in LABELS if lab in probabilities]
    return sorted(rows, key=lambda r: -r["p"])


def _case_or_404(case_id: str) -> dict:
    case = get_store().get_case(case_id)
    if case is None:
        abort(404)
    return case


def referral_context(case: dict) -> dict:
    """The case page's schema-version-2 parts: patient, referral, consents, lesion, other lesions, notices."""
    store = get_store()
    referral = store.get_referral(case["referral_id"]) if case.get("referral_id") else None
    ctx = {"referral": None, "notices": casefacts.notices(case, referral),
           "overrides": [casefacts.override_text(im) for im in case["images"]]}
    if referral is not None:
        lesions = store.referral_cases(referral["referral_id"])
        ctx.update(referral=referral, patient=casefacts.patient(referral), ref=casefacts.referral_lines(referral),
                   consents=casefacts.consents(referral), lesion=casefacts.lesion(case),
                   others=[c for c in lesions if c["case_id"] != case["case_id"]], received=len(lesions))
    return ctx


def _render_case(case: dict, error: str | None = None, form: dict | None = None, status: int = 200, claim=None):
    key = summary.key_of_case(get_store().conn, case["case_id"])
    if claim is None:
        claim = claims.holder(get_store().conn, key)
    return render_template("case.html", case=case, probs=probability_rows(case["probabilities"]),
                           referral_key=key, claim=claim,
                           **referral_context(case),
                           image_probs=[probability_rows(im["classification"].probabilities)
                                        if im["classification"] else [] for im in case["images"]],
                           decisions=review.decisions(get_store().conn, case["case_id"]),
                           outcomes=review.OUTCOMES, error=error, form=form or {}), status


@bp.route("/cases/<case_id>")
@role_required("dermatologist")
def case_page(case_id: str):
    """One case: images, per-class probabilities, risk tier, model, quality per image, device, decisions."""
    case = _case_or_404(case_id)
    audit.record("case.view", case["case_id"])
    claim = claims.claim_on_open(summary.key_of_case(get_store().conn, case["case_id"]))
    return _render_case(case, claim=claim)


@bp.route("/cases/<case_id>/decision", methods=["POST"])
@role_required("dermatologist")
def decide(case_id: str):
    """Record the logged-in dermatologist's decision on a case (outcome and note), then show the case."""
    case = _case_or_404(case_id)
    outcome, note = request.form.get("outcome", ""), request.form.get("note", "")
    try:
        claims.require_claim(summary.key_of_case(get_store().conn, case["case_id"]), current_user.username)
    except claims.ClaimError as exc:
        audit.record("decision.refused", case["case_id"], "not the claim's holder")
        return _render_case(case, error=str(exc), form={"outcome": outcome, "note": note}, status=409)
    try:
        decision_id = review.record(get_store().conn, case["case_id"], current_user.username, outcome, note)
    except review.DecisionError as exc:
        return _render_case(case, error=str(exc), form={"outcome": outcome, "note": note}, status=422)
    audit.record("decision.record", case["case_id"], f"{outcome} (decision {decision_id})")
    flash(f"Decision recorded: {review.OUTCOMES[outcome]}.")
    return redirect(url_for("dashboard.case_page", case_id=case["case_id"]) + "#decision")


@bp.route("/images/<sha256>.jpg")
@role_required("dermatologist")
def image(sha256: str):
    """An image from the content-addressed store, only if a committed case uses it."""
    if not _SHA_RE.match(sha256):
        abort(404)
    store = get_store()
    path = store.image_path(sha256)
    if not store.image_known(sha256) or not path.exists():
        abort(404)
    cases = [r[0] for r in store.conn.execute("SELECT DISTINCT case_id FROM case_images WHERE sha256 = ?",
                                              (sha256,))]
    audit.record("image.view", sha256, "case " + ", ".join(cases))
    resp = send_file(path, mimetype="image/jpeg", max_age=0, etag=sha256, conditional=False)
    resp.headers["Cache-Control"] = "no-store"  # a patient's photograph: not kept in a shared PC's cache
    return resp


@bp.route("/devices")
@role_required("it", "admin")
def devices():
    """Registered kiosks (state, last seen, versions), unregistered ones, and the register form (admin)."""
    from .registry_views import devices_page

    return devices_page()


@bp.route("/quarantine")
@role_required("it", "admin")
def quarantine():
    """Messages the ingest refused, with the reason (and, for an admin, the payload to download)."""
    from .registry_views import quarantine_page

    return quarantine_page()


@bp.route("/healthz")
@public
def healthz():
    """Liveness and a case count, as JSON (no session needed: no patient data, for probes)."""
    return {"ok": True, "cases": get_store().count_cases()}
