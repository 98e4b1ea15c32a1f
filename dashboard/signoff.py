"""What happens at sign-off: the letters are made and the outcome goes to the hub's kiosk.

:func:`on_signed` is the listener registered with :func:`dashboard.reports.register_on_signed`: when a
referral's reading becomes final it makes and stores the GP and patient letters (:mod:`dashboard.letters`)
and queues the outcome for the kiosk that sent the referral (:mod:`dashboard.outcomes`), whose sender
publishes it at once and again until the broker takes it. :func:`init_app` creates the hand-over
tables, serves the letters (:mod:`dashboard.letters_views`), registers the listener and starts the sender.
"""

from __future__ import annotations

import logging

from flask import current_app

from . import letters, letters_views, outcomes, reports
from .handover import signed_referral
from .store import Store
from .store import handover as table

log = logging.getLogger(__name__)


def on_signed(store, referral_key: str) -> None:
    """The sign-off listener: make and store both letters, queue the outcome and send it off (in the background)."""
    signed = signed_referral(store.conn, referral_key)
    service = current_app.config.get("SERVICE") or letters.default_service()
    letters.make_and_store(store.conn, signed, service)
    outcome = outcomes.queue(store.conn, signed)
    log.info("referral key %s signed off: letters made, outcome %s queued for %s/%s", signed.key,
             outcome.outcome_id, signed.site, signed.device)
    outcomes.kick(current_app)


def init_app(app) -> None:
    """Create the hand-over tables, serve the letters, listen for sign-offs and start the outcome sender."""
    store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"], app.config.get("QUARANTINE_DIR"))
    try:
        table.ensure_schema(store.conn)
    finally:
        store.close()
    app.register_blueprint(letters_views.bp)
    reports.register_on_signed(app, on_signed)
    outcomes.init_app(app)
