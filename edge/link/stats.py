"""What the link reports about itself (:class:`LinkStats`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class LinkStats:
    """What the kiosk page and the logs show about the link."""

    connected: bool = False
    inflight: int = 0
    published: int = 0
    delivered: int = 0
    rejected: int = 0
    connects: int = 0
    last_error: str = ""
    since: float = field(default_factory=time.monotonic)
    #: What the centre's ingest last said of itself: online, offline, or unknown (never heard).
    centre: str = "unknown"
