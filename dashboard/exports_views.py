"""The hand-over to the hospital on the dashboard: its state per referral, the FHIR Bundle, the IT page.

- ``_pacs.html`` (included on the referral page with ``referral_key``): the PACS and FHIR state of the
  referral (queued / sent / failed with the reason and the next try), a "Send again" button and the
  Bundle download.
- ``GET /referrals/<key>/fhir.json``: the referral's FHIR transaction Bundle (dermatologists; audited).
- ``POST /referrals/<key>/hand-over``: queue it again now (dermatologists, IT; audited).
- ``GET /hand-over``: the IT page: counts per destination and state, and every referral not sent yet,
  by referral key with its reason; never an image or a patient identifier.

Views read through :mod:`dashboard.pacs` and :mod:`dashboard.store.exports` and write only through
:func:`dashboard.pacs.queue_referral`.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for

from . import audit, pacs
from .auth import role_required
from .db import get_store
from .exportfacts import ExportRefused, export_facts
from .store import exports as table

bp = Blueprint("hand_over", __name__)

TARGET_NAMES = {"pacs": "PACS (DICOM images)", "fhir": "Record system (FHIR report)"}
STATE_NAMES = {"queued": "Queued", "sent": "Sent", "failed": "Failed"}


def _key(key: str) -> str:
    try:
        return str(uuid.UUID(key))
    except ValueError:
        abort(404)


def hand_over_context(key: str) -> dict:
    """What ``_pacs.html`` shows: per destination whether it is configured and the referral's row."""
    rows = table.states(get_store().conn, key)
    on = pacs.configured(current_app.config.get("PACS"), current_app.config.get("FHIR"))
    return {"targets": [{"target": t, "name": TARGET_NAMES[t], "configured": t in on, "row": rows.get(t)}
                        for t in table.TARGETS]}


@bp.app_context_processor
def _helpers() -> dict:
    return {"hand_over_context": hand_over_context, "HAND_OVER_STATES": STATE_NAMES}


@bp.get("/referrals/<key>/fhir.json")
@role_required("dermatologist")
def fhir_bundle(key: str):
    """The referral's FHIR R4 transaction Bundle as a download (409 with the reason while it cannot be made)."""
    from .fhir import bundle_json

    key = _key(key)
    cfg = current_app.config.get("PACS")
    endpoint = cfg.url if cfg is not None and cfg.enabled and cfg.protocol == "stow-rs" else None
    try:
        body = bundle_json(export_facts(get_store().conn, current_app.config["IMAGES_DIR"], key), endpoint=endpoint)
    except ExportRefused as exc:
        audit.record("export.fhir.refused", key, str(exc))
        return render_template("error.html", code=409, message=f"No FHIR Bundle: {exc}."), 409
    audit.record("export.fhir.download", key, f"{len(body)} bytes")
    return Response(body, mimetype="application/fhir+json",
                    headers={"Content-Disposition": f'attachment; filename="referral-{key[:8]}-fhir.json"'})


@bp.post("/referrals/<key>/hand-over")
@role_required("dermatologist", "it", "admin")
def send_again(key: str):
    """Queue the referral for the PACS and the FHIR server again now (a failed one, or to refresh the copies)."""
    key = _key(key)
    conn = get_store().conn
    try:
        export_facts(conn, current_app.config["IMAGES_DIR"], key)
    except ExportRefused as exc:
        audit.record("export.requeue.refused", key, str(exc))
        flash(f"Not queued: {exc}.", "error")
    else:
        queued = pacs.queue_referral(conn, key, current_app.config.get("PACS"), current_app.config.get("FHIR"),
                                     force=True)
        audit.record("export.requeue", key, ", ".join(queued) or "nothing configured")
        flash("Queued for " + (", ".join(TARGET_NAMES[t] for t in queued) or "nothing: no destination configured")
              + ".")
        pacs.kick(current_app)
    back = request.form.get("back", "")
    if back == "it":
        return redirect(url_for("hand_over.overview"))
    if "reading.referral_page" in current_app.view_functions:
        return redirect(url_for("reading.referral_page", key=key) + "#hand-over")
    return redirect(url_for("hand_over.overview"))


@bp.get("/hand-over")
@role_required("it", "admin")
def overview():
    """The IT page: the hand-over outbox by destination and state, by referral key (no image, no patient)."""
    data = table.overview(get_store().conn)
    on = pacs.configured(current_app.config.get("PACS"), current_app.config.get("FHIR"))
    return render_template("hand_over.html", **data, configured=on, target_names=TARGET_NAMES,
                           state_names=STATE_NAMES)


def init_app(app) -> None:
    """The hand-over in the app: its pages, the sign-off listener and the sender (:func:`dashboard.pacs.start`)."""
    app.register_blueprint(bp)
    pacs.start(app)
