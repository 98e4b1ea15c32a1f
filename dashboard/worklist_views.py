"""The worklist's pages: the referral worklist (``/cases``), search (a POST), and a referral's claim buttons.

The worklist is served at ``/cases`` (endpoint ``dashboard.case_list``, which
calls :func:`render_worklist`). Its filters are in the query string (hub, tier,
status, waiting time, flags: none of them identifies a patient); a search by NHS
number or referral reference is a POST to ``/cases/search`` whose answer is the
page itself, so the identifier never appears in a URL, a log line or the
browser's history. Every view and every search is written to the audit log,
each search naming the referrals it found by their keys (UUIDs), not the text
typed. Claims change only through :mod:`dashboard.claims`.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from . import audit, claims, worklist
from .auth import role_required
from .db import get_store
from .store import summary
from .worklistconfig import WorklistConfig

bp = Blueprint("worklist", __name__)

#: The reading engineer's referral page, when installed (``/referrals/<key>``).
REFERRAL_ENDPOINT = "reading.referral_page"


def settings() -> WorklistConfig:
    """The app's ``[worklist]`` settings (defaults when the app was made without them)."""
    return current_app.config.get("WORKLIST") or WorklistConfig()


def referral_url(key: str, first_case_id: str | None = None) -> str:
    """Where a referral opens: the referral page, or (without one) its first lesion's case page."""
    if REFERRAL_ENDPOINT in current_app.view_functions:
        return url_for(REFERRAL_ENDPOINT, key=key)
    if first_case_id is None:
        row = get_store().conn.execute(
            "SELECT case_id FROM cases WHERE referral_id = ?1 OR (referral_id IS NULL AND case_id = ?1) "
            "ORDER BY lesion_index LIMIT 1", (key,)).fetchone()
        first_case_id = row[0] if row else None
    return url_for("dashboard.case_page", case_id=first_case_id) if first_case_id else url_for("dashboard.case_list")


@bp.app_context_processor
def _globals() -> dict:
    return {"referral_url": referral_url}


def _with_links(rows: list[dict]) -> list[dict]:
    """Each row's ``href`` (the referral page's URL built once for the page, not by ``url_for`` per row)."""
    if REFERRAL_ENDPOINT in current_app.view_functions:
        pattern = url_for(REFERRAL_ENDPOINT, key="00000000-0000-0000-0000-000000000000")
        for r in rows:
            r["href"] = pattern.replace("00000000-0000-0000-0000-000000000000", r["referral_key"])
    else:
        for r in rows:
            r["href"] = referral_url(r["referral_key"], r["first_case_id"])
    return rows


def _page(f: worklist.Filters, rows: list[dict], *, problems=(), search: dict | None = None, status: int = 200):
    conn = get_store().conn
    cfg = settings()
    rows = _with_links(rows)
    counts = worklist.counts(conn, f, current_user.username, cfg)
    total = counts[f.show]
    return render_template(
        "cases.html", rows=rows, f=f, counts=counts, total=total, tabs=worklist.STATUS_TABS,
        statuses=summary.STATUSES, tiers=worklist.TIERS, waiting=worklist.waiting_options(cfg),
        hubs=worklist.hubs(conn), alerts=worklist.clock_alerts(conn, cfg), problems=list(problems), search=search,
        cfg=cfg, pages=max((total + cfg.page_size - 1) // cfg.page_size, 1)), status


def render_worklist():
    """The worklist page for the query string's filters (the body of ``GET /cases``)."""
    conn = get_store().conn
    cfg = settings()
    f, problems = worklist.parse_filters(request.args, cfg, worklist.hubs(conn))
    rows = worklist.page(conn, f, current_user.username, cfg)
    audit.record("worklist.view", f.show, f"page {f.page}, {len(rows)} referrals"
                 + (f", filters {worklist_filters_text(f)}" if f.narrowed else ""))
    return _page(f, rows, problems=problems)


def worklist_filters_text(f: worklist.Filters) -> str:
    """The filters for the audit log: ``hub=site-1 tier=cancer mine`` (no patient identifier)."""
    parts = [f"hub={f.hub}" if f.hub else "", f"tier={f.tier}" if f.tier else "",
             f"waiting={f.waiting}" if f.waiting else "", "fitzpatrick-v-vi" if f.fitz else "", "mine" if f.mine else ""]
    return " ".join(p for p in parts if p)


@bp.route("/cases/search", methods=["POST"])
@role_required("dermatologist")
def search():
    """Search referrals by NHS number or referral reference (typed in a POST form); audited, results on the page."""
    conn = get_store().conn
    text = request.form.get("q", "")
    try:
        kind, rows = worklist.search(conn, text, settings())
    except worklist.SearchError as exc:
        audit.record("worklist.search", "", "refused: neither an NHS number nor a referral reference")
        return _page(worklist.Filters(), [], search={"error": str(exc), "text": text[:64]}, status=422)
    keys = [r["referral_key"] for r in rows]
    audit.record("worklist.search", ",".join(keys[:5]) + (" ..." if len(keys) > 5 else ""),
                 f"by {kind}: {len(rows)} referral{'' if len(rows) == 1 else 's'}")
    return _page(worklist.Filters(show="all"), rows, search={"kind": kind, "count": len(rows), "text": text[:64]})


def _referral_key_or_404(key: str) -> str:
    row = summary.get(get_store().conn, key)
    if row is None:
        abort(404)
    return row["referral_key"]


@bp.route("/referrals/<key>/claim/release", methods=["POST"])
@role_required("dermatologist")
def release(key: str):
    """Give up one's claim on a referral; back to the worklist."""
    key = _referral_key_or_404(key)
    try:
        claims.release(get_store().conn, key, current_user.username, role=current_user.role,
                       remote_addr=request.remote_addr or "")
    except claims.ClaimError as exc:
        flash(str(exc), "error")
        return redirect(referral_url(key))
    flash("Referral released: another reader can claim it now.")
    return redirect(url_for("dashboard.case_list"))


@bp.route("/referrals/<key>/claim/take-over", methods=["POST"])
@role_required("dermatologist")
def take_over(key: str):
    """Take a referral's claim from the reader who holds it; back to the referral."""
    key = _referral_key_or_404(key)
    before = claims.holder(get_store().conn, key)
    claims.take_over(get_store().conn, key, current_user.username, minutes=claims.claim_minutes(),
                     role=current_user.role, remote_addr=request.remote_addr or "")
    if before is not None and not before.held_by(current_user.username):
        flash(f"You took this referral over from {before.holder}; the change is in the audit log.")
    else:
        flash("You hold this referral now.")
    return redirect(referral_url(key))
