"""Prometheus ``/metrics`` for Grafana: per-kiosk gauges, behind a bearer token.

Scrape config::

    - job_name: dermkiosk
      authorization: {type: Bearer, credentials: <web.metrics_token>}
      static_configs: [{targets: ["centre.example:8090"]}]

Without a configured token (``METRICS_TOKEN``, from ``[web] metrics_token``)
``/metrics`` answers 404; a wrong or missing token gets 401. The gauges are
computed at scrape time from the fleet tables (one fresh registry per scrape),
so alerts appear and clear exactly as on the fleet page.

The ingest's counters (:mod:`dashboard.counters`, per ingest process ``client_id``) are exposed
as Prometheus counters, for ``rate()``::

    dermkiosk_ingest_cases_stored_total  dermkiosk_ingest_cases_duplicate_total
    dermkiosk_ingest_messages_quarantined_total{reason="wrong-hub"|"bad-frame"|...}
    dermkiosk_ingest_acks_sent_total

e.g. ``sum by (reason) (rate(dermkiosk_ingest_messages_quarantined_total[15m]))``.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timezone

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily

from . import counters, registry
from .alerts import RULES

bp = Blueprint("metrics", __name__)


def _public(view):
    try:
        from .auth import public
    except ImportError:  # pragma: no cover
        return view
    return public(view)


class _IngestCounters:
    """A collector of the ingest's counters as stored in the database at scrape time."""

    def __init__(self, rows: list[tuple[str, str, str, float]]):
        """``rows`` from :func:`dashboard.counters.read`."""
        self.rows = rows

    def collect(self):
        """One counter family per name, a sample per ingest process (and reason)."""
        for name, help_ in counters.COUNTERS.items():
            labels = ["client_id", "reason"] if name == counters.QUARANTINED else ["client_id"]
            fam = CounterMetricFamily(f"dermkiosk_ingest_{name}", help_, labels=labels)
            for client_id, n, label, value in self.rows:
                if n == name:
                    fam.add_metric([client_id, label] if len(labels) == 2 else [client_id], value)
            yield fam


