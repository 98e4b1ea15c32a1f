"""The kiosk service: starts the parts in order; the appointment desk and the headless capture flow.

Start order: outbox -> classifier -> camera -> appointment desk -> link; stop in reverse
(the web page is started by ``edge.web``). The photographer's appointment (one GP referral,
its lesions and their views, sent as one CaseHeaderV2 per lesion) lives in
:mod:`edge.appointment`, reached as ``service.desk``.

The headless one-lesion flow kept here (``start_case`` / ``capture`` / ``submit`` and
``capture_case``, schema version 1) serves the command line's ``capture-demo`` and the
fault benchmark: each view is captured, checked by the quality gate and, for the
dermoscopic view, classified; ``submit`` stores the wire ``CaseHeader`` in the outbox.

The classifier output is decision support only: every case is read by a dermatologist.
Logs carry the case or referral UUID only, never a patient identifier.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from wire.codec import sha256_hex
from wire.messages import BODY_SITES, VIEWS, CaseHeader, Classification, ImageMeta, Quality, tier_for

from .appointment import AppointmentDesk, AppointmentError
from .camera import Camera, CameraError, Frame, open_camera
from .config import KioskConfig
from .health import HealthMonitor, Sensors
from .link import Link
from .outcomes import OutcomeStore
from .outbox import DiskFullError, Outbox
from .quality import assess
from .update import ModelStore, Updater, link_reporter
from .version import software_version
from wire import topics

log = logging.getLogger("edge.service")

#: The view the classifier reads.
CLASSIFIED_VIEW = "dermoscopic"


#: The old name of the kiosk page's error (the headless ``capture_case`` path raises it).
CaseError = AppointmentError


@dataclass
class CapturedImage:
    """One captured view of the open case, with its quality result and (dermoscopic) classification."""

    view: str
    frame: Frame
    quality: Quality
    classification: Classification | None = None

    @property
    def sha256(self) -> str:
        """SHA-256 of the JPEG."""
        return sha256_hex(self.frame.jpeg)


@dataclass
class Draft:
    """The case being photographed (one at a time on a kiosk)."""

    case_id: uuid.UUID
    referral_ref: str
    lesion_id: str
    body_site: str
    created_at: datetime
    images: dict[str, CapturedImage] = field(default_factory=dict)


def check_case_fields(referral_ref: str, lesion_id: str, body_site: str) -> tuple[str, str, str]:
    """Validate the photographer's case fields; raise CaseError with a message for the page."""
    referral_ref = (referral_ref or "").strip()
    lesion_id = (lesion_id or "").strip()
    if not 1 <= len(referral_ref) <= 64:
        raise CaseError("Enter the referral reference (1 to 64 characters).")
    if not 1 <= len(lesion_id) <= 64:
        raise CaseError("Enter the lesion id (1 to 64 characters).")
    if body_site not in BODY_SITES:
        raise CaseError("Choose the body site from the list.")
    return referral_ref, lesion_id, body_site


