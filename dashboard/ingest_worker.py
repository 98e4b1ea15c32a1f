"""The ingest's worker: batches of kiosk messages checked, stored (or quarantined), acknowledged and counted.

:class:`IngestWorker` is the half of :class:`dashboard.ingest.Ingest` that owns the database: one
worker thread takes what the MQTT network thread queued (:class:`_Message`), stores a batch of
cases in one commit (:func:`dashboard.intake.handle_cases`, senders checked against the kiosk
registry), records status and health (:func:`dashboard.intake.handle_kiosk_message`), publishes one
``Acks`` message per kiosk, and hands the batch's PUBACKs to the acker thread, which sends them once
the broker holds the Acks. It beats a heartbeat for the fleet page and adds its counters
(:mod:`dashboard.counters`) to the database with each beat. Storage errors are retried, never acked.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as mqtt

from wire import topics
from wire.messages import MAX_ACKS, Acks

from . import counters
from .intake import Checked, Outcome, check_case, handle_case, handle_cases, handle_kiosk_message, reject_internal
from .store import Store, utcnow

log = logging.getLogger("dashboard.ingest")

#: Most messages stored in one transaction (the Receive Maximum bounds it too).
MAX_BATCH = 64
assert MAX_BATCH <= MAX_ACKS, "a batch's acks for one kiosk must fit in one Acks message"
#: How long to wait for the broker to take an Ack before the case's PUBACK is withheld.
ACK_CONFIRM_S = 10.0
#: Errors that mean "storage is unavailable right now": retry, never ack.
TRANSIENT_ERRORS = (OSError, sqlite3.OperationalError)
#: Seconds between the worker's heartbeats in the database (the fleet page's "ingest running").
HEARTBEAT_S = 10.0
#: Kinds recorded as device state (status, health, update results) rather than stored as cases.
DEVICE_KINDS = (topics.STATUS, topics.HEALTH, topics.UPDATE_RESULT)


def is_device_message(topic: str) -> bool:
    """True for a kiosk's status, health or update-result topic."""
    return topic.rsplit("/", 1)[-1] in DEVICE_KINDS


@dataclass
class _Message:
    topic: str
    payload: bytes | bytearray
    mid: int
    qos: int
    received_at: datetime
    #: check_case(...) running in the decoder pool as soon as the message arrived
    prepared: Future | None = None


