"""The ``/reports`` page: the service report for dermatologists and admins, its plots and its CSV tables.

- ``GET /reports?from=YYYY-MM-DD&to=YYYY-MM-DD`` (default: the last 12 months): the service's alerts firing now
  (:mod:`.monitor`) and the report, figures whole;
- ``GET /reports/plots/<name>.png?from=..&to=..``: a plot, drawn server-side (the CSP stays ``img-src 'self'``);
- ``GET /reports/<name>.csv?from=..&to=..``: a table with small cells suppressed (an export; audited).

Reports are computed on request and kept a minute per period, so the page's plots reuse the page's figures.
Read-only: nothing here writes the store but the audit entries.
"""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for

from .. import audit
from ..auth import role_required
from ..clock import today_in_england
from ..db import get_store
from . import export, monitor, plots
from .compute import compute
from .data import lesion_rows

bp = Blueprint("service_report", __name__)
CACHE_S = 60.0
MAX_DAYS = 3 * 366
_cache: dict[tuple, tuple[float, object, float]] = {}
_lock = threading.Lock()


class PeriodError(ValueError):
    """The period asked for is not usable; ``str()`` says what to fix."""


def period(args) -> tuple[date, date]:
    """``from`` and ``to`` from the query (default: the 365 days up to today); :class:`PeriodError` names the fix."""
    today = today_in_england()
    try:
        end = date.fromisoformat(args.get("to") or today.isoformat())
        start = date.fromisoformat(args.get("from") or (end - timedelta(days=364)).isoformat())
    except ValueError:
        raise PeriodError("From and To must be dates (YYYY-MM-DD).") from None
    if start > end:
        raise PeriodError("From must be on or before To.")
    if (end - start).days > MAX_DAYS:
        raise PeriodError("A report covers at most three years: shorten the period.")
    return start, end


def report_for(start: date, end: date):
    """The report for the period (computed, or from the minute-long cache) and the seconds it took."""
    key = (current_app.config["DATABASE"], start, end)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit and now - hit[0] < CACHE_S:
            return hit[1], hit[2]
    t0 = time.perf_counter()
    rep = compute(lesion_rows(get_store().conn, start, end), start, end,
                  fds_days=getattr(current_app.config.get("WORKLIST"), "fds_days", 28))
    took = time.perf_counter() - t0
    with _lock:
        for k in [k for k, v in _cache.items() if now - v[0] >= CACHE_S]:
            del _cache[k]
        _cache[key] = (now, rep, took)
    return rep, took


@bp.get("/reports")
@role_required("dermatologist", "admin")
def page():
    """The report page for the period asked (the last 12 months by default)."""
    try:
        start, end = period(request.args)
    except PeriodError as exc:
        return render_template("reports.html", r=None, error=str(exc), start=request.args.get("from", ""),
                               end=request.args.get("to", "")), 422
    rep, took = report_for(start, end)
    watch = monitor.evaluate(get_store().conn, today_in_england(),
                             current_app.config.get("MONITORING") or monitor.MonitoringConfig())
    q = {"from": start.isoformat(), "to": end.isoformat()}
    src = {name: url_for("service_report.plot", name=name, **q) for name in plots.PLOTS}
    return render_template("reports.html", **export.context(rep, False, src), seconds=took, error=None,
                           service_alerts=watch.alerts, service_titles=monitor.TITLES,
                           start=q["from"], end=q["to"], csv_names=[n[:-4] for n in export.CSV_NAMES])


@bp.get("/reports/plots/<name>.png")
@role_required("dermatologist", "admin")
def plot(name: str):
    """One plot of the period's report as PNG."""
    if name not in plots.PLOTS:
        abort(404)
    try:
        start, end = period(request.args)
    except PeriodError:
        abort(400)
    rep, _ = report_for(start, end)
    return Response(plots.PLOTS[name](rep), mimetype="image/png", headers={"Cache-Control": "private, max-age=60"})


@bp.get("/reports/<name>.csv")
@role_required("dermatologist", "admin")
def csv_file(name: str):
    """One of the report's tables as CSV, small cells suppressed; the download is audited."""
    try:
        start, end = period(request.args)
    except PeriodError:
        abort(400)
    rep, _ = report_for(start, end)
    tables = export.csv_tables(rep, suppress=True)
    if f"{name}.csv" not in tables:
        abort(404)
    audit.record("report.export", f"{name}.csv", f"{start.isoformat()} to {end.isoformat()}")
    return Response(tables[f"{name}.csv"], mimetype="text/csv", headers={
        "Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="service-{name}-{start.isoformat()}-{end.isoformat()}.csv"'})
