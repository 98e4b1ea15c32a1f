"""The hand-over to the hospital: every signed referral's DICOM objects to the PACS, its FHIR Bundle to the record.

An outbox (``hospital_exports``, :mod:`dashboard.store.exports`) with one row per referral and
destination. At sign-off :func:`on_signed` (registered with :func:`dashboard.readhooks.register_on_signed`)
queues the referral for each configured destination and wakes the :class:`Sender`, a thread of the
dashboard that also wakes every ``tick_s`` seconds. Each pass (:func:`flush`):

1. re-queues sent referrals that have gained an addendum since, so the PACS and FHIR copies are
   updated: the DICOM objects keep their UIDs (the PACS files them once), the Bundle PUTs the same
   resources with the DiagnosticReport ``amended``;
2. tries every due row: builds the objects (:mod:`dashboard.dicom`) or the Bundle (:mod:`dashboard.fhir`)
   from the store and sends them (:mod:`dashboard.pacsnet`, :mod:`dashboard.fhir.post`). Delivered:
   ``sent``. A destination down, refusing, or answering 4xx/5xx: ``failed`` with its reason, tried again
   after ``retry_s`` seconds, doubling up to ``retry_max_s``. A referral that can never be sent as it
   is (no NHS number) is ``failed`` with that reason and waits for a person ("Send again").

Nothing is lost: the row stays until the destination took everything. Every try is in the audit
log (actor ``system:hand-over``); log lines and reasons name the referral key (a UUID), never a
patient identifier.
"""

from __future__ import annotations

import hashlib
import logging

from . import audit
from .background import StoreWorker
from .exportfacts import ExportRefused, export_facts
from .store import exports as table

log = logging.getLogger(__name__)

ACTOR = "system:hand-over"
_SENDER = "dermkiosk.hand_over_sender"


def configured(pacs_cfg, fhir_cfg) -> list[str]:
    """The destinations switched on in the config (``pacs``, ``fhir``)."""
    return [t for t, c in (("pacs", pacs_cfg), ("fhir", fhir_cfg)) if c is not None and c.enabled]


def queue_referral(conn, key: str, pacs_cfg, fhir_cfg, *, force: bool = False) -> list[str]:
    """Queue signed referral ``key`` for every configured destination; return those newly queued."""
    return [t for t in configured(pacs_cfg, fhir_cfg) if table.queue(conn, key, t, force=force)]


def _backoff(cfg, attempts: int) -> float:
    return min(cfg.retry_s * (2 ** max(attempts, 0)), cfg.retry_max_s)


def _send_pacs(conn, images_dir, key: str, cfg) -> tuple[str, int, str]:
    from . import dicom, pacsnet

    facts = export_facts(conn, images_dir, key)
    datasets = dicom.build_referral(facts)
    digest = hashlib.sha256("\n".join(sorted(str(ds.SOPInstanceUID) for ds in datasets)).encode()).hexdigest()
    delivery = pacsnet.send(cfg, datasets)
    if delivery.refused:
        first_uid, why = delivery.refused[0]
        raise pacsnet.PacsRefused(f"the PACS refused {len(delivery.refused)} of {len(datasets)} objects "
                                  f"(first: {first_uid}: {why})")
    return digest, facts.addenda, f"{delivery.stored} of {len(datasets)} objects stored ({cfg.protocol})"


def _send_fhir(conn, images_dir, key: str, cfg, endpoint: str | None) -> tuple[str, int, str]:
    from .fhir import bundle_json
    from .fhir.post import post_bundle

    facts = export_facts(conn, images_dir, key)
    body = bundle_json(facts, endpoint=endpoint)
    answer = post_bundle(cfg, body)
    status = "amended" if facts.addenda else "final"
    return hashlib.sha256(body.encode()).hexdigest(), facts.addenda, f"Bundle delivered, report {status}: {answer}"