class KioskService:
    """The kiosk's parts wired together; use ``start()``/``stop()`` or as a context manager."""

    def __init__(self, cfg: KioskConfig, classifier_factory: Callable | None = None,
                 camera_factory: Callable | None = None, with_link: bool = True,
                 sensors: Sensors | None = None):
        """Prepare (not start) the service. Factories exist for tools; tests use the real parts."""
        self.cfg = cfg
        self._classifier_factory = classifier_factory
        self._camera_factory = camera_factory or open_camera
        self.with_link = with_link
        self.outbox: Outbox | None = None
        self.classifier = None
        self.camera: Camera | None = None
        self.link: Link | None = None
        self.draft: Draft | None = None       # the headless one-lesion case (capture_case, bench)
        self.desk: AppointmentDesk | None = None   # the photographer's appointment (edge.appointment)
        self.outcomes: OutcomeStore | None = None  # referrals sent, the centre's outcomes, re-image tasks
        self._lock = threading.RLock()         # the draft and the camera
        self._started: list[str] = []
        self.sensors = sensors                 # None: the real ones (edge.health.SystemSensors)
        self.health: HealthMonitor | None = None
        self.updater: Updater | None = None
        self.started_monotonic = time.monotonic()
        self.last_capture_at: datetime | None = None
        self.classifier_latency_ms: float | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "KioskService":
        """Start outbox -> classifier -> camera -> link (the web page is started by ``edge.web``)."""
        try:
            cfg = self.cfg
            self.outbox = Outbox(cfg.data_dir, retention_s=cfg.retention.keep_delivered_s,
                                 min_free_bytes=cfg.retention.min_free_mb << 20, key_file=cfg.data_key_file)
            released = self.outbox.release_captured()
            if released:
                log.info("released %d case(s) stored before an interruption", released)
            self.outbox.gc_orphans()
            self.outbox.purge_due()
            self._started.append("outbox")
            if cfg.model_seed_dir is not None:
                ModelStore(cfg.model_dir).seed(cfg.model_seed_dir)
            if self._classifier_factory is None:
                from .classifier import Classifier

                self.classifier = Classifier(cfg.model_dir, threads=cfg.classifier_threads)
            else:
                self.classifier = self._classifier_factory(cfg)
            if self.classifier is not None:
                self.classifier.patch = cfg.quality.grey_patch  # painted over before the model sees a frame
            self._started.append("classifier")
            self.camera = self._camera_factory(cfg.camera)
            self.camera.__enter__()
            self._started.append("camera")
            self.outcomes = OutcomeStore(cfg.data_dir, self.outbox.sealer, cfg.device_id,
                                         cfg.retention.keep_outcomes_days)
            self.outcomes.purge()
            self.desk = AppointmentDesk(self)
            self._started.append("desk")
            self.desk.restore()
            if self.with_link:
                self.link = Link(cfg.broker, cfg.site, cfg.device_id, self.outbox,
                                 software_version=software_version(), model_version=self.model_version)
                self.updater = Updater(self, cfg.updates, link_reporter(self.link))
                self.link.on_message(topics.UPDATE, self.updater.submit)
                # stored (sealed, fsynced) on the link thread before paho acknowledges it: a few ms
                self.link.on_message(topics.OUTCOME, self.outcomes.receive)
                self.link.start()
                self._started.append("link")
                self.updater.start()
                self._started.append("updater")
                self.health = HealthMonitor(self, self.sensors, cfg.health.interval_s).start()
                self._started.append("health")
            log.info("kiosk %s started (model %s)", cfg.device_id, self.model_version)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop what was started, in reverse order; safe to call twice."""
        if self._started:
            log.info("kiosk stopping: %s", " <- ".join(reversed(self._started)))
        while self._started:
            part = self._started.pop()
            try:
                if part == "health" and self.health:
                    self.health.stop()
                elif part == "updater" and self.updater:
                    self.updater.stop()
                elif part == "link" and self.link:
                    self.link.stop()
                elif part == "desk" and self.desk:
                    self.desk.close()
                elif part == "camera" and self.camera:
                    self.camera.__exit__(None, None, None)
                elif part == "outbox" and self.outbox:
                    self.outbox.close()
            except Exception:
                log.exception("stopping the %s failed", part)

    def __enter__(self) -> "KioskService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def model_version(self) -> str:
        """Version of the loaded model."""
        return getattr(self.classifier, "version", "") or "unknown"

    def healthy(self) -> bool:
        """True while every started background thread (link, updater, health) is alive."""
        threads = [getattr(self.link, "_thread", None), getattr(self.updater, "_thread", None),
                   getattr(self.health, "_thread", None)]
        return all(t is None or t.is_alive() for t in threads)

    def reload_staff(self) -> None:
        """A config bundle delivered a new staff roster: use it now (edge.update calls this)."""
        if self.desk is not None:
            self.desk.reload_staff()

    def replace_classifier(self, classifier) -> None:
        """Serve a new (self-tested) model from now on; the centre sees its version in status and health."""
        classifier.patch = self.cfg.quality.grey_patch
        with self._lock:
            self.classifier = classifier
        if self.link:
            self.link.model_version = self.model_version
            self.link.publish(topics.STATUS, self.link._status("online"), retain=True)
        log.info("now serving model %s", self.model_version)

    # ------------------------------------------------------------------ capture flow
    def start_case(self, referral_ref: str, lesion_id: str, body_site: str) -> Draft:
        """Open a new case (discarding any unsubmitted one); returns the draft."""
        referral_ref, lesion_id, body_site = check_case_fields(referral_ref, lesion_id, body_site)
        with self._lock:
            if self.draft is not None:
                log.info("case %s discarded unsubmitted", self.draft.case_id)
            self.draft = Draft(uuid.uuid4(), referral_ref, lesion_id, body_site, datetime.now(timezone.utc))
            log.info("case %s started", self.draft.case_id)
            return self.draft

    def discard(self) -> None:
        """Drop the open case without storing anything."""
        with self._lock:
            if self.draft is not None:
                log.info("case %s discarded", self.draft.case_id)
            self.draft = None

    def classify(self, jpeg: bytes) -> Classification:
        """Run the classifier on a JPEG, applying the configured threshold override if any."""
        t0 = time.perf_counter()
        result = self.classifier.classify_jpeg(jpeg, tta=self.cfg.classifier_tta)
        self.classifier_latency_ms = round((time.perf_counter() - t0) * 1000, 1)
        if self.cfg.thresholds:
            result = Classification(probabilities=result.probabilities, model=result.model,
                                    risk=tier_for(result.probabilities, self.cfg.thresholds))
        return result

    def preview_jpeg(self) -> bytes:
        """A live-preview frame from the camera."""
        with self._lock:
            return self.camera.preview_jpeg()

    def capture(self, view: str) -> CapturedImage:
        """Capture one view of the open case, run the quality gate and (dermoscopic) the classifier."""
        if view not in VIEWS:
            raise CaseError(f"Unknown view {view!r}.")
        with self._lock:
            if self.draft is None:
                raise CaseError("Start a case first.")
            try:
                frame = self.camera.capture()
            except CameraError as exc:
                raise CaseError(f"The camera did not deliver a picture: {exc}") from None
            quality = assess(frame.jpeg, view, self.cfg.quality)
            classification = self.classify(frame.jpeg) if view == CLASSIFIED_VIEW else None
            shot = CapturedImage(view, frame, quality, classification)
            if any(v != view and im.sha256 == shot.sha256 for v, im in self.draft.images.items()):
                raise CaseError("The camera returned the same picture as another view: take it again.")
            self.draft.images[view] = shot
            self.last_capture_at = frame.captured_at
            log.info("case %s: %s captured (quality %s)", self.draft.case_id, view,
                     "ok" if quality.ok else "failed")
            return shot

    def build_header(self, draft: Draft) -> CaseHeader:
        """The wire header of a draft (``seq`` is set by the outbox)."""
        order = [v for v in VIEWS if v in draft.images]
        shots = [draft.images[v] for v in order]
        case_cls = draft.images[CLASSIFIED_VIEW].classification if CLASSIFIED_VIEW in draft.images else None
        return CaseHeader(
            case_id=draft.case_id, referral_ref=draft.referral_ref, lesion_id=draft.lesion_id,
            body_site=draft.body_site, site=self.cfg.site, device_id=self.cfg.device_id,
            created_at=draft.created_at, seq=0, software_version=software_version(),
            model_version=self.model_version,
            images=[ImageMeta(view=s.view, captured_at=s.frame.captured_at, sha256=s.sha256,
                              length=len(s.frame.jpeg), width=s.frame.width, height=s.frame.height,
                              quality=s.quality, classification=s.classification) for s in shots],
            classification=case_cls,
        )

    def submit(self, allow_failed_quality: bool = False) -> CaseHeader:
        """Store the open case in the outbox and wake the link; returns the stored header.

        Raises CaseError when a required view is missing or (unless allowed) failed the
        quality gate, DiskFullError when there is no room (the case stays open to retry).
        """
        with self._lock:
            draft = self.draft
            if draft is None:
                raise CaseError("Start a case first.")
            missing = [v for v in self.cfg.capture.required_views if v not in draft.images]
            if missing:
                raise CaseError(f"Capture the {', '.join(missing)} view first.")
            failed = [v for v, im in draft.images.items() if not im.quality.ok]
            if failed and not allow_failed_quality:
                raise CaseError(f"Retake the {', '.join(failed)} view: it did not pass the quality check.")
            header = self.build_header(draft)
            images = [draft.images[m.view].frame.jpeg for m in header.images]
            try:
                header = self.outbox.submit(header, images)
            except DiskFullError:
                log.error("case %s refused: storage full", draft.case_id)
                raise
            self.draft = None
        log.info("case %s stored in the outbox (seq %d)", header.case_id, header.seq)
        if self.link:
            self.link.wake()
        return header

    def capture_case(self, referral_ref: str, lesion_id: str, body_site: str,
                     views: list[str] | None = None) -> CaseHeader:
        """Headless: start a case, capture ``views`` (config's demo views) and submit it as is."""
        self.start_case(referral_ref, lesion_id, body_site)
        for view in views or self.cfg.capture.demo_views:
            self.capture(view)
        return self.submit(allow_failed_quality=True)

    # ------------------------------------------------------------------ status
    def _last_rejection(self, counts: dict) -> str:
        """The reason of the newest rejected case ('' when none)."""
        if not counts.get("rejected"):
            return ""
        parked = self.outbox.cases(("rejected",), limit=100_000)
        return parked[-1].reason if parked else ""

    def status(self) -> dict:
        """What the kiosk page shows: queue depth per state, link, camera, model, free space."""
        counts = self.outbox.counts() if self.outbox else {}
        link = self.link.stats if self.link else None
        depth = sum(counts.get(s, 0) for s in ("captured", "queued", "sent"))
        rate = self.link.drain_rate() if self.link else 0.0
        return {
            "queue_depth": depth,
            # backlog progress: cases acknowledged per second lately, and the time left at that speed
            "drain": {"rate": round(rate, 1), "eta_s": round(depth / rate) if rate > 0 and depth else None},
            # cases the kiosk will not send or the centre refused, with the newest reason (for IT)
            "rejected": {"count": counts.get("rejected", 0), "last_reason": self._last_rejection(counts)},
            "counts": counts,
            "link": {
                "connected": bool(link and link.connected),
                # the centre's ingest: online, offline (cases are held here) or unknown
                "centre": link.centre if link else "unknown",
                "inflight": link.inflight if link else 0,
                "delivered": link.delivered if link else 0,
                "last_error": link.last_error if link else "link disabled",
            },
            "camera": bool(self.camera and self.camera.connected),
            "model": self.model_version,
            "free_mb": (self.outbox.free_bytes() >> 20) if self.outbox else None,
            "device_id": self.cfg.device_id,
            "site": self.cfg.site,
        }
