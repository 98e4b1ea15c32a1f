"""Download a signed referral's letters: ``/referrals/<key>/letters/gp.pdf`` and ``.../patient.pdf``.

Dermatologists only; every download is audited. The URL carries the referral key (a UUID), never a
patient identifier, and so does the file name offered to the browser. A referral that is not signed
off is refused with a message (409) and nothing is made. The include ``_letters.html`` (on the
referral page) lists the letters, or says why there are none yet.
"""

from __future__ import annotations

import io
import uuid

from flask import Blueprint, abort, current_app, render_template, send_file

from . import audit, letters
from .auth import role_required
from .db import get_store
from .handover import NotSigned
from .store import handover as table

bp = Blueprint("letters", __name__)


def _key(key: str) -> str:
    try:
        return str(uuid.UUID(key))
    except ValueError:
        abort(404)


@bp.get("/referrals/<key>/letters/<kind>.pdf")
@role_required("dermatologist")
def download(key: str, kind: str):
    """The newest revision of one letter as a PDF attachment."""
    key = _key(key)
    if kind not in letters.KINDS:
        abort(404)
    try:
        found = letters.letter(get_store().conn, key, kind, current_app.config.get("SERVICE"))
    except NotSigned as exc:
        audit.record("letter.refused", key, kind)
        return render_template("error.html", code=409, message=f"No {letters.KINDS[kind]} yet. {exc}"), 409
    audit.record("letter.download", key, f"{kind} revision {found['revision']}")
    return send_file(io.BytesIO(found["pdf"]), mimetype="application/pdf", as_attachment=True,
                     download_name=f"{kind}-letter-{key[:8]}-r{found['revision']}.pdf")


def letters_context(key: str) -> dict:
    """What ``_letters.html`` shows: the stored letters and the outcome message's delivery state."""
    conn = get_store().conn
    return {"letters": table.letter_list(conn, key), "outcome_state": table.outcome_state(conn, key)}


@bp.app_context_processor
def _helpers() -> dict:
    return {"letters_context": letters_context, "LETTER_KINDS": letters.KINDS}
