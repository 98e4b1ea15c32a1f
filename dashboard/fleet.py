"""The fleet: every kiosk's presence, health, 24-hour history, alerts and updates, for IT.

Data (recorded by the ingest, read by the page and ``/metrics``):

* ``device_health``: the latest :class:`wire.messages.Health` per kiosk, when it
  arrived (centre clock) and the kiosk's clock skew at that moment;
* ``health_history``: the figures charted on the page, kept ``history_hours``;
* ``updates``: bundles published (``python -m dashboard update publish``) and the
  kiosk's :class:`wire.messages.UpdateResult`;
* presence comes from the ``devices`` table (retained status, last will, last seen);
* ``ingest_heartbeat``: each ingest process's last sign of life (its worker loop) and the
  storage problem it is retrying, if any, so that the page says when the centre itself is
  not taking cases, and why.

The page also shows the centre's own free disk space (images and database), read
by the dashboard process itself, so that it is known even when the ingest cannot
record anything.

The page ``/fleet`` (roles ``it`` and ``admin``) draws the charts as inline SVG
on the server: no script, no external resource (CSP ``default-src 'self'``).
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from flask import Blueprint, current_app, render_template
from markupsafe import Markup, escape
from pydantic import ValidationError

from wire import topics
from wire.messages import Health, UpdateManifest, UpdateResult, from_device

from .alerts import DeviceState, FleetConfig, backlog_age_s, disk_used_pct, evaluate, presence

log = logging.getLogger("dashboard.fleet")

SCHEMA = """
CREATE TABLE IF NOT EXISTS device_health (
    device TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    received_at TEXT NOT NULL,
    skew_s REAL,
    health TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS health_history (
    device TEXT NOT NULL,
    received_at TEXT NOT NULL,
    cpu_temp_c REAL,
    disk_used_pct REAL,
    outbox_depth INTEGER,
    outbox_oldest_s REAL,
    load1 REAL,
    skew_s REAL
);
CREATE INDEX IF NOT EXISTS health_history_by_device ON health_history (device, received_at);
CREATE TABLE IF NOT EXISTS updates (
    bundle_id TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    version TEXT NOT NULL,
    sent_at TEXT,
    status TEXT NOT NULL DEFAULT 'sent',
    reason TEXT NOT NULL DEFAULT '',
    serving TEXT NOT NULL DEFAULT '',
    result_at TEXT
);
CREATE TABLE IF NOT EXISTS ingest_heartbeat (
    client_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    alive_at TEXT NOT NULL,
    stopped_at TEXT,
    problem TEXT,
    problem_since TEXT
);
"""
#: Columns added to ``ingest_heartbeat`` after its first release (added to older databases).
_HEARTBEAT_ADDED = (("problem", "TEXT"), ("problem_since", "TEXT"))
#: An ingest whose worker has not been heard for this long is shown as not running.
INGEST_STALE_S = 60.0
#: Charted series: (column, title, unit).
SERIES = (("cpu_temp_c", "CPU temperature", "°C", "{:.1f}"), ("disk_used_pct", "Disk used", "%", "{:.0f}"),
          ("outbox_depth", "Cases waiting", "", "{:.0f}"), ("load1", "Load", "", "{:.2f}"))
_PRUNE_EVERY_S = 60.0


def ensure_schema(store) -> None:
    """Create the fleet tables on this store's connection (once per connection)."""
    if not getattr(store, "_fleet_schema", False):
        store.conn.executescript(SCHEMA)
        have = {row[1] for row in store.conn.execute("PRAGMA table_info(ingest_heartbeat)")}
        for column, kind in _HEARTBEAT_ADDED:
            if column not in have:
                with store.conn:
                    store.conn.execute(f"ALTER TABLE ingest_heartbeat ADD COLUMN {column} {kind}")
        store._fleet_schema = True


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat()


def _dt(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v) if v else None


# ---------------------------------------------------------------- recording (ingest)
def record_health(store, site: str, health: Health, received_at: datetime, history_hours: float = 24.0) -> None:
    """Store a health report: latest per kiosk, a history row, last seen; prune old history."""
    ensure_schema(store)
    skew = (health.at - received_at).total_seconds()
    now = _iso(received_at)
    conn = store.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO devices (device, site, last_seen) VALUES (?,?,?) ON CONFLICT(device) DO UPDATE SET "
            "site=excluded.site, last_seen=max(last_seen, excluded.last_seen)", (health.device_id, site, now))
        if health.model_version or health.software_version:
            conn.execute("UPDATE devices SET model_version=?, software_version=? WHERE device=?",
                         (health.model_version, health.software_version, health.device_id))
        conn.execute(
            "INSERT INTO device_health (device, site, received_at, skew_s, health) VALUES (?,?,?,?,?) "
            "ON CONFLICT(device) DO UPDATE SET site=excluded.site, received_at=excluded.received_at, "
            "skew_s=excluded.skew_s, health=excluded.health WHERE excluded.received_at >= device_health.received_at",
            (health.device_id, site, now, skew, health.model_dump_json()))
        conn.execute(
            "INSERT INTO health_history VALUES (?,?,?,?,?,?,?,?)",
            (health.device_id, now, health.cpu_temp_c, disk_used_pct(health), health.outbox_depth,
             health.outbox_oldest_s, health.load1, skew))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    last = getattr(store, "_fleet_pruned", 0.0)
    if received_at.timestamp() - last > _PRUNE_EVERY_S:
        prune_history(store, received_at - timedelta(hours=history_hours))
        store._fleet_pruned = received_at.timestamp()


