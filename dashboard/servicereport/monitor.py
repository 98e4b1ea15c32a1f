"""Monitoring of the service, its classifier and its kiosks' photographs: seven alert rules, each with its threshold in the centre config's
``[monitoring]`` section (:class:`MonitoringConfig`), evaluated on demand (``/metrics`` scrape, the IT pages).

==================  =============================================================================================
code                fires when
==================  =============================================================================================
cancer-drift        at a hub, the share of lesions the classifier calls cancer among the referrals dated in the
                    last 7 days differs from that hub's share over the ``baseline_weeks`` weeks before by more
                    than ``drift_points`` percentage points (with at least ``drift_min_lesions`` lesions in each)
sensitivity-floor   the classifier's sensitivity for malignancy against histology over the last
                    ``sensitivity_days`` falls below ``sensitivity_floor``, once ``sensitivity_min_positives``
                    malignant lesions have histology
override-jump       at a hub, the share of images sent with a quality override in the last 7 days exceeds the
                    hub's baseline share by more than ``override_points`` points (at least
                    ``override_min_images`` images in the week)
fds-unread          referrals still waiting for a reader (first, second or third read) ``unread_warn_days`` or
                    more days after their referral date (nearing the 28-day standard), per hub
colour-drift        at a kiosk, the median colour distance (the quality gate's ``colour`` value: how far the skin's
                    colour lies from that kiosk's calibrated normal) of the dermoscopic photographs received in the
                    last 7 days exceeds ``colour_drift_median`` (at least ``colour_drift_min_images`` photographs):
                    a cast from the kiosk itself (its light, its white balance) stays on every photograph, so it
                    moves the median even where no single photograph is refused (``bench/quality_drift.py``);
                    a colour check not made (a lesion larger than the view: no skin to read) is left out
focus-drift         at a kiosk, the median sharpness (the quality gate's ``focus`` value: a share of that kiosk's
                    calibrated normal) of the dermoscopic photographs received in the last 7 days is below
                    ``focus_drift_median`` (at least ``focus_drift_min_images`` photographs): a dermatoscope out of
                    focus, a smeared lens or contact plate, stays on every photograph, and softens them all even
                    where few are refused one by one (``bench/quality_drift.py --check focus``)
exposure-drift      at a kiosk, the median skin brightness (the quality gate's ``exposure`` value) of the dermoscopic
                    photographs received in the last 7 days is more than ``exposure_drift_levels`` grey levels above
                    its median over the ``exposure_baseline_days`` days before (at least ``exposure_drift_min_images``
                    photographs in each): a brighter light or a changed exposure or gain stays on every photograph,
                    while one photograph a stop brighter can pass as a paler patient's
                    (``bench/quality_drift.py --check exposure``). Only brighter: a dimmer photograph is refused one
                    by one, and a week of darker-skinned patients would otherwise look like a failing light
==================  =============================================================================================

A kiosk whose dermatoscope shows a grey patch (``[quality.grey_patch]``) reports the patch's figures instead (its
colour's distance in ln units, its exposure in stops): colour-drift and exposure-drift, whose limits are in the skin's
terms, are not raised for it, and need not be: the patch lets its gate refuse a tenth of a moderate cast, or 0.7 of a
stop, photograph by photograph.

Nothing is stored: an alert clears as soon as its condition no longer holds. The figures are read with a few
grouped queries over the referrals of the window, never a patient identifier.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict, Field

from . import stats

RULES = ("cancer-drift", "sensitivity-floor", "override-jump", "fds-unread", "colour-drift", "focus-drift",
         "exposure-drift")
#: Each rule's short title on the pages (``/fleet``, ``/reports``).
TITLES = {"cancer-drift": "Classifier cancer calls drifting", "sensitivity-floor": "Sensitivity against histology "
          "below the floor", "override-jump": "Quality overrides jumped", "fds-unread": "Referrals nearing 28 days "
          "unread", "colour-drift": "Kiosk colour drifting", "focus-drift": "Kiosk photographs softening",
          "exposure-drift": "Kiosk photographs brightening"}


class MonitoringConfig(BaseModel):
    """The ``[monitoring]`` section: thresholds of the service's alerts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline_weeks: int = Field(default=8, ge=1, le=52)
    drift_points: float = Field(default=10.0, gt=0, le=100)
    drift_min_lesions: int = Field(default=20, ge=1)
    sensitivity_floor: float = Field(default=0.80, gt=0, le=1)
    sensitivity_days: int = Field(default=365, ge=7, le=3 * 366)
    sensitivity_min_positives: int = Field(default=30, ge=1)
    override_points: float = Field(default=10.0, gt=0, le=100)
    override_min_images: int = Field(default=20, ge=1)
    unread_warn_days: int = Field(default=21, ge=1, le=365)
    #: Chosen on the quality bench's fit halves: over 20 photographs, false alarms 0-1 %, casts of 28 % caught in
    #: 89-100 % of runs and casts of 49 % in all (``bench/quality_drift.py``; README, "The quality gate").
    colour_drift_median: float = Field(default=1.75, gt=0, le=50)
    colour_drift_min_images: int = Field(default=20, ge=1)
    #: Over 20 photographs: false alarms 0 % of runs on the quality bench's sources but ISIC 2017's many devices (0.6-5.7 %
    #: on two seeds); a 1-px defocus caught in 68-100 % of runs where one photograph at a time catches it 31-99 %
    #: (``bench/quality_drift.py --check focus``; ``docs/quality-gate.md``, "A kiosk that holds its sharpness").
    focus_drift_median: float = Field(default=0.5, gt=0, le=1)
    focus_drift_min_images: int = Field(default=20, ge=1)
    #: Over 20 photographs against 40 before: false alarms 0.1-1.8 %, +1 stop caught in 98.5-100 % of runs
    #: (``bench/quality_drift.py --check exposure``; README, "The quality gate").
    exposure_drift_levels: float = Field(default=25.0, gt=0, le=255)
    exposure_drift_min_images: int = Field(default=20, ge=1)
    #: The days before the last 7 whose photographs make a kiosk's usual brightness (two weeks: the 8 baseline weeks
    #: would read eight times the photographs on every view of /fleet and scrape, for a median no kiosk needs).
    exposure_baseline_days: int = Field(default=14, ge=7, le=366)


