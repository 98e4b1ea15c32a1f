"""What follows a signature: the listeners run when a referral's reading becomes final, and after an addendum.

:func:`register_on_signed` (letters and the outcome to the hub, :mod:`dashboard.signoff`; the PACS and FHIR
queue, :mod:`dashboard.pacs`) and :func:`register_on_amended` (the GP letter made again with the addendum)
keep their listeners in the app; the reading view calls :func:`on_signed` after the commit that makes a
referral final and :func:`on_amended` after an addendum. A listener that fails loses nothing that was
committed: it is logged and named in the answer, so the reader is told.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

_HOOKS = "dermkiosk.on_signed"
_AMEND_HOOKS = "dermkiosk.on_amended"


def register_on_signed(app, fn) -> None:
    """Call ``fn(store, referral_key)`` after each commit that makes a referral's reading final."""
    app.extensions.setdefault(_HOOKS, []).append(fn)


def register_on_amended(app, fn) -> None:
    """Call ``fn(store, referral_key)`` after an addendum to a referral whose reading is already final."""
    app.extensions.setdefault(_AMEND_HOOKS, []).append(fn)


def on_signed(store, referral_key: str) -> list[str]:
    """Run the registered sign-off listeners for ``referral_key``; return the errors (each logged), if any.

    The signatures are committed before: a listener that fails (a letter that cannot be made) loses nothing
    and is named in the answer, so the reader is told.
    """
    return _run_listeners(_HOOKS, store, referral_key)


def on_amended(store, referral_key: str) -> list[str]:
    """Run the amendment listeners (the GP letter made again) after an addendum to ``referral_key``, which the
    caller has checked is signed off (before that, the letters made at sign-off hold every addendum; a listener
    run too early fails with ``NotSigned`` and is named). Returns the errors, as :func:`on_signed`."""
    return _run_listeners(_AMEND_HOOKS, store, referral_key)


def _run_listeners(hook: str, store, referral_key: str) -> list[str]:
    from flask import current_app

    errors = []
    for fn in current_app.extensions.get(hook, []):
        try:
            fn(store, referral_key)
        except Exception as exc:  # noqa: BLE001 - a listener's failure must not undo or hide what was committed
            log.exception("listener %s failed for referral key %s", getattr(fn, "__name__", fn), referral_key)
            errors.append(f"{getattr(fn, '__name__', 'listener')}: {exc}")
    return errors
