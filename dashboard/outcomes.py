"""The outcome of a signed referral, sent to the kiosk that photographed it (:mod:`wire.outcome`).

At sign-off :func:`queue` stores the message in ``outcome_queue`` (same database, committed
before anything is sent), then :func:`flush` publishes every pending message at QoS 1 as the
dashboard's kiosk publisher (``[updates] broker``, certificate ``updates``, which the broker's
access rules let write ``dermkiosk/v1/+/+/outcome``). A message leaves the queue only when the
broker answered the PUBLISH with success, which it does when the kiosk's persistent session
subscribes to its outcome topic: the broker then keeps it for an offline kiosk (saved to disk)
and hands it over when the kiosk is back. "No matching subscribers" (the kiosk has no session at
the broker: never connected with this software, or away longer than the session expiry), a
broker that cannot be reached or refuses: the message stays queued and :class:`Sender` tries
again every ``OUTCOME_RETRY_S`` seconds. Nothing is lost; a kiosk that gets a message twice keeps
it once (``outcome_id``). Log lines name the referral key (a UUID) and the kiosk, never a patient.
"""

from __future__ import annotations

import logging
import threading
import uuid

from wire import topics
from wire.outcome import LesionOutcome, Outcome

from .background import StoreWorker
from .store import handover as table
from .updates import broker_client

log = logging.getLogger(__name__)

#: PUBACK reason "No matching subscribers": the kiosk has no session subscribed to its outcomes.
NO_SUBSCRIBERS = 0x10
_KICKS = "dermkiosk.outcome_sender"


def build(signed, outcome_id: uuid.UUID | None = None) -> Outcome:
    """The wire message of a :class:`dashboard.handover.SignedReferral` (no patient identifier in it)."""
    return Outcome(outcome_id=outcome_id or uuid.uuid4(), referral_id=signed.referral_id, site=signed.site,
                   device_id=signed.device, signed_at=signed.signed_at, signed_by=", ".join(signed.readers)[:100],
                   lesions=[LesionOutcome(case_id=uuid.UUID(les.case_id), label=les.label, management=les.management,
                                          reason=les.text[:500] if les.management == "re-image" else "")
                            for les in signed.lesions])


def queue(conn, signed) -> Outcome:
    """Store the outcome of ``signed`` for sending (committed at once); returns the message."""
    outcome = build(signed)
    table.queue_outcome(conn, outcome)
    return outcome


def flush(conn, broker, timeout: float = 10.0) -> dict[str, str]:
    """Publish every pending outcome over one connection; returns ``{outcome_id: result}``.

    ``broker`` is a :class:`dashboard.config.BrokerConfig` (the ``updates`` identity). A result is
    ``published`` or why the message stays queued.
    """
    pending = table.pending_outcomes(conn)
    if not pending:
        return {}
    results: dict[str, str] = {}
    try:
        acks = _publish_all(broker, [(topics.topic(p["site"], p["device"], topics.OUTCOME), p["payload"])
                                     for p in pending], timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        acks = [f"broker not reached: {exc}"] * len(pending)
    for p, ack in zip(pending, acks):
        if ack == "published":
            table.mark_published(conn, p["outcome_id"])
            log.info("outcome %s for %s/%s taken by the broker", p["outcome_id"], p["site"], p["device"])
        else:
            table.mark_failed(conn, p["outcome_id"], ack)
            log.warning("outcome %s for %s/%s kept to send again: %s", p["outcome_id"], p["site"], p["device"], ack)
        results[p["outcome_id"]] = ack
    return results


def _publish_all(broker, messages: list[tuple[str, str]], timeout: float) -> list[str]:
    """Publish ``(topic, payload)`` messages at QoS 1 and return each one's result from its PUBACK."""
    connected, done = threading.Event(), threading.Event()
    reasons: dict[int, object] = {}
    client = broker_client(broker, "dermkiosk-outcome")
    client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
    mids: list[int] = []

    def on_publish(c, u, mid, rc, p):
        reasons[mid] = rc
        if len(reasons) >= len(messages):
            done.set()

    client.on_publish = on_publish
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(timeout):
            raise TimeoutError(f"no CONNACK from {broker.host}:{broker.port} within {timeout:.0f} s")
        mids.extend(client.publish(t, payload, qos=1).mid for t, payload in messages)
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    out = []
    for mid in mids:
        rc = reasons.get(mid)
        if rc is None:
            out.append(f"no PUBACK within {timeout:.0f} s")
        elif rc.value == NO_SUBSCRIBERS:
            out.append("the kiosk has no session at the broker yet (never connected, or away too long)")
        elif rc.is_failure:
            out.append(f"the broker refused it: {rc}")
        else:
            out.append("published")
    return out


class Sender(StoreWorker):
    """Sends the queued outcomes now (``kick()``) and every ``interval_s`` seconds, in its own thread."""

    thread_name = "outcome-sender"
    failure = "sending the queued outcomes failed; will try again"
    join_s = 15.0
    wait_first = True

    def __init__(self, database, images_dir, broker, interval_s: float):
        """Settings only; :meth:`start` starts the thread."""
        super().__init__(database, images_dir, interval_s)
        self.broker = broker
        self.last: dict[str, str] = {}

    def work(self, store) -> None:
        """Send what is queued; ``last`` keeps what each outcome's try gave."""
        self.last = flush(store.conn, self.broker)


def init_app(app) -> None:
    """Start the app's :class:`Sender` when ``[updates] broker`` is configured (else outcomes wait, logged)."""
    updates = app.config.get("UPDATES")
    broker = getattr(updates, "broker", None)
    interval = float(app.config.get("OUTCOME_RETRY_S", 60.0))
    if broker is None:
        log.warning("no [updates] broker configured: signed outcomes are queued but not sent to the kiosks")
        return
    app.extensions[_KICKS] = Sender(app.config["DATABASE"], app.config["IMAGES_DIR"], broker, interval).start()


def kick(app) -> None:
    """Ask the app's sender to send the queue now (no-op without one)."""
    sender = app.extensions.get(_KICKS)
    if sender is not None:
        sender.kick()


def sender_of(app) -> Sender | None:
    """The app's outcome sender, if it has one."""
    return app.extensions.get(_KICKS)