@dataclass(frozen=True)
class ServiceAlert:
    """One firing rule: its code, what it is about (a hub, or ``all``), the figure, the threshold, and words."""

    code: str
    subject: str
    value: float
    threshold: float
    message: str


@dataclass
class Figures:
    """What the rules looked at (also exposed as Prometheus gauges)."""

    cancer_share: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    override_share: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    sensitivity: tuple[float, float, float] | None = None
    sensitivity_positives: int = 0
    unread: dict[str, int] = field(default_factory=dict)
    colour: dict[str, tuple[int, float]] = field(default_factory=dict)  # kiosk: (photographs, median colour distance)
    focus: dict[str, tuple[int, float]] = field(default_factory=dict)  # kiosk: (photographs, median sharpness)
    #: kiosk: ((photographs of the days before, median brightness), (last 7 days' photographs, median brightness))
    exposure: dict[str, tuple[tuple[int, float | None], tuple[int, float | None]]] = field(default_factory=dict)
    alerts: list[ServiceAlert] = field(default_factory=list)


# Per hub and part of the window (referral dates ?1..?2, current from ?3): classified lesions, those called cancer,
# images (``image_count``, saved with the case's image rows) and images sent with a quality override (through the
# partial index of overrides). ``c.received_at >= ?4`` (the day before ?1) only narrows the search to the window
# through the cases' received_at index (a full scan took 1.4 s warm and 23 s cold on a year of 140,000 cases; now
# 0.3 s warm): a kiosk refuses a referral date after its own today, so a case is received on or after its referral
# date, or the evening before in UTC.
_WINDOW = ("SELECT c.site, coalesce(r.referral_date, date(c.received_at)) >= ?3 AS cur, count(c.risk), "
           "coalesce(sum(c.risk = 'cancer'), 0), coalesce(sum(c.image_count), 0), "
           "coalesce(sum((SELECT count(*) FROM case_images ci WHERE ci.case_id = c.case_id "
           "AND ci.override_reason IS NOT NULL)), 0) "
           "FROM cases c LEFT JOIN referrals r ON r.referral_id = c.referral_id "
           "WHERE c.received_at >= ?4 AND coalesce(r.referral_date, date(c.received_at)) BETWEEN ?1 AND ?2 "
           "GROUP BY c.site, cur")
