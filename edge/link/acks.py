"""Acknowledgements: the broker's PUBACKs (a case is ``sent``) and the centre's acks (``delivered``
or ``rejected``), recorded in the outbox in batches; the drain rate; purging delivered cases.

paho has already PUBACKed an ack message when it is recorded; if the kiosk dies before the commit,
the case is simply published again and the centre answers ``duplicate``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from pydantic import ValidationError

from wire.messages import parse_acks

if TYPE_CHECKING:
    from ..outbox import Outbox
    from .stats import LinkStats
    from .window import _Flight

log = logging.getLogger("edge.link")


class AcksMixin:
    """The :class:`~edge.link.Link`'s ack handling (callbacks on the link thread; ``drain_rate`` anywhere)."""

    outbox: Outbox
    stats: LinkStats
    _stop: threading.Event
    _inflight: dict[str, _Flight]
    _mids: dict[int, str]
    _next_poll: float

    def _init_acks(self) -> None:
        self._pubacks: list[str] = []                  # PUBACKed case ids, recorded in batches
        self._acks: list[tuple[str, str, str]] = []     # centre acks, recorded in batches
        self._purge = threading.Event()
        self._purger: threading.Thread | None = None
        #: (monotonic time, stats.delivered) after each batch of centre acks: the drain rate.
        self._delivered_log: deque[tuple[float, int]] = deque(maxlen=1000)

    def drain_rate(self, window_s: float = 10.0) -> float:
        """Cases the centre acknowledged per second over about the last ``window_s`` seconds (0.0 when
        none): the backlog's drain speed shown on the kiosk page. Safe from any thread."""
        now = time.monotonic()
        recent = [(t, n) for t, n in list(self._delivered_log) if now - t <= window_s]
        if len(recent) < 2 or now - recent[0][0] < 0.5:
            return 0.0
        return (recent[-1][1] - recent[0][1]) / (now - recent[0][0])

    def _run_purger(self) -> None:
        """Delete the files of delivered cases off the link thread (unlink is slow on some disks)."""
        while True:
            self._purge.wait(1.0)
            self._purge.clear()
            stopping = self._stop.is_set()
            try:
                self.outbox.purge_due()
            except Exception:
                log.exception("purging delivered cases failed; will retry")
            if stopping:
                return

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        """paho's PUBACK callback: note the case as sent (recorded by :meth:`_flush`)."""
        case_id = self._mids.pop(mid, None)
        if case_id is None:
            return      # status message, or a case from an earlier attempt
        flight = self._inflight.get(case_id)
        if reason_code.is_failure:
            # The broker would not take it (quota, authorisation...): keep it, retry on the ack timeout.
            self.stats.last_error = f"broker refused case {case_id}: {reason_code}"
            log.warning("%s", self.stats.last_error)
            return
        if flight is not None:
            flight.pubacked = True
            if reason_code.value == 0x10:
                flight.dropped = True
                flight.published = time.monotonic()
        log.debug("case %s PUBACK %s", case_id, reason_code)
        self._pubacks.append(case_id)

    def _on_acks(self, payload: bytes) -> None:
        """A message on the ack topic: take its cases out of the window (recorded by :meth:`_flush`)."""
        try:
            acks = parse_acks(payload)  # a batch (Acks) or, from an older centre, a single Ack
        except ValidationError as exc:
            log.warning("ignoring an invalid ack message: %s", exc.errors()[0].get("msg"))
            return
        for ack in acks:
            case_id = str(ack.case_id)
            self._inflight.pop(case_id, None)
            self._acks.append((case_id, ack.status,
                               f"centre rejected: {ack.reason}" if ack.status == "rejected" else ""))
        self._next_poll = 0.0

    def _flush(self) -> None:
        """Record the PUBACKs and acks received since the last call, each kind in one transaction.

        paho has already PUBACKed an ack message when this runs; if the kiosk dies before the
        commit, the case is simply published again and the centre answers ``duplicate``.
        """
        if self._pubacks:
            self.outbox.mark_sent_many(self._pubacks)
            self._pubacks.clear()
        if self._acks:
            acks, self._acks = self._acks, []
            rejected = [a for a in acks if a[1] == "rejected"]
            delivered = [a for a in acks if a[1] != "rejected"]
            if rejected:
                self.stats.rejected += self.outbox.record_acks(rejected)
                for case_id, _, reason in rejected:
                    log.error("case %s: %s", case_id, reason)
            if delivered:
                self.stats.delivered += self.outbox.record_acks(delivered)
                self._delivered_log.append((time.monotonic(), self.stats.delivered))
                for case_id, status, _ in delivered:
                    log.info("case %s delivered (%s)", case_id, status)
                self._purge.set()
