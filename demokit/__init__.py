"""The pieces of the demo launcher (``demo.py``, ``make run``), one module per seam.

:mod:`.ports` (free ports), :mod:`.configs` (runtime configs from ``firmware_config/``),
:mod:`.accounts` (demo PKI, dashboard log-ins, kiosk staff roster), :mod:`.seed`
(realistic version-2 referrals so that the dashboard is not empty) and
:mod:`.workers` (the watched child processes).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "firmware_config"
BROKER_TEMPLATE = CONFIG_DIR / "mosquitto.demo.conf"
CENTRE_TEMPLATE = CONFIG_DIR / "centre.demo.toml"
KIOSK_TEMPLATE = CONFIG_DIR / "kiosk.demo.toml"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class DemoError(Exception):
    """Something the demo cannot work around; ``str()`` is the message for the user."""


def say(msg: str) -> None:
    """Print one line of the launcher's own output."""
    print(f"[demo] {msg}", flush=True)