_SENSITIVITY = ("SELECT count(*), coalesce(sum(c.risk = 'cancer'), 0) FROM cases c "
                "JOIN (SELECT case_id, max(id) AS id FROM histology GROUP BY case_id) l ON l.case_id = c.case_id "
                "JOIN histology h ON h.id = l.id WHERE h.benign_malignant = 'malignant' AND c.risk IS NOT NULL "
                "AND h.reported_on >= ?")
#: Waiting for a reader (a referral sent back for new photographs waits for the hub instead).
UNREAD_STATUSES = ("to-read", "second-read", "third-read")
#: Each dermoscopic photograph received since ?1 (through the cases' received_at index): its kiosk, whether it came in
#: the last 7 days (from ?2), and, for those, whether its colour check was made (not a check that passed without a
#: value: the lesion filled the view, no skin to read), the colour value (NULL where the check ran but could not read
#: the skin's colour) and the focus value; for every one, the exposure value. One pass over the photographs: reading
#: them, not their JSON, is what costs (a year of 100,000 referrals: 19,416 photographs in 9 weeks took 153 ms to
#: read, 2,540 in a week 25 ms).
_PHOTOS = ("SELECT c.device, c.received_at >= ?2, "
           "CASE WHEN c.received_at >= ?2 AND json_type(ci.quality, '$.checks.colour') = 'object' AND NOT "
           "(json_type(ci.quality, '$.checks.colour.value') IS 'null' AND json_extract(ci.quality, '$.checks.colour.ok') "
           "= 1) THEN 1 ELSE 0 END, "
           "CASE WHEN c.received_at >= ?2 THEN json_extract(ci.quality, '$.checks.colour.value') END, "
           "CASE WHEN c.received_at >= ?2 AND json_type(ci.quality, '$.checks.focus.value') IN ('real', 'integer') "
           "THEN json_extract(ci.quality, '$.checks.focus.value') END, "
           "CASE WHEN json_type(ci.quality, '$.checks.exposure.value') IN ('real', 'integer') "
           "THEN json_extract(ci.quality, '$.checks.exposure.value') END "
           "FROM cases c CROSS JOIN case_images ci ON ci.case_id = c.case_id "
           "WHERE c.received_at >= ?1 AND ci.view = 'dermoscopic'")
_UNREAD = ("SELECT site, count(*) FROM referral_summary WHERE status IN ('to-read', 'second-read', 'third-read') "
           "AND referral_date <= ? GROUP BY site")


def _shares(rows) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    """``{hub: ((baseline n, hits), (current n, hits))}``."""
    out: dict[str, list[tuple[int, int]]] = {}
    for site, cur, n, hits in rows:
        out.setdefault(site, [(0, 0), (0, 0)])[1 if cur else 0] = (n, hits)
    return {k: (v[0], v[1]) for k, v in out.items()}


def _pct(n: int, hits: int) -> float | None:
    return 100.0 * hits / n if n else None


