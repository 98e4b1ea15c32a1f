"""Dashboard pages: the worklist, a case, the image store, devices and quarantine.

Images are served by their SHA-256 (``/images/<sha256>.jpg``), never by a
patient identifier; cases by their UUID. Pages carrying patient data are sent
with ``Cache-Control: no-store`` and a same-origin-only content security policy.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from flask import Blueprint, abort, redirect, render_template, request, send_file, url_for

from wire.messages import LABELS, TIER_OF_LABEL, TIERS

from .db import get_store

bp = Blueprint("dashboard", __name__)

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
PAGE_SIZE = 50

#: Human names of the classifier's labels (HAM10000 / ISIC codes).
LABEL_NAMES = {
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis-like lesion",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic naevus",
    "vasc": "Vascular lesion",
}


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
    return {"LABEL_NAMES": LABEL_NAMES, "TIERS": TIERS}


@bp.after_app_request
def _headers(resp):
    resp.headers.setdefault("Content-Security-Policy",
                            "default-src 'self'; img-src 'self'; style-src 'self'; frame-ancestors 'none'")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    if resp.mimetype == "text/html":
        resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/")
def index():
    """The start page is the worklist."""
    return redirect(url_for("dashboard.case_list"))


@bp.route("/cases")
def case_list():
    """Worklist: cases newest first (by the centre's receive time) with their risk tier."""
    page = max(request.args.get("page", 1, type=int), 1)
    store = get_store()
    cases = store.list_cases(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    total = store.count_cases()
    return render_template("cases.html", cases=cases, page=page, total=total,
                           pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1))


def probability_rows(probabilities: dict[str, float] | None) -> list[dict]:
    """Per-class rows for display, most probable first: label, name, tier and probability."""
    if not probabilities:
        return []
    rows = [{"label": lab, "name": LABEL_NAMES.get(lab, lab), "tier": TIER_OF_LABEL.get(lab, ""),
             "p": float(probabilities.get(lab, 0.0))} for lab in LABELS if lab in probabilities]
    return sorted(rows, key=lambda r: -r["p"])


@bp.route("/cases/<case_id>")
def case_page(case_id: str):
    """One case: images, per-class probabilities, risk tier, model version, quality per image, device."""
    case = get_store().get_case(case_id)
    if case is None:
        abort(404)
    return render_template("case.html", case=case, probs=probability_rows(case["probabilities"]),
                           image_probs=[probability_rows(im["classification"].probabilities)
                                        if im["classification"] else [] for im in case["images"]])


@bp.route("/images/<sha256>.jpg")
def image(sha256: str):
    """An image from the content-addressed store, only if a committed case uses it."""
    if not _SHA_RE.match(sha256):
        abort(404)
    store = get_store()
    path = store.image_path(sha256)
    if not store.image_known(sha256) or not path.exists():
        abort(404)
    resp = send_file(path, mimetype="image/jpeg", max_age=0, etag=sha256)
    resp.headers["Cache-Control"] = "private, max-age=86400, immutable"
    return resp


@bp.route("/devices")
def devices():
    """Known kiosks: site, state, last seen, versions."""
    return render_template("devices.html", devices=get_store().list_devices())


@bp.route("/quarantine")
def quarantine():
    """Messages the ingest refused, with the reason."""
    return render_template("quarantine.html", items=get_store().list_quarantine(200))


@bp.route("/healthz")
def healthz():
    """Liveness and a case count, as JSON."""
    return {"ok": True, "cases": get_store().count_cases()}
