"""Presence: the kiosk's own retained status (``online``/``offline``, its last will) and the centre's.

The centre's ingest announces itself on a retained presence topic (its last will says
``offline``). While it is offline the link publishes nothing new and resends nothing; when it is
back the ack clocks restart and the backlog goes out at once. A centre that never announced itself
(``unknown``) is treated as online.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pydantic import ValidationError

from wire.messages import CentreStatus, Status

if TYPE_CHECKING:
    from .stats import LinkStats
    from .window import _Flight

log = logging.getLogger("edge.link")


class PresenceMixin:
    """The :class:`~edge.link.Link`'s view of the centre's presence, and its own status message."""

    device_id: str
    software_version: str
    model_version: str
    stats: LinkStats
    _inflight: dict[str, _Flight]
    _next_poll: float

    def _init_presence(self) -> None:
        #: Ingest client id -> its last announced state (wire.messages.CentreStatus).
        self._centre: dict[str, str] = {}
        #: After a connect, nothing is published before this (monotonic) time: the broker sends the
        #: centre's retained presence right after the SUBACK, and a kiosk must not flood a centre
        #: that is away before it has heard so. Cleared by the presence, or 0.25 s after the SUBACK.
        self._centre_settle = 0.0
        self._centre_sub_mid: int | None = None

    def _status(self, state: str) -> str:
        """This kiosk's status message (JSON) saying ``state``, with its software and model versions."""
        return Status(device_id=self.device_id, state=state, at=datetime.now(timezone.utc),
                      software_version=self.software_version, model_version=self.model_version
                      ).model_dump_json()

    @property
    def holding(self) -> bool:
        """True while the centre says it is offline: nothing is published or resent."""
        return self.stats.centre == "offline"

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        """paho's SUBACK callback: the centre's retained presence, if any, comes right after its SUBACK."""
        if mid == self._centre_sub_mid:  # a retained presence, if any, follows the SUBACK at once
            self._centre_settle = min(self._centre_settle, time.monotonic() + 0.25)

    def _on_centre(self, ingest: str, payload: bytes) -> None:
        """Record the presence of the ingest client ``ingest``; when the centre comes back, restart the ack clocks."""
        self._centre_settle = 0.0
        if not payload:  # the retained message was cleared: that ingest no longer exists
            self._centre.pop(ingest, None)
        else:
            try:
                status = CentreStatus.model_validate_json(payload)
            except ValidationError as exc:
                log.warning("ignoring an invalid centre status: %s", exc.errors()[0].get("msg"))
                return
            self._centre[ingest] = status.state
        before = self.stats.centre
        states = self._centre.values()
        self.stats.centre = "online" if "online" in states else ("offline" if states else "unknown")
        if before == self.stats.centre:
            return
        if self.stats.centre == "offline":
            log.warning("the centre is offline: cases wait in the outbox until it is back")
        elif before == "offline":
            log.info("the centre is back: sending the backlog")
            now = time.monotonic()
            for flight in self._inflight.values():  # what the broker kept for the ingest is handled first
                flight.published, flight.resends, flight.dropped = now, 0, False
        self._next_poll = 0.0