def render(store, now: datetime, t, disks: list[dict] = (), pki_dir=None, monitoring=None) -> bytes:
    """The exposition text for every registered kiosk, the unregistered ones, the ingest processes and
    their counters, the centre's disks (:func:`dashboard.fleet.centre_disks`) and the service's monitoring
    (:mod:`dashboard.servicereport.monitor`, thresholds ``monitoring``: its defaults when None)."""
    from .clock import today_in_england
    from .fleet import fleet_rows, ingest_states
    from .servicereport import monitor

    reg = CollectorRegistry()
    monitor.add_gauges(reg, monitor.evaluate(store.conn, today_in_england(now),
                                             monitoring or monitor.MonitoringConfig()))
    reg.register(_IngestCounters(counters.read(store.conn)))
    Gauge("dermkiosk_unregistered_kiosks", "Kiosks heard from (connected or published) but not registered",
          registry=reg).set(len(registry.unregistered(store.conn)))
    up = Gauge("dermkiosk_ingest_up", "1 if the ingest process is taking cases (its worker was heard lately)",
               ["client_id"], registry=reg)
    heard = Gauge("dermkiosk_ingest_last_heard_age_seconds", "Seconds since the ingest's worker was last heard",
                  ["client_id"], registry=reg)
    blocked = Gauge("dermkiosk_ingest_storage_blocked",
                    "1 while the ingest is alive but retrying a storage problem instead of storing cases",
                    ["client_id"], registry=reg)
    for i in ingest_states(store, now):
        up.labels(i["client_id"]).set(1 if i["state"] == "running" else 0)
        heard.labels(i["client_id"]).set(max(0.0, i["age_s"]))
        blocked.labels(i["client_id"]).set(1 if i["state"] == "blocked" else 0)
    free = Gauge("dermkiosk_centre_disk_free_bytes", "Free bytes on the file system holding the centre's data",
                 ["holds"], registry=reg)
    used = Gauge("dermkiosk_centre_disk_used_ratio", "Used part (0-1) of the file system holding the centre's data",
                 ["holds"], registry=reg)
    for d in disks:
        if "error" not in d:
            free.labels(" ".join(d["labels"])).set(d["free"])
            used.labels(" ".join(d["labels"])).set(d["used_pct"] / 100.0)
    labels = ["site", "device"]
    g = {
        "online": Gauge("dermkiosk_device_online", "1 if the kiosk is online (status and last seen)", labels,
                        registry=reg),
        "last_seen": Gauge("dermkiosk_device_last_seen_age_seconds", "Seconds since the kiosk was last heard",
                           labels, registry=reg),
        "temp": Gauge("dermkiosk_device_cpu_temperature_celsius", "CPU temperature", labels, registry=reg),
        "throttled": Gauge("dermkiosk_device_throttled", "1 if throttled or under-voltage now", labels, registry=reg),
        "disk": Gauge("dermkiosk_device_disk_used_ratio", "Data partition used (0-1)", labels, registry=reg),
        "disk_free": Gauge("dermkiosk_device_disk_free_bytes", "Free bytes on the data partition", labels,
                           registry=reg),
        "depth": Gauge("dermkiosk_device_outbox_depth", "Cases not yet acknowledged by the centre", labels,
                       registry=reg),
        "backlog": Gauge("dermkiosk_device_outbox_oldest_age_seconds", "Age of the oldest unacknowledged case",
                         labels, registry=reg),
        "skew": Gauge("dermkiosk_device_clock_skew_seconds", "Kiosk clock minus centre clock", labels, registry=reg),
        "latency": Gauge("dermkiosk_device_classifier_latency_seconds", "Last classification time", labels,
                         registry=reg),
        "alerts": Gauge("dermkiosk_device_alerts", "Alerts firing on the kiosk", labels, registry=reg),
        "alert": Gauge("dermkiosk_device_alert", "1 while the alert rule fires", labels + ["alert"], registry=reg),
    }
    g["quarantined"] = Gauge("dermkiosk_device_quarantined_messages",
                             "Messages of the kiosk quarantined within the fleet's quarantine window", labels,
                             registry=reg)
    g["cert"] = Gauge("dermkiosk_device_certificate_expiry_timestamp_seconds",
                      "When the kiosk's registered certificate expires (Unix time, from the PKI index)", labels,
                      registry=reg)
    devices = Gauge("dermkiosk_devices", "Registered kiosks", registry=reg)
    rows = fleet_rows(store, now, t, with_history=False, pki_dir=pki_dir)
    devices.set(len(rows))
    for r in rows:
        d, h = r["d"], r["h"]
        lab = (d.site, d.device)
        g["online"].labels(*lab).set(1 if r["presence"] == "online" else 0)
        g["last_seen"].labels(*lab).set(max(0.0, (now - d.last_seen).total_seconds()))
        g["alerts"].labels(*lab).set(len(r["alerts"]))
        firing = {a.code for a in r["alerts"]}
        for code in RULES:
            g["alert"].labels(*lab, code).set(1 if code in firing else 0)
        g["backlog"].labels(*lab).set(r["backlog_age_s"] or 0.0)
        g["quarantined"].labels(*lab).set(d.quarantined)
        if d.cert_expires_at is not None:
            g["cert"].labels(*lab).set(d.cert_expires_at.timestamp())
        if d.skew_s is not None:
            g["skew"].labels(*lab).set(d.skew_s)
        if h is None:
            continue
        if h.cpu_temp_c is not None:
            g["temp"].labels(*lab).set(h.cpu_temp_c)
        g["throttled"].labels(*lab).set(1 if (h.throttled_bits or 0) & 0xF else 0)
        if r["disk_used_pct"] is not None:
            g["disk"].labels(*lab).set(r["disk_used_pct"] / 100.0)
        if h.disk_free_mb is not None:
            g["disk_free"].labels(*lab).set(h.disk_free_mb * 2**20)
        g["depth"].labels(*lab).set(h.outbox_depth)
        if h.classifier_latency_ms is not None:
            g["latency"].labels(*lab).set(h.classifier_latency_ms / 1000.0)
    return generate_latest(reg)


@_public
def metrics_view():
    """``GET /metrics`` with ``Authorization: Bearer <token>``."""
    from .db import get_store
    from .fleet import app_centre_disks, fleet_config, registry_config

    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        abort(404)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response("bearer token required\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"',
                                                         "Content-Type": "text/plain"})
    t = fleet_config()
    body = render(get_store(), datetime.now(timezone.utc), t, app_centre_disks(t), registry_config().pki_dir,
                  current_app.config.get("MONITORING"))
    return Response(body, 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


bp.add_url_rule("/metrics", "metrics", metrics_view)
