"""A centre configuration for tests and benches: a broker section, and the data under one folder."""

from __future__ import annotations

import uuid
from pathlib import Path

from dashboard.config import CentreConfig


def centre_config(root: Path, broker, client_id: str | None = None, registry: dict | None = None,
                  **ingest) -> CentreConfig:
    """Database, images, quarantine and web secret under ``root``; ``ingest`` overrides the [ingest] section.

    ``registry`` is the [registry] section; by default kiosks need not be registered (the tests of
    the ingest's other duties publish as made-up kiosks), where the real default requires it:
    tests/test_registry_ingest.py runs with ``{"require_registration": True}``.

    ``broker`` is a running test broker (its URL, with ``client_id`` or a fresh one) or a whole
    [broker] section as a dict (TLS settings, for instance).
    """
    root = Path(root)
    section = broker if isinstance(broker, dict) else \
        {"url": broker.url, "client_id": client_id or f"ingest-{uuid.uuid4().hex[:8]}"}
    return CentreConfig.model_validate({
        "broker": section,
        "storage": {"database": str(root / "centre.db"), "images_dir": str(root / "images"),
                    "quarantine_dir": str(root / "quarantine")},
        "web": {"secret_key_file": str(root / "secret")},
        "ingest": ingest,
        "registry": registry if registry is not None else {"require_registration": False},
    })