def record_ingest_alive(store, client_id: str, started_at: datetime, now: datetime,
                        problem: str | None = None) -> None:
    """The ingest's worker is alive (called every few seconds by it).

    ``problem`` says what it is retrying instead of storing cases (``storage unavailable: No
    space left on device``), None once storage works; the first beat of a problem records its start.
    """
    ensure_schema(store)
    with store.conn:
        store.conn.execute(
            "INSERT INTO ingest_heartbeat (client_id, started_at, alive_at, problem, problem_since) "
            "VALUES (?,?,?,?,?) ON CONFLICT(client_id) DO UPDATE SET started_at=excluded.started_at, "
            "alive_at=excluded.alive_at, stopped_at=NULL, problem=excluded.problem, "
            "problem_since=CASE WHEN excluded.problem IS NULL THEN NULL "
            "WHEN ingest_heartbeat.problem IS NULL THEN excluded.problem_since "
            "ELSE ingest_heartbeat.problem_since END",
            (client_id, _iso(started_at), _iso(now), problem, _iso(now) if problem else None))


def record_ingest_stopped(store, client_id: str, now: datetime) -> None:
    """The ingest stopped cleanly."""
    ensure_schema(store)
    with store.conn:
        store.conn.execute("UPDATE ingest_heartbeat SET stopped_at=?, alive_at=?, problem=NULL, problem_since=NULL "
                           "WHERE client_id=?",
                           (_iso(now), _iso(now), client_id))


def ingest_states(store, now: datetime, stale_after_s: float = INGEST_STALE_S) -> list[dict]:
    """Each ingest process ever recorded, with when it started and was last heard, and its state:

    ``running`` (heard within ``stale_after_s``, storing), ``blocked`` (heard, but retrying a storage
    problem instead of storing: ``problem`` and ``problem_since`` say which and since when),
    ``stopped`` (said so) or ``silent`` (killed, hung or its machine down).
    """
    ensure_schema(store)
    out = []
    for client_id, started, alive, stopped, problem, since in store.conn.execute(
            "SELECT client_id, started_at, alive_at, stopped_at, problem, problem_since FROM ingest_heartbeat "
            "ORDER BY client_id"):
        age = (now - _dt(alive)).total_seconds()
        if stopped:
            state = "stopped"
        elif age > stale_after_s:
            state = "silent"
        else:
            state = "blocked" if problem else "running"
        out.append({"client_id": client_id, "state": state, "started_at": _dt(started), "alive_at": _dt(alive),
                    "age_s": age, "problem": problem if state == "blocked" else None,
                    "problem_since": _dt(since) if state == "blocked" else None})
    return out