def evaluate(conn, today: date, t: MonitoringConfig) -> Figures:
    """The figures and the firing alerts on ``today`` (a day in England)."""
    f = Figures()
    current = today - timedelta(days=6)
    base = current - timedelta(weeks=t.baseline_weeks)
    span = (base.isoformat(), today.isoformat(), current.isoformat(), (base - timedelta(days=1)).isoformat())
    window = conn.execute(_WINDOW, span).fetchall()
    lesions = [(site, cur, n, cancer) for site, cur, n, cancer, _, _ in window if n]
    images = [(site, cur, n, overrides) for site, cur, _, _, n, overrides in window if n]
    for site, ((bn, bh), (cn, ch)) in sorted(_shares(lesions).items()):
        b, c = _pct(bn, bh), _pct(cn, ch)
        f.cancer_share[site] = (b, c)
        if bn >= t.drift_min_lesions and cn >= t.drift_min_lesions and abs(c - b) > t.drift_points:
            f.alerts.append(ServiceAlert("cancer-drift", site, c, t.drift_points,
                                         f"{site}: the classifier called {c:.1f} % of lesions cancer in the last 7 days "
                                         f"({cn} lesions) against {b:.1f} % over the {t.baseline_weeks} weeks before "
                                         f"({bn}); more than {t.drift_points:g} points apart"))
    for site, ((bn, bh), (cn, ch)) in sorted(_shares(images).items()):
        b, c = _pct(bn, bh), _pct(cn, ch)
        f.override_share[site] = (b, c)
        if cn >= t.override_min_images and c is not None and c - (b or 0.0) > t.override_points:
            f.alerts.append(ServiceAlert("override-jump", site, c, t.override_points,
                                         f"{site}: {c:.1f} % of images sent with a quality override in the last 7 days "
                                         f"({cn} images) against {(b or 0.0):.1f} % before"))
    since = (today - timedelta(days=t.sensitivity_days)).isoformat()
    positives, found = conn.execute(_SENSITIVITY, (since,)).fetchone()
    f.sensitivity_positives = positives
    f.sensitivity = stats.wilson(found, positives)
    if positives >= t.sensitivity_min_positives and f.sensitivity[0] < t.sensitivity_floor:
        f.alerts.append(ServiceAlert("sensitivity-floor", "all", f.sensitivity[0], t.sensitivity_floor,
                                     f"the classifier found {found} of {positives} lesions histology proved malignant "
                                     f"({100 * f.sensitivity[0]:.1f} %, 95 % CI {100 * f.sensitivity[1]:.1f}-"
                                     f"{100 * f.sensitivity[2]:.1f}), below the floor of "
                                     f"{100 * t.sensitivity_floor:.0f} %"))
    cutoff = (today - timedelta(days=t.unread_warn_days)).isoformat()
    f.unread = dict(conn.execute(_UNREAD, (cutoff,)).fetchall())
    for site, n in sorted(f.unread.items()):
        f.alerts.append(ServiceAlert("fds-unread", site, n, t.unread_warn_days,
                                     f"{site}: {n} referral{'s' if n != 1 else ''} still waiting for a reader "
                                     f"{t.unread_warn_days} days or more after referral, nearing the 28-day "
                                     "standard"))
    before = current - timedelta(days=t.exposure_baseline_days)
    photos = conn.execute(_PHOTOS, (before.isoformat(), current.isoformat())).fetchall()
    _colour_drift(photos, t, f)
    _focus_drift(photos, t, f)
    _exposure_drift(photos, t, f)
    return f


def _colour_drift(photos: list[tuple], t: MonitoringConfig, f: Figures) -> None:
    """Per kiosk, the median colour distance of its dermoscopic photographs of the last 7 days (``_PHOTOS`` rows);
    alert above the threshold."""
    values: dict[str, list[float]] = {}
    for device, _, made, v, _, _ in photos:
        if made:  # a check without a value could not read the skin's colour at all (a cast burning out a channel)
            values.setdefault(device, []).append(float("inf") if v is None else float(v))
    for device, vs in sorted(values.items()):
        median = statistics.median(vs)  # not stats.percentile: numpy's interpolation turns inf into nan
        f.colour[device] = (len(vs), median)
        if len(vs) >= t.colour_drift_min_images and median > t.colour_drift_median:
            far = f"lies a median {median:.2f} from its calibrated normal colour, above {t.colour_drift_median:g}" \
                if median != float("inf") else "could not be read in most of them (a colour channel burnt out)"
            f.alerts.append(ServiceAlert("colour-drift", device, median, t.colour_drift_median,
                                         f"{device}: the skin in its last {len(vs)} dermoscopic photographs (7 days) "
                                         f"{far}: check its light and white balance, then recalibrate it "
                                         "(python -m edge calibrate)"))


def _focus_drift(photos: list[tuple], t: MonitoringConfig, f: Figures) -> None:
    """Per kiosk, the median sharpness of its dermoscopic photographs of the last 7 days (``_PHOTOS`` rows; one
    without a focus value, an unreadable file judged by its decode check alone, is left out); alert below the
    threshold."""
    values: dict[str, list[float]] = {}
    for device, _, _, _, v, _ in photos:
        if v is not None:
            values.setdefault(device, []).append(float(v))
    for device, vs in sorted(values.items()):
        median = statistics.median(vs)
        f.focus[device] = (len(vs), median)
        if len(vs) >= t.focus_drift_min_images and median < t.focus_drift_median:
            f.alerts.append(ServiceAlert("focus-drift", device, median, t.focus_drift_median,
                                         f"{device}: its last {len(vs)} dermoscopic photographs (7 days) are a median "
                                         f"{median:.0%} as sharp as its calibrated normal, under "
                                         f"{t.focus_drift_median:.0%}: clean the dermatoscope's lens and contact "
                                         "plate and check its focus; if its optics or camera were changed, "
                                         "recalibrate it (python -m edge calibrate)"))


