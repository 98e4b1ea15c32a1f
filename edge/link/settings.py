"""How the kiosk reaches the broker (:class:`BrokerSettings`, the ``[broker]`` config, defined with the
rest of the kiosk's config in :mod:`wire.kioskconfig`) and the reconnect backoff (:func:`backoff_delay`)."""

from __future__ import annotations

import random

from wire.kioskconfig.broker import BrokerSettings

__all__ = ["BrokerSettings", "backoff_delay"]

_rng = random.Random()


def backoff_delay(attempt: int, lo: float, hi: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: a random delay in [d/2, d], d = min(hi, lo * 2**attempt)."""
    d = min(hi, lo * (2 ** min(attempt, 30)))
    return (rng or _rng).uniform(d / 2, d)
