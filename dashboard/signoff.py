"""What happens at sign-off (the letters are made, the outcome goes to the hub's kiosk) and after an addendum.

:func:`on_signed` is the listener registered with :func:`dashboard.readhooks.register_on_signed`: when a
referral's reading becomes final it makes and stores the GP and patient letters (:mod:`dashboard.letters`)
and queues the outcome for the kiosk that sent the referral (:mod:`dashboard.outcomes`), whose sender
publishes it at once and again until the broker takes it. :func:`on_amended` makes the GP letter again when
an addendum follows sign-off. :func:`init_app` creates the hand-over tables, serves the letters
(:mod:`dashboard.letters_views`), registers both listeners and starts the sender.
"""

from __future__ import annotations

import logging

from flask import current_app

from . import letters, letters_views, outcomes, readhooks
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


def on_amended(store, referral_key: str) -> None:
    """The amendment listener: an addendum after sign-off makes the GP letter again (a new revision, marked as
    amended, with the addendum). The patient letter, which carries no addenda, and the outcome sent to the hub
    (the signed plan, which an addendum cannot change) stand."""
    signed = signed_referral(store.conn, referral_key)
    service = current_app.config.get("SERVICE") or letters.default_service()
    made = letters.make_and_store(store.conn, signed, service, kinds=("gp",))
    log.info("referral key %s amended: GP letter revision %d made", signed.key, made["gp"])


def init_app(app) -> None:
    """Create the hand-over tables, serve the letters, listen for sign-offs and start the outcome sender."""
    store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"], app.config.get("QUARANTINE_DIR"))
    try:
        table.ensure_schema(store.conn)
    finally:
        store.close()
    app.register_blueprint(letters_views.bp)
    readhooks.register_on_signed(app, on_signed)
    readhooks.register_on_amended(app, on_amended)
    outcomes.init_app(app)