def _exposure_drift(photos: list[tuple], t: MonitoringConfig, f: Figures) -> None:
    """Per kiosk, the median skin brightness of its dermoscopic photographs of the ``exposure_baseline_days`` before
    the last 7 days and of the last 7 days (``_PHOTOS`` rows); alert where the week's is brighter by over the
    threshold."""
    values: dict[str, tuple[list[float], list[float]]] = {}
    for device, cur, _, _, _, v in photos:
        if v is not None:
            values.setdefault(device, ([], []))[1 if cur else 0].append(float(v))
    for device, (before, week) in sorted(values.items()):
        b = statistics.median(before) if before else None
        c = statistics.median(week) if week else None
        f.exposure[device] = ((len(before), b), (len(week), c))
        n = t.exposure_drift_min_images
        if len(before) >= n and len(week) >= n and c - b > t.exposure_drift_levels:
            f.alerts.append(ServiceAlert("exposure-drift", device, c, t.exposure_drift_levels,
                                         f"{device}: the skin in its last {len(week)} dermoscopic photographs (7 days) "
                                         f"is a median {c:.0f} bright in its brightest colour, up {c - b:.0f} from "
                                         f"{b:.0f} over the {t.exposure_baseline_days} days before ({len(before)} "
                                         f"photographs), more than {t.exposure_drift_levels:g} levels: check its "
                                         "light and the camera's exposure and gain settings; if either was "
                                         "changed, recalibrate it (python -m edge calibrate)"))


def add_gauges(reg, f: Figures) -> None:
    """The figures and alerts as Prometheus gauges in ``reg`` (a ``CollectorRegistry``)."""
    from prometheus_client import Gauge

    share = Gauge("dermkiosk_service_cancer_share", "Share (0-1) of lesions the classifier calls cancer, per hub; "
                  "window current = last 7 days, baseline = the weeks before", ["site", "window"], registry=reg)
    over = Gauge("dermkiosk_service_override_share", "Share (0-1) of images sent with a quality override, per hub",
                 ["site", "window"], registry=reg)
    for gauge, figures in ((share, f.cancer_share), (over, f.override_share)):
        for site, (b, c) in figures.items():
            for window, v in (("baseline", b), ("current", c)):
                if v is not None:
                    gauge.labels(site, window).set(v / 100.0)
    sens = Gauge("dermkiosk_service_sensitivity_histology", "Classifier sensitivity for malignancy against "
                 "histology (0-1) over the monitoring window", registry=reg)
    if f.sensitivity is not None:
        sens.set(f.sensitivity[0])
    Gauge("dermkiosk_service_histology_malignant_lesions", "Lesions histology proved malignant in the window",
          registry=reg).set(f.sensitivity_positives)
    unread = Gauge("dermkiosk_service_referrals_nearing_fds", "Open referrals nearing the 28-day standard, per hub",
                   ["site"], registry=reg)
    for site, n in f.unread.items():
        unread.labels(site).set(n)
    colour = Gauge("dermkiosk_service_colour_distance_median", "Median colour distance of a kiosk's dermoscopic "
                   "photographs from its calibrated normal, last 7 days", ["device"], registry=reg)
    for device, (_, median) in f.colour.items():
        colour.labels(device).set(median)
    sharp = Gauge("dermkiosk_service_sharpness_median", "Median sharpness of a kiosk's dermoscopic photographs as a "
                  "share of its calibrated normal, last 7 days", ["device"], registry=reg)
    for device, (_, median) in f.focus.items():
        sharp.labels(device).set(median)
    bright = Gauge("dermkiosk_service_brightness_median", "Median skin brightness (brightest colour, 0-255) of a "
                   "kiosk's dermoscopic photographs; window current = last 7 days, baseline = the exposure_baseline_days "
                   "before",
                   ["device", "window"], registry=reg)
    for device, windows in f.exposure.items():
        for window, (_, median) in zip(("baseline", "current"), windows):
            if median is not None:
                bright.labels(device, window).set(median)
    alert = Gauge("dermkiosk_service_alert", "1 while the service alert rule fires", ["alert", "subject"],
                  registry=reg)
    for a in f.alerts:
        alert.labels(a.code, a.subject).set(1)
