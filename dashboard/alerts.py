"""Fleet alerts: a pure function of (device state, now, thresholds) -> alerts.

Rules (thresholds in the centre config's ``[fleet]`` section, :class:`FleetConfig`):

============  ==========================================================================
code          fires when
============  ==========================================================================
offline       the kiosk is down (its last will said ``offline``, or nothing heard for
              ``stale_after_s``) for longer than ``offline_after_s`` (10 min)
disk          its data partition is more than ``disk_used_pct`` (90 %) full
temperature   its CPU is hotter than ``temp_c`` (80 °C)
throttled     its firmware reports throttling or under-voltage *now*
backlog       its oldest case not yet acknowledged is older than ``backlog_age_s`` (1 h)
clock         its clock is off the centre's by more than ``clock_skew_s`` (2 min)
clock-sync    it reports its clock not synchronised (NTP), whatever the skew
model         it runs another model than ``approved_model`` (when one is set)
quarantine    ``quarantine_alert`` (1) or more of its messages were quarantined within
              ``quarantine_window_s`` (1 h); critical from 10
malformed     a health, status or update-result message of it was malformed (quarantined)
              within ``quarantine_window_s``
certificate   its certificate (the registered one, from the PKI's index) expires within
              ``cert_expiry_days`` (30 days; critical once expired), or is no longer live
calibration   it reports that its quality gate was never calibrated (it runs on the built-in
              colour and sharpness reference: ``python -m edge calibrate`` at installation)
============  ==========================================================================

An alert clears by itself as soon as the condition no longer holds: nothing is
stored, the function is re-evaluated on every page view and scrape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from wire.messages import Health

#: ``vcgencmd get_throttled`` bits meaning "held back right now" (under-voltage, capped, throttled, soft limit).
THROTTLED_NOW_MASK = 0xF
RULES = ("offline", "disk", "temperature", "throttled", "backlog", "clock", "clock-sync", "model", "quarantine",
         "malformed", "certificate", "calibration")


class FleetConfig(BaseModel):
    """Fleet page, alerts and ``/metrics`` (the ``[fleet]`` section of the centre config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A kiosk not heard from (no health, status or case) for this long shows ``stale``.
    stale_after_s: float = Field(default=120.0, gt=0)
    offline_after_s: float = Field(default=600.0, ge=0)
    disk_used_pct: float = Field(default=90.0, gt=0, le=100)
    temp_c: float = Field(default=80.0, gt=0, le=150)
    backlog_age_s: float = Field(default=3600.0, gt=0)
    clock_skew_s: float = Field(default=120.0, gt=0)
    #: The model version every kiosk should run (None: not checked).
    approved_model: str | None = None
    #: Hours of health history kept (and charted) per kiosk.
    history_hours: float = Field(default=24.0, gt=0, le=24 * 31)
    #: Quarantined messages of one kiosk within ``quarantine_window_s`` that raise an alert.
    quarantine_alert: int = Field(default=1, ge=1)
    quarantine_window_s: float = Field(default=3600.0, gt=0)
    #: A kiosk certificate expiring within this many days raises an alert.
    cert_expiry_days: float = Field(default=30.0, ge=0)


@dataclass(frozen=True)
class DeviceState:
    """What the centre knows about one kiosk (from the devices and health tables)."""

    device: str
    site: str
    last_seen: datetime
    state: str = "unknown"                 # the retained status: online | offline | unknown
    state_at: datetime | None = None
    health: Health | None = None
    health_at: datetime | None = None       # centre clock when the latest health arrived
    skew_s: float | None = None             # kiosk clock minus centre clock at that moment
    model_version: str = ""
    #: messages of it quarantined within the window, how many of them malformed health/status, the last reason
    quarantined: int = 0
    malformed: int = 0
    quarantine_reason: str = ""
    #: its registered certificate's expiry (PKI index) and what is wrong with it, if anything
    cert_expires_at: datetime | None = None
    cert_problem: str | None = None


@dataclass(frozen=True)
class Alert:
    """One firing rule for one kiosk."""

    code: str
    severity: str          # critical | warning
    message: str


def presence(d: DeviceState, now: datetime, t: FleetConfig) -> str:
    """``online``, ``offline`` (its last will / clean stop) or ``stale`` (not heard for ``stale_after_s``)."""
    if d.state == "offline":
        return "offline"
    if (now - d.last_seen).total_seconds() > t.stale_after_s:
        return "stale"
    return "online" if d.state == "online" or d.health is not None else "unknown"


def down_for_s(d: DeviceState, now: datetime, t: FleetConfig) -> float | None:
    """Seconds the kiosk has been down (None while it is up)."""
    p = presence(d, now, t)
    if p == "offline":
        since = d.state_at or d.last_seen
        return max(0.0, (now - since).total_seconds())
    if p == "stale":
        return max(0.0, (now - d.last_seen).total_seconds())
    return None


def disk_used_pct(h: Health) -> float | None:
    """Percentage of the data partition in use."""
    if not h.disk_total_mb or h.disk_free_mb is None:
        return None
    return 100.0 * (1.0 - h.disk_free_mb / h.disk_total_mb)


def backlog_age_s(d: DeviceState, now: datetime) -> float | None:
    """Age of the oldest unacknowledged case now (the reported age plus the time since the report)."""
    h = d.health
    if h is None or h.outbox_oldest_s is None or not h.outbox_depth:
        return None
    since = (now - d.health_at).total_seconds() if d.health_at else 0.0
    return h.outbox_oldest_s + max(0.0, since)


def _dur(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.0f} min"
    return f"{s:.0f} s"


def evaluate(d: DeviceState, now: datetime, t: FleetConfig) -> list[Alert]:
    """Every alert firing for kiosk ``d`` at ``now`` (empty when all is well)."""
    out: list[Alert] = []
    down = down_for_s(d, now, t)
    if down is not None and down > t.offline_after_s:
        how = "last will: offline" if presence(d, now, t) == "offline" else "no message"
        out.append(Alert("offline", "critical", f"down for {_dur(down)} ({how})"))
    h = d.health
    if h is not None:
        used = disk_used_pct(h)
        if used is not None and used > t.disk_used_pct:
            out.append(Alert("disk", "critical" if used > 97 else "warning",
                             f"data disk {used:.0f} % full ({h.disk_free_mb:.0f} MiB free)"))
        if h.cpu_temp_c is not None and h.cpu_temp_c > t.temp_c:
            out.append(Alert("temperature", "warning", f"CPU at {h.cpu_temp_c:.1f} °C"))
        if h.throttled_bits and h.throttled_bits & THROTTLED_NOW_MASK:
            now_flags = [f for f in h.throttled if f.endswith("-now")]
            out.append(Alert("throttled", "warning", ", ".join(now_flags or ["firmware reports throttling"])))
    age = backlog_age_s(d, now)
    if age is not None and age > t.backlog_age_s:
        out.append(Alert("backlog", "warning", f"{h.outbox_depth} case(s) waiting, oldest {_dur(age)}"))
    if d.skew_s is not None and abs(d.skew_s) > t.clock_skew_s:
        out.append(Alert("clock", "warning", f"clock {'ahead' if d.skew_s > 0 else 'behind'} by {_dur(abs(d.skew_s))}"
                         + (" (not NTP-synchronised)" if h is not None and h.clock_synced is False else "")))
    if h is not None and h.clock_synced is False and not any(a.code == "clock" for a in out):
        out.append(Alert("clock-sync", "warning", "clock not synchronised (NTP): capture times may drift"))
    model = (h.model_version if h is not None and h.model_version else d.model_version)
    if t.approved_model and model and model != t.approved_model:
        out.append(Alert("model", "warning", f"runs model {model}, approved is {t.approved_model}"))
    window = _dur(t.quarantine_window_s)
    if d.quarantined >= t.quarantine_alert:
        out.append(Alert("quarantine", "critical" if d.quarantined >= 10 else "warning",
                         f"{d.quarantined} message(s) quarantined in the last {window}; last: {d.quarantine_reason}"))
    if d.malformed:
        out.append(Alert("malformed", "warning", f"{d.malformed} malformed health/status message(s) in the last "
                                                 f"{window}: see the quarantine"))
    if h is not None and h.calibration == "":
        out.append(Alert("calibration", "warning", "quality gate not calibrated (built-in colour and sharpness "
                                                   "reference): run python -m edge calibrate, send the config"))
    if d.cert_problem:
        out.append(Alert("certificate", "warning", d.cert_problem))
    elif d.cert_expires_at is not None:
        left = (d.cert_expires_at - now).total_seconds()
        if left <= 0:
            out.append(Alert("certificate", "critical", f"certificate expired {d.cert_expires_at:%Y-%m-%d}: "
                                                        "renew it (pki renew-kiosk)"))
        elif left <= t.cert_expiry_days * 86400:
            out.append(Alert("certificate", "warning", f"certificate expires {d.cert_expires_at:%Y-%m-%d} "
                                                       f"(in {left / 86400:.0f} days): renew it (pki renew-kiosk)"))
    return out