def centre_disks(paths: dict[str, Path], used_limit_pct: float) -> list[dict]:
    """Free space of the file systems holding the centre's data (label -> folder), one entry per file system.

    Each: ``labels`` (what it holds), ``free``, ``total`` (bytes), ``used_pct`` and ``alert``
    (more than ``used_limit_pct`` used). A folder that cannot be read is listed with an
    ``error``; none of this needs the database.
    """
    by_dev: dict[object, dict] = {}
    for label, folder in paths.items():
        folder = Path(folder)
        while not folder.exists() and folder.parent != folder:
            folder = folder.parent  # not created yet: its file system is the nearest existing parent's
        try:
            dev = folder.stat().st_dev
            usage = shutil.disk_usage(folder)
        except OSError as exc:
            by_dev[label] = {"labels": [label], "error": exc.strerror or type(exc).__name__}
            continue
        if dev in by_dev:
            by_dev[dev]["labels"].append(label)
            continue
        used = 100.0 * (1 - usage.free / usage.total) if usage.total else 0.0
        by_dev[dev] = {"labels": [label], "free": usage.free, "total": usage.total, "used_pct": used,
                       "alert": used > used_limit_pct}
    return list(by_dev.values())


def prune_history(store, before: datetime) -> int:
    """Delete history rows older than ``before``; returns how many."""
    ensure_schema(store)
    return store.conn.execute("DELETE FROM health_history WHERE received_at < ?", (_iso(before),)).rowcount


def record_update_sent(store, manifest: UpdateManifest, site: str, device: str,
                       sent_at: datetime | None = None) -> None:
    """Remember a published bundle (status ``sent`` until the kiosk answers)."""
    ensure_schema(store)
    store.conn.execute(
        "INSERT INTO updates (bundle_id, device, site, kind, version, sent_at) VALUES (?,?,?,?,?,?) "
        "ON CONFLICT(bundle_id) DO NOTHING",
        (str(manifest.bundle_id), device, site, manifest.kind, manifest.version,
         _iso(sent_at or datetime.now(timezone.utc))))


def record_update_result(store, site: str, result: UpdateResult, received_at: datetime) -> None:
    """Store a kiosk's answer to a bundle (also one the centre has no record of sending)."""
    ensure_schema(store)
    bundle = str(result.bundle_id) if result.bundle_id else f"unknown-{received_at.timestamp():.6f}"
    store.conn.execute(
        "INSERT INTO updates (bundle_id, device, site, kind, version, status, reason, serving, result_at) "
        "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(bundle_id) DO UPDATE SET status=excluded.status, "
        "reason=excluded.reason, serving=excluded.serving, result_at=excluded.result_at",
        (bundle, result.device_id, site, result.kind, result.version, result.status, result.reason[:500],
         result.serving, _iso(received_at)))


def handle_device_message(store, topic: str, payload: bytes, received_at: datetime,
                          history_hours: float = 24.0) -> str:
    """Record a health report or an update result (the ingest's entry point); returns a stats label."""
    try:
        site, device, kind, msg = from_device(topic, payload,
                                              {topics.HEALTH: Health, topics.UPDATE_RESULT: UpdateResult})
    except ValueError as exc:
        log.warning("ignored an invalid message on %s: %s", topic, exc)
        return "fleet-invalid"
    if kind == topics.HEALTH:
        record_health(store, site, msg, received_at, history_hours)
        return "health"
    record_update_result(store, site, msg, received_at)
    log.info("update %s %s on %s/%s: %s %s", msg.kind, msg.version, site, device, msg.status, msg.reason)
    return "update-result"


# ---------------------------------------------------------------- reading (page, metrics)
def device_states(store) -> list[DeviceState]:
    """Every known kiosk with its presence data and latest health."""
    ensure_schema(store)
    rows = store.conn.execute(
        "SELECT d.device, d.site, d.state, d.state_at, d.last_seen, d.model_version, "
        "h.received_at, h.skew_s, h.health FROM devices d LEFT JOIN device_health h ON h.device = d.device "
        "ORDER BY d.site, d.device").fetchall()
    out = []
    for dev, site, state, state_at, last_seen, model, h_at, skew, h_json in rows:
        try:
            health = Health.model_validate_json(h_json) if h_json else None
        except ValidationError:
            health = None
        out.append(DeviceState(device=dev, site=site, last_seen=_dt(last_seen), state=state or "unknown",
                               state_at=_dt(state_at), health=health, health_at=_dt(h_at), skew_s=skew,
                               model_version=model or ""))
    return out


