"""The fleet page: every registered kiosk's presence, health, 24-hour history, alerts and updates, for IT.

The data is recorded by the ingest (:mod:`dashboard.fleetdata`, re-exported here). The page
``/fleet`` (roles ``it`` and ``admin``) lists the kiosks of the registry (:mod:`dashboard.registry`);
a kiosk heard of but not registered is never listed as a kiosk: it heads the page as an alert.
Per kiosk it adds to the health rules (:mod:`dashboard.alerts`) its quarantined messages (rate
within ``quarantine_window_s``, malformed health or status) and its certificate's expiry from the
PKI's index (``[registry] pki_dir``).

The page also shows the service's own alerts (:mod:`dashboard.servicereport.monitor`: the classifier's cancer
calls drifting per hub, its sensitivity against histology below the floor, a hub's quality overrides jumping,
referrals nearing the 28-day standard unread), on the thresholds of the ``[monitoring]`` config section, and the
centre's own free disk space (images and database), read
by the dashboard process itself, so that it is known even when the ingest cannot
record anything. Charts are inline SVG drawn on the server (:mod:`dashboard.charts`): no script,
no external resource (CSP ``default-src 'self'``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from flask import Blueprint, current_app, render_template

from . import registry
from .clock import today_in_england
from .servicereport import monitor
from .alerts import DeviceState, FleetConfig, backlog_age_s, disk_used_pct, evaluate, presence
from .charts import sparkline  # noqa: F401  (re-exported)
from .fleetdata import (INGEST_STALE_S, SCHEMA, _dt, centre_disks, device_states, ensure_schema,  # noqa: F401
                        handle_device_message, history, ingest_states, prune_history, quarantine_by_device,
                        record_health, record_ingest_alive, record_ingest_stopped, record_update_result,
                        record_update_sent, recent_updates)

#: Charted series: (column, title, unit).
SERIES = (("cpu_temp_c", "CPU temperature", "°C", "{:.1f}"), ("disk_used_pct", "Disk used", "%", "{:.0f}"),
          ("outbox_depth", "Cases waiting", "", "{:.0f}"), ("load1", "Load", "", "{:.2f}"))

bp = Blueprint("fleet", __name__)


def fleet_config() -> FleetConfig:
    """The app's fleet settings (``FLEET`` in the Flask config; defaults when absent)."""
    cfg = current_app.config.get("FLEET")
    if isinstance(cfg, dict):
        cfg = FleetConfig(**cfg)
    return cfg or FleetConfig()


def registry_config() -> registry.RegistryConfig:
    """The app's registry settings (``REGISTRY`` in the Flask config; defaults when absent)."""
    cfg = current_app.config.get("REGISTRY")
    if isinstance(cfg, dict):
        cfg = registry.RegistryConfig(**cfg)
    return cfg or registry.RegistryConfig()


def kiosk_states(store, now: datetime, t: FleetConfig, pki_dir: Path | None = None) -> list[DeviceState]:
    """Every registered kiosk's state: presence and health (a kiosk never heard from counts from its
    registration), quarantined messages within the window, and its certificate from the PKI index."""
    ensure_schema(store)
    heard = {d.device: d for d in device_states(store)}
    quarantined = quarantine_by_device(store, now - timedelta(seconds=t.quarantine_window_s))
    certs = registry.live_kiosk_certs(registry.pki_entries(pki_dir))
    out = []
    for k in registry.list_kiosks(store.conn):
        d = heard.get(k.device) or DeviceState(device=k.device, site=k.site, last_seen=k.registered_at)
        q = quarantined.get(k.device, {})
        expires, problem = registry.certificate_status(k, certs.get(k.device, []), now) if pki_dir else (None, None)
        out.append(replace(d, site=k.site, quarantined=q.get("count", 0), malformed=q.get("malformed", 0),
                           quarantine_reason=q.get("reason", ""), cert_expires_at=expires, cert_problem=problem))
    return out


def fleet_rows(store, now: datetime, t: FleetConfig, with_history: bool = True,
               pki_dir: Path | None = None) -> list[dict]:
    """What the page and ``/metrics`` show per registered kiosk: state, presence, figures, alerts, charts."""
    rows = []
    since = now - timedelta(hours=t.history_hours)
    for d in kiosk_states(store, now, t, pki_dir):
        row = {"d": d, "h": d.health, "presence": presence(d, now, t), "alerts": evaluate(d, now, t),
               "disk_used_pct": disk_used_pct(d.health) if d.health else None,
               "backlog_age_s": backlog_age_s(d, now), "charts": []}
        if with_history:
            hist = history(store, d.device, since)
            limits = {"cpu_temp_c": t.temp_c, "disk_used_pct": t.disk_used_pct}
            for col, title, unit, fmt in SERIES:
                pts = [(_dt(r["received_at"]).timestamp(), r[col]) for r in hist]
                last = next((v for _, v in reversed(pts) if v is not None), None)
                row["charts"].append({"title": title, "unit": unit,
                                      "last": None if last is None else fmt.format(last),
                                      "svg": sparkline(pts, since.timestamp(), now.timestamp(), unit,
                                                       limit=limits.get(col))})
        rows.append(row)
    return rows


def app_centre_disks(t: FleetConfig) -> list[dict]:
    """:func:`centre_disks` of this app's image folder and database folder."""
    cfg = current_app.config
    return centre_disks({"images": cfg["IMAGES_DIR"], "database": Path(cfg["DATABASE"]).parent}, t.disk_used_pct)


def _fleet_page():
    from .db import get_store

    now = datetime.now(timezone.utc)
    t = fleet_config()
    store = get_store()
    reg = registry_config()
    rows = fleet_rows(store, now, t, pki_dir=reg.pki_dir)
    strangers = registry.unregistered(store.conn)
    counts = {"online": sum(r["presence"] == "online" for r in rows),
              "down": sum(r["presence"] in ("offline", "stale") for r in rows),
              "alerts": sum(len(r["alerts"]) for r in rows) + len(strangers)}
    ingests = ingest_states(store, now)
    disks = app_centre_disks(t)
    service = monitor.evaluate(store.conn, today_in_england(now),
                               current_app.config.get("MONITORING") or monitor.MonitoringConfig())
    return render_template("fleet.html", rows=rows, now=now, t=t, counts=counts, strangers=strangers,
                           service_alerts=service.alerts, service_titles=monitor.TITLES,
                           require=reg.require_registration,
                           updates=recent_updates(store), ingests=ingests, disks=disks,
                           ingest_running=any(i["state"] == "running" for i in ingests))


def _protect(view):
    """``role_required("it", "admin")`` from dashboard.auth when it is there (log-in)."""
    try:
        from .auth import role_required
    except ImportError:  # pragma: no cover - before log-in existed
        return view
    return role_required("it", "admin")(view)


bp.add_url_rule("/fleet", "fleet", _protect(_fleet_page))


@bp.app_template_filter("gib")
def format_bytes(n: int | None) -> str:
    """``512 MiB``, ``12.3 GiB``, ``1.5 TiB`` (blank when missing)."""
    if n is None:
        return ""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / (1 << 20):.0f} MiB"


@bp.app_template_filter("dur")
def format_duration(seconds: float | None) -> str:
    """``42 s``, ``5 min``, ``3.2 h``, ``2.1 d`` (blank when missing)."""
    if seconds is None:
        return ""
    s = abs(float(seconds))
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"
