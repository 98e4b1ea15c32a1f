"""Which views each lesion still needs: shared by the lesions, capture and review screens."""

from __future__ import annotations

from wire.messages import VIEWS

from .guard import settings


def views_needed() -> list[str]:
    """The views every lesion needs, in the order they are photographed."""
    return list(settings().required_views)

def view_done(lesion, view: str) -> bool:
    """True when the view has a shot marked to send that may be sent (passed, or with a reason)."""
    return any(s.sendable for s in lesion.chosen(view))

def next_missing(lesion, after: str | None = None) -> str | None:
    """The lesion's next required view without a shot to send (after ``after`` first), else None."""
    order = views_needed() + [v for v in VIEWS if v not in views_needed()]
    if after in order:
        i = order.index(after)
        order = order[i + 1:] + order[:i + 1]
    return next((v for v in order if v in views_needed() and not view_done(lesion, v)), None)
