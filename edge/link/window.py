"""The in-flight window: outbox cases published and not yet acknowledged by the centre.

At most ``max_inflight`` cases and about ``max_inflight_bytes`` (one case always goes) are in
flight; the window is filled from the outbox oldest ``seq`` first, and a case whose centre ack is
overdue is published again (the centre stores a case once). Nothing new goes out and nothing is
resent while the centre says it is offline (:mod:`.presence`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from ..outbox import CaseDataError

if TYPE_CHECKING:
    import threading

    from ..outbox import Outbox
    from .settings import BrokerSettings
    from .stats import LinkStats

log = logging.getLogger("edge.link")

#: First retry after the broker dropped a case for want of a subscriber (doubling per resend).
_DROPPED_RETRY_S = 1.0
#: How often the outbox is polled for new cases when nothing woke the link.
_POLL_S = 0.5


@dataclass
class _Flight:
    """One published case waiting for PUBACK and the centre's ack."""

    mid: int
    published: float
    #: payload bytes (the window is bounded in bytes too)
    size: int = 0
    resends: int = 0
    pubacked: bool = False
    #: The broker said "no matching subscribers": the ingest is away without a session, retry soon.
    dropped: bool = False


class WindowMixin:
    """The :class:`~edge.link.Link`'s in-flight window (link thread only)."""

    broker: BrokerSettings
    outbox: Outbox
    stats: LinkStats
    case_topic: str
    _wake: threading.Event
    _centre_settle: float
    holding: bool

    def _init_window(self, broker: BrokerSettings) -> None:
        self._inflight: dict[str, _Flight] = {}
        self._mids: dict[int, str] = {}
        self._limit = broker.message_size_limit
        self._next_poll = 0.0

    def _publish(self, client: mqtt.Client, case_id: str) -> bool:
        """Publish one case; False when the connection cannot take it now."""
        try:
            payload = self.outbox.payload(case_id)
        except KeyError:
            self._inflight.pop(case_id, None)
            return True     # purged or removed meanwhile
        except CaseDataError as exc:
            self._inflight.pop(case_id, None)
            self.outbox.mark_rejected(case_id, f"not sent: {exc}")
            log.error("case %s not sent: %s", case_id, exc)
            return True
        if len(payload) > self._limit:
            self._inflight.pop(case_id, None)
            reason = (f"not sent: {len(payload)} bytes is over the broker's message size limit of "
                      f"{self._limit} bytes (fewer or smaller images, or raise message_size_limit on both)")
            self.outbox.mark_rejected(case_id, reason)
            self.stats.rejected += 1
            log.error("case %s %s", case_id, reason)
            return True
        info = client.publish(self.case_topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        old = self._inflight.get(case_id)
        self._inflight[case_id] = _Flight(mid=info.mid, published=time.monotonic(), size=len(payload),
                                          resends=(old.resends + 1) if old else 0)
        self._mids[info.mid] = case_id
        self.stats.published += 1
        log.debug("case %s published (mid %s)", case_id, info.mid)
        return True

    def _pump(self, client: mqtt.Client) -> None:
        """Fill the in-flight window from the outbox, oldest seq first."""
        self.stats.inflight = len(self._inflight)
        free = self.broker.max_inflight - len(self._inflight)
        now = time.monotonic()
        woken = self._wake.is_set()
        if free <= 0 or self.holding or now < self._centre_settle or (not woken and now < self._next_poll):
            return
        self._wake.clear()
        self._next_poll = now + _POLL_S
        held = sum(f.size for f in self._inflight.values())  # bytes in flight, kept up to date below
        for case in self.outbox.pending(free, exclude=set(self._inflight)):
            if self._inflight and held >= self.broker.max_inflight_bytes:
                break
            if not self._publish(client, case.case_id):
                break
            flight = self._inflight.get(case.case_id)
            held += flight.size if flight else 0
        self.stats.inflight = len(self._inflight)

    def _resend_overdue(self, client: mqtt.Client) -> None:
        """Publish again the cases whose centre ack is overdue (the centre stores a case once)."""
        if self.holding:
            return
        now = time.monotonic()
        for case_id, flight in list(self._inflight.items()):
            wait = self.broker.ack_timeout_s * (2 ** min(flight.resends, 5))
            if flight.dropped:
                wait = min(wait, _DROPPED_RETRY_S * (2 ** min(flight.resends, 5)))
            if now - flight.published > wait:
                log.info("case %s: no ack after %.0f s, publishing again", case_id, wait)
                self._mids.pop(flight.mid, None)
                self._publish(client, case_id)
