"""DermKiosk centre: ingest (MQTT -> store), store (SQLite + content-addressed images), dashboard (Flask).

Imports flow one way: ``ingest`` -> ``store`` <- ``views``; ``create_app`` is
the flaskr-style application factory::

    app = create_app({"DATABASE": "/tmp/c.db", "IMAGES_DIR": "/tmp/images"})

Without ``test_config`` it reads the TOML file named by the environment
variable ``DERMKIOSK_CENTRE_CONFIG`` (or the built-in defaults under ./var/centre).
"""

from __future__ import annotations

import os
import secrets

from flask import Flask

from .config import CentreConfig, load_config, secret_key


def app_config(config: CentreConfig) -> dict:
    """Flask settings (``DATABASE``, ``IMAGES_DIR``, ``QUARANTINE_DIR``, ``SECRET_KEY``) from a centre config."""
    return {
        "DATABASE": str(config.storage.database),
        "IMAGES_DIR": str(config.storage.images_dir),
        "QUARANTINE_DIR": str(config.storage.quarantine_dir),
        "SECRET_KEY": secret_key(config.web.secret_key_file),
    }


def create_app(test_config: dict | None = None) -> Flask:
    """Create the dashboard app; ``test_config`` (e.g. ``{"DATABASE": path, "IMAGES_DIR": path}``) wins."""
    app = Flask(__name__)
    if test_config is None:
        path = os.environ.get("DERMKIOSK_CENTRE_CONFIG")
        app.config.from_mapping(app_config(load_config(path) if path else CentreConfig()))
    else:
        app.config.from_mapping(SECRET_KEY=secrets.token_hex(32))
        app.config.update(test_config)
    for key in ("DATABASE", "IMAGES_DIR"):
        if not app.config.get(key):
            raise ValueError(f"create_app: {key} is required")
    app.config.setdefault("QUARANTINE_DIR", os.path.join(os.path.dirname(app.config["IMAGES_DIR"]), "quarantine"))

    from . import db, views

    db.init_app(app)
    app.register_blueprint(views.bp)
    return app