class IngestWorker:
    """The worker and acker threads' methods of :class:`dashboard.ingest.Ingest` (which sets up
    ``config``, ``client``, ``stats``, the queues and events these use)."""


    def _run_worker(self) -> None:
        try:
            s = self.config.storage
            store = Store(s.database, s.images_dir, s.quarantine_dir)
        except BaseException as exc:  # reported by start()
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        next_sweep = self._next_beat = 0.0
        self._started = utcnow()
        try:
            while not self._stop.is_set():
                self._heartbeat(store)  # first, so the fleet page hears of a new ingest before any sweep
                if time.monotonic() >= next_sweep:
                    self._sweep(store)
                    next_sweep = time.monotonic() + 60
                try:
                    msg = self._queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                batch = [msg]
                while msg is not None and len(batch) < MAX_BATCH:
                    try:
                        msg = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    batch.append(msg)
                if batch[-1] is None:
                    batch.pop()
                    self._stop.set()
                self._process_batch(store, batch)
                batch = msg = None  # free the payloads while waiting for the next batch
            self._heartbeat(store, stopped=True)
        finally:
            store.close()

    def _heartbeat(self, store: Store, stopped: bool = False) -> None:
        """Record that this worker is alive, and the storage problem it retries if any (or that it stopped
        cleanly), for the fleet page: every HEARTBEAT_S, and at once when the problem changes.

        Never fails the ingest: with the database itself unwritable the beat is lost (the page then
        says the ingest is silent) and the next one tries again.
        """
        from .fleetdata import record_ingest_alive, record_ingest_stopped

        if not stopped and time.monotonic() < self._next_beat and self.problem == self._beaten_problem:
            return
        self._next_beat = time.monotonic() + HEARTBEAT_S
        self._beaten_problem = self.problem
        try:
            if stopped:
                record_ingest_stopped(store, self.config.broker.client_id, utcnow())
            else:
                record_ingest_alive(store, self.config.broker.client_id, self._started, utcnow(), self.problem)
            counters.flush(store.conn, self.config.broker.client_id, self.counts)
        except Exception as exc:  # disk full, locked database...: the next beat tries again
            log.warning("could not record the ingest heartbeat: %s", type(exc).__name__)

    def _storage_failed(self, store: Store, exc: BaseException, delay: float, waiting: int) -> bool:
        """A storage error (disk full, I/O error, locked database): log it, tell the fleet page, and wait
        ``delay`` seconds before the retry, still beating; True if the ingest is stopping meanwhile."""
        self.stats["storage-errors"] += 1
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        log.error("storage unavailable (%s: %s); %d message(s) kept unacknowledged, retrying in %.1f s",
                  type(exc).__name__, reason, waiting, delay)
        self.problem = f"storage unavailable: {reason} ({type(exc).__name__})"
        self._announce("offline")
        deadline = time.monotonic() + delay
        while True:
            self._heartbeat(store)
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._stop.wait(min(left, HEARTBEAT_S)):
                return True

    def _storage_works(self, store: Store) -> None:
        """Storage worked again after a problem: say so at once."""
        if self.problem is not None:
            log.warning("storage works again: %s is over", self.problem)
            self.problem = None
            self._heartbeat(store)
        self._announce("online")

    def _sweep(self, store: Store) -> None:
        try:
            n = store.sweep_temp_files(self.config.ingest.incomplete_case_timeout_s)
            if n:
                log.info("removed %d leftover temp files of interrupted writes", n)
        except Exception as exc:  # housekeeping must never stop the ingest
            log.warning("temp file sweep failed: %s", type(exc).__name__)

    def _process_batch(self, store: Store, batch: list[_Message]) -> None:
        """Store a batch of messages (retrying while storage fails), then ack each, in arrival order."""
        cases = [m for m in batch if not is_device_message(m.topic)]
        statuses = [m for m in batch if is_device_message(m.topic)]
        checked = [self._checked(m) for m in cases]
        outcomes: dict[int, Outcome] = {}
        delay = self.config.ingest.storage_retry_s
        while True:
            try:
                handle_cases(store, checked, outcomes, require_registration=self._require)
                if cases:
                    self._storage_works(store)
                break
            except TRANSIENT_ERRORS as exc:
                if self._storage_failed(store, exc, delay, len(cases)):
                    return  # not acked: the broker redelivers them to the next session
                delay = min(delay * 2, 60.0)
            except Exception:
                log.debug("batch failed, handling its messages one by one", exc_info=True)
                for i, m in enumerate(cases):
                    if i not in outcomes:
                        outcome = self._process_one(store, m)
                        if outcome is None:
                            return
                        outcomes[i] = outcome
                break
        # One Acks message per kiosk for the whole batch, its acks in arrival order.
        by_topic: dict[str, list[int]] = {}
        for i in range(len(cases)):
            outcome = outcomes[i]
            self._count(outcome)
            if outcome.ack is not None and outcome.ack_topic:
                by_topic.setdefault(outcome.ack_topic, []).append(i)
        sent: dict[int, mqtt.MQTTMessageInfo] = {}
        for topic, idx in by_topic.items():
            info = self.client.publish(topic, Acks(acks=[outcomes[i].ack for i in idx]).model_dump_json(), qos=1)
            sent.update(dict.fromkeys(idx, info))
            self.counts[(counters.ACKS_SENT, "")] += len(idx)
        # Only the message ids travel on: the payloads (~1 MB each) are freed now, not after the PUBACKs.
        pubacks = [(sent.get(i), m.mid, m.qos) for i, m in enumerate(cases)]
        for m in statuses:
            if self._process_status(store, m):
                pubacks.append((None, m.mid, m.qos))
        # The acker thread PUBACKs these once the broker holds their Acks, while this thread goes on
        # with the next batch (waiting here left it idle for most of each batch's cycle).
        self._pubacks.put(pubacks)

    @property
    def _require(self) -> bool:
        """Whether a kiosk must be registered for its cases to be stored (``[registry]``)."""
        return self.config.registry.require_registration

    def _count(self, outcome: Outcome) -> None:
        """Count an outcome in the statistics and in the counters that go to ``/metrics``."""
        self.stats[outcome.label] += 1
        if outcome.label == "stored":
            self.counts[(counters.STORED, "")] += 1
        elif outcome.label == "duplicate":
            self.counts[(counters.DUPLICATE, "")] += 1
        elif outcome.label == "quarantined":
            self.counts[(counters.QUARANTINED, outcome.reason or "other")] += 1

    def _run_acker(self) -> None:
        """PUBACK each batch's messages, in order, a case only once the broker has taken its Ack.

        If the ingest dies in between, the broker redelivers the case, which is then
        acked (again) as a duplicate; an Ack not confirmed in time leaves its case
        unPUBACKed (redelivered after a reconnect) rather than risking a lost ack.
        """
        while True:
            pubacks = self._pubacks.get()
            if pubacks is None:
                return
            deadline = time.monotonic() + ACK_CONFIRM_S  # one deadline for the batch, not one per ack
            confirmed = []
            for info, mid, qos in pubacks:
                if info is not None and not _confirmed(info, max(deadline - time.monotonic(), 0.0)):
                    self.stats["ack-unconfirmed"] += 1
                    log.warning("ack not confirmed by the broker; the case will be redelivered and acked again")
                    continue
                if qos == 1:
                    confirmed.append(mid)
                elif qos > 1:  # (the ingest subscribes with QoS 1: not expected)
                    self.client.ack_many(confirmed)
                    confirmed = []
                    self.client.ack(mid, qos)
            self.client.ack_many(confirmed)  # the batch's PUBACKs, in order, in one write

    def _checked(self, msg: _Message) -> Checked:
        """The decoder pool's verdict on a case message (checked here if that failed unexpectedly)."""
        try:
            if msg.prepared is not None:
                return msg.prepared.result()
        except Exception:
            log.debug("decoder failed", exc_info=True)
        return check_case(msg.topic, msg.payload, msg.received_at)

    def _process_one(self, store: Store, msg: _Message) -> Outcome | None:
        """One case message on its own; an unexpected error quarantines it. None if stopped meanwhile."""
        delay = self.config.ingest.storage_retry_s
        while True:
            try:
                outcome = handle_case(store, msg.topic, msg.payload, msg.received_at,
                                      require_registration=self._require)
                self._storage_works(store)
                return outcome
            except TRANSIENT_ERRORS as exc:
                if self._storage_failed(store, exc, delay, 1):
                    return None
                delay = min(delay * 2, 60.0)
                continue
            except Exception as exc:  # a bug must not stop the service: keep the payload, refuse the case
                self.stats["internal-errors"] += 1
                log.error("internal error on a message of %d bytes: %s", len(msg.payload), type(exc).__name__)
                log.debug("internal error detail", exc_info=True)
                try:
                    return reject_internal(store, msg.topic, msg.payload, msg.received_at, exc)
                except TRANSIENT_ERRORS:
                    pass
            if self._stop.wait(delay):
                return None
            delay = min(delay * 2, 60.0)

    def _process_status(self, store: Store, msg: _Message) -> bool:
        """Record one status, health or update-result message; False if storage failed (redelivered later)."""
        try:
            self._count(handle_kiosk_message(store, msg.topic, msg.payload, msg.received_at,
                                             require_registration=self._require,
                                             history_hours=self.config.fleet.history_hours))
            return True
        except Exception as exc:
            self.stats["storage-errors"] += 1
            log.error("could not record a status message: %s", type(exc).__name__)
            return False


def _confirmed(info: mqtt.MQTTMessageInfo, timeout: float) -> bool:
    """Whether a QoS 1 publish reached the broker (its PUBACK came back) within ``timeout``."""
    try:
        if not info.is_published():
            info.wait_for_publish(timeout)
    except (ValueError, RuntimeError):
        return False
    return info.is_published()
