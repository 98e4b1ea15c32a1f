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
        "TLS": config.web.tls,
        "TRUSTED_PROXIES": config.web.trusted_proxies,
        "SESSION_LIFETIME_S": config.web.session_lifetime_s,
        "SESSION_IDLE_S": config.web.session_idle_s,
        "LOGIN_MAX_FAILURES": config.web.login_max_failures,
        "LOGIN_LOCKOUT_S": config.web.login_lockout_s,
        "LOGIN_ADDR_MAX_FAILURES": config.web.login_addr_max_failures,
        "METRICS_TOKEN": config.web.metrics_token,
        "FLEET": config.fleet,
        "REGISTRY": config.registry,
        "UPDATES": config.updates,
        "READING": config.reading,
        "SERVICE": config.service,
        "WORKLIST": config.worklist,
        "PACS": config.pacs,
        "FHIR": config.fhir,
        "MONITORING": config.monitoring,
    }


#: Defaults for settings a test configuration may leave out (the same as the TOML defaults).
DEFAULTS = {"TLS": False, "TRUSTED_PROXIES": 0, "SESSION_LIFETIME_S": 8 * 3600, "SESSION_IDLE_S": 1800,
            "LOGIN_MAX_FAILURES": 5, "LOGIN_LOCKOUT_S": 900, "LOGIN_ADDR_MAX_FAILURES": 20, "METRICS_TOKEN": None,
            "UPDATES": None, "READING": None, "SERVICE": None,
            "WORKLIST": None, "PACS": None, "FHIR": None, "MONITORING": None}


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
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)

    from . import admin, admin_staff, auth, db, security, views, worklist_views
    from .store import Store

    store = Store(app.config["DATABASE"], app.config["IMAGES_DIR"], app.config["QUARANTINE_DIR"])
    try:
        ensure_schema(store.conn)
    finally:
        store.close()
    db.init_app(app)
    auth.init_app(app)       # default-deny guard first: no session -> log-in page / 401, wrong role -> 403
    security.init_app(app)   # then CSRF (400), headers, cookie flags
    app.register_blueprint(views.bp)
    app.register_blueprint(worklist_views.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(admin_staff.bp)
    from . import fleet, metrics

    app.register_blueprint(fleet.bp)
    app.register_blueprint(metrics.bp)
    from . import registry_views

    app.register_blueprint(registry_views.bp)
    from . import reading

    app.register_blueprint(reading.bp)
    from . import signoff

    signoff.init_app(app)    # letters (download, made at sign-off), the outcome to the hub's kiosk
    from . import exports_views

    exports_views.init_app(app)  # the hospital: DICOM to the PACS, the FHIR Bundle to the record (outbox, IT page)
    from . import histology_views
    from .servicereport import views as report_views

    app.register_blueprint(histology_views.bp)  # histology per lesion: the referral page's form, the CSV import
    app.register_blueprint(report_views.bp)  # the service report (/reports)
    return app


def ensure_schema(conn) -> None:
    """Create the dashboard's own tables (users, sessions, throttle, audit log) next to the store's."""
    from . import audit, review, staff, users

    users.ensure_schema(conn)
    staff.ensure_schema(conn)
    audit.ensure_schema(conn)
    review.ensure_schema(conn)
    from .store import reports as report_tables

    report_tables.ensure_schema(conn)
    from .store import histology as histology_tables

    histology_tables.ensure_schema(conn)
    from .servicereport.data import ensure_indexes

    ensure_indexes(conn)  # the service report's covering indexes
    from .fleet import SCHEMA as FLEET_SCHEMA

    conn.executescript(FLEET_SCHEMA)
