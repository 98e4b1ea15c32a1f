"""One :class:`dashboard.store.Store` per request (flaskr's ``get_db`` pattern)."""

from __future__ import annotations

from flask import Flask, current_app, g

from .store import Store


def get_store() -> Store:
    """The request's store, opened on first use from ``DATABASE`` / ``IMAGES_DIR``."""
    if "store" not in g:
        cfg = current_app.config
        g.store = Store(cfg["DATABASE"], cfg["IMAGES_DIR"], cfg.get("QUARANTINE_DIR"))
    return g.store


def close_store(exc: BaseException | None = None) -> None:
    """Close the request's store, if one was opened."""
    store = g.pop("store", None)
    if store is not None:
        store.close()


def init_app(app: Flask) -> None:
    """Register the teardown that closes the store."""
    app.teardown_appcontext(close_store)