def try_one(conn, images_dir, row: dict, pacs_cfg, fhir_cfg) -> str:
    """Try one due row; record the result (state, audit) and return it in words."""
    from .fhir.post import FhirRefused, FhirUnavailable
    from .pacsnet import PacsRefused, PacsUnavailable

    key, target = row["referral_key"], row["target"]
    cfg = pacs_cfg if target == "pacs" else fhir_cfg
    if cfg is None or not cfg.enabled:
        table.mark_failed(conn, key, target, f"{target} is not configured at this centre", None)
        return "not configured"
    endpoint = pacs_cfg.url if (pacs_cfg is not None and pacs_cfg.enabled and pacs_cfg.protocol == "stow-rs") \
        else None
    try:
        if target == "pacs":
            digest, addenda, detail = _send_pacs(conn, images_dir, key, cfg)
        else:
            digest, addenda, detail = _send_fhir(conn, images_dir, key, cfg, endpoint)
    except ExportRefused as exc:
        table.mark_failed(conn, key, target, str(exc), None)
        audit.append(conn, actor=ACTOR, action=f"export.{target}.refused", target=key, detail=str(exc))
        log.warning("hand-over of %s to %s refused: %s", key, target, exc)
        return str(exc)
    except (PacsUnavailable, PacsRefused, FhirUnavailable, FhirRefused, OSError, ValueError) as exc:
        retry = _backoff(cfg, row["attempts"])
        reason = str(exc)
        table.mark_failed(conn, key, target, reason, retry)
        audit.append(conn, actor=ACTOR, action=f"export.{target}.failed", target=key,
                     detail=f"{reason} (next try in {retry:.1f} s)")
        log.warning("hand-over of %s to %s failed, next try in %.1f s: %s", key, target, retry, reason)
        return reason
    table.mark_sent(conn, key, target, digest, addenda, detail)
    audit.append(conn, actor=ACTOR, action=f"export.{target}", target=key, detail=detail)
    log.info("hand-over of %s to %s: %s", key, target, detail)
    return "sent"


def flush(conn, images_dir, pacs_cfg, fhir_cfg) -> dict[tuple[str, str], str]:
    """Re-queue amended referrals, then try every due row; return ``{(key, target): result}``."""
    for key, target in table.amended(conn):
        table.queue(conn, key, target, force=True)
    return {(row["referral_key"], row["target"]): try_one(conn, images_dir, row, pacs_cfg, fhir_cfg)
            for row in table.due(conn)}


class Sender(StoreWorker):
    """Sends the hand-over outbox now (:meth:`kick`) and every ``tick_s`` seconds, in its own daemon thread."""

    thread_name = "hand-over-sender"
    failure = "hand-over pass failed; will try again"
    join_s = 30.0

    def __init__(self, database, images_dir, pacs_cfg, fhir_cfg, tick_s: float = 5.0):
        """Settings only; :meth:`start` starts the thread."""
        super().__init__(database, images_dir, tick_s)
        self.pacs_cfg, self.fhir_cfg = pacs_cfg, fhir_cfg

    def work(self, store) -> None:
        """Send what is due to the PACS and the FHIR server."""
        flush(store.conn, store.images_dir, self.pacs_cfg, self.fhir_cfg)


def on_signed(store, referral_key: str) -> None:
    """The sign-off listener: queue the referral for the PACS and the FHIR server and wake the sender."""
    from flask import current_app

    queued = queue_referral(store.conn, referral_key, current_app.config.get("PACS"), current_app.config.get("FHIR"))
    if queued:
        log.info("referral key %s queued for %s", referral_key, ", ".join(queued))
    kick(current_app)


def kick(app) -> None:
    """Wake the app's sender (no-op without one)."""
    sender = app.extensions.get(_SENDER)
    if sender is not None:
        sender.kick()


def sender_of(app) -> Sender | None:
    """The app's hand-over sender, if it has one."""
    return app.extensions.get(_SENDER)


def start(app) -> None:
    """Create the outbox table, listen for sign-offs, and start the app's sender when a destination is configured."""
    from . import readhooks
    from .store import Store

    store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"], app.config.get("QUARANTINE_DIR"))
    try:
        table.ensure_schema(store.conn)
    finally:
        store.close()
    readhooks.register_on_signed(app, on_signed)
    if configured(app.config.get("PACS"), app.config.get("FHIR")):
        app.extensions[_SENDER] = Sender(app.config["DATABASE"], app.config["IMAGES_DIR"], app.config.get("PACS"),
                                         app.config.get("FHIR"), float(app.config.get("HAND_OVER_TICK_S", 5.0))).start()