def history(store, device: str, since: datetime) -> list[dict]:
    """History rows of one kiosk since ``since``, oldest first."""
    ensure_schema(store)
    cur = store.conn.execute("SELECT * FROM health_history WHERE device=? AND received_at>=? ORDER BY received_at",
                             (device, _iso(since)))
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def recent_updates(store, limit: int = 20) -> list[dict]:
    """Latest published bundles and results, newest first."""
    ensure_schema(store)
    cur = store.conn.execute("SELECT * FROM updates ORDER BY coalesce(result_at, sent_at) DESC LIMIT ?", (limit,))
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


# ---------------------------------------------------------------- charts
def sparkline(points: list[tuple[float, float | None]], t0: float, t1: float, unit: str = "",
              width: int = 220, height: int = 44, limit: float | None = None) -> Markup:
    """An inline SVG line chart of (epoch seconds, value) over [t0, t1]; gaps where values are missing."""
    vals = [v for _, v in points if v is not None]
    if not vals:
        return Markup(f'<svg class="spark" width="{width}" height="{height}" role="img" aria-label="no data">'
                      f'<text x="4" y="{height // 2 + 4}" class="spark-empty">no data</text></svg>')
    lo, hi = min(vals + ([limit] if limit is not None else [])), max(vals + ([limit] if limit is not None else []))
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    pad = 3

    def xy(t: float, v: float) -> str:
        x = pad + (width - 2 * pad) * (t - t0) / max(t1 - t0, 1)
        y = height - pad - (height - 2 * pad) * (v - lo) / (hi - lo)
        return f"{x:.1f},{y:.1f}"

    segments, seg = [], []
    for t, v in points:
        if v is None:
            if seg:
                segments.append(seg)
            seg = []
        else:
            seg.append(xy(t, v))
    if seg:
        segments.append(seg)
    parts = [f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'preserveAspectRatio="none" role="img" '
             f'aria-label="last {vals[-1]:.1f}{escape(unit)}, min {min(vals):.1f}, max {max(vals):.1f}">']
    if limit is not None:
        y = xy(t0, limit).split(",")[1]
        parts.append(f'<line class="spark-limit" x1="{pad}" x2="{width - pad}" y1="{y}" y2="{y}"/>')
    for s in segments:
        if len(s) == 1:
            x, y = s[0].split(",")
            parts.append(f'<circle class="spark-dot" cx="{x}" cy="{y}" r="1.8"/>')
        else:
            parts.append(f'<polyline class="spark-line" points="{" ".join(s)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


# ---------------------------------------------------------------- the page
bp = Blueprint("fleet", __name__)


def fleet_config() -> FleetConfig:
    """The app's fleet settings (``FLEET`` in the Flask config; defaults when absent)."""
    cfg = current_app.config.get("FLEET")
    if isinstance(cfg, dict):
        cfg = FleetConfig(**cfg)
    return cfg or FleetConfig()


def fleet_rows(store, now: datetime, t: FleetConfig, with_history: bool = True) -> list[dict]:
    """What the page and ``/metrics`` show per kiosk: state, presence, figures, alerts, charts."""
    rows = []
    since = now - timedelta(hours=t.history_hours)
    for d in device_states(store):
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
    rows = fleet_rows(store, now, t)
    counts = {"online": sum(r["presence"] == "online" for r in rows),
              "down": sum(r["presence"] in ("offline", "stale") for r in rows),
              "alerts": sum(len(r["alerts"]) for r in rows)}
    ingests = ingest_states(store, now)
    disks = app_centre_disks(t)
    return render_template("fleet.html", rows=rows, now=now, t=t, counts=counts,
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
