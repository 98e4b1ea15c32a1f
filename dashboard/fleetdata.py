"""The fleet's data: every kiosk's health, history, updates and the ingest processes' heartbeats.

Recorded by the ingest, read by the fleet page (:mod:`dashboard.fleet`) and ``/metrics``:

* ``device_health``: the latest :class:`wire.messages.Health` per kiosk, when it
  arrived (centre clock) and the kiosk's clock skew at that moment;
* ``health_history``: the figures charted on the page, kept ``history_hours``;
* ``updates``: bundles published (``python -m dashboard update publish``) and the
  kiosk's :class:`wire.messages.UpdateResult`;
* presence comes from the ``devices`` table (retained status, last will, last seen);
* ``ingest_heartbeat``: each ingest process's last sign of life (its worker loop) and the
  storage problem it is retrying, if any;
* the kiosk registry (:mod:`dashboard.registry`) and the ingest's counters
  (:mod:`dashboard.counters`), whose tables are created with these.

No Flask here: the ingest imports this module.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import ValidationError

from wire import topics
from wire.messages import Health, UpdateManifest, UpdateResult, from_device

from . import counters, registry
from .alerts import DeviceState, disk_used_pct  # noqa: F401  (DeviceState: device_states)

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
""" + registry.SCHEMA + counters.SCHEMA
#: Columns added to ``ingest_heartbeat`` after its first release (added to older databases).
_HEARTBEAT_ADDED = (("problem", "TEXT"), ("problem_since", "TEXT"))
#: An ingest whose worker has not been heard for this long is shown as not running.
INGEST_STALE_S = 60.0
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


def quarantine_by_device(store, since: datetime) -> dict[str, dict]:
    """Per device, the messages quarantined since ``since``: ``count``, ``malformed`` (invalid status,
    health or update-result messages), and the latest ``reason``."""
    from .counters import reason_code

    out: dict[str, dict] = {}
    for device, reason in store.conn.execute(
            "SELECT device, reason FROM quarantine WHERE device IS NOT NULL AND received_at >= ? ORDER BY id",
            (_iso(since),)):
        e = out.setdefault(device, {"count": 0, "malformed": 0, "reason": ""})
        e["count"] += 1
        e["reason"] = reason
        if reason_code(reason).startswith("invalid-") and reason_code(reason) != "invalid-header":
            e["malformed"] += 1
    return out
