"""The kiosk's configuration as the kiosk runs it: the schema and its loader are the shared
:mod:`wire.kioskconfig` (the centre validates kiosk files before signing them); here, which file
runs when a signed update has applied another (``<data_dir>/config/kiosk.toml``).

Example: ``firmware_config/kiosk.demo.toml`` (replay camera, local broker) and
``firmware_config/kiosk.pi.toml`` (Pi camera, TLS). A wrong value gives one message naming the
file, the field and what is wrong (ConfigError).
"""

from __future__ import annotations

import logging
from pathlib import Path

from wire.kioskconfig import CONFIG_FILE, ConfigError, KioskConfig, load

__all__ = ["CONFIG_FILE", "ConfigError", "KioskConfig", "config_override_path", "effective_config_path", "load",
           "rewrite"]

log = logging.getLogger("edge.config")


def config_override_path(data_dir: Path | str) -> Path:
    """Where a configuration applied by a signed update lives (``<data_dir>/config/kiosk.toml``)."""
    return Path(data_dir) / "config" / CONFIG_FILE


def rewrite(path: Path, original: str, text: str) -> None:
    """Replace the config file's ``original`` text with ``text`` (a command writing what it measured into it) if
    the kiosk would load the new file (its TLS files not required); otherwise put ``original`` back and raise
    the ``ConfigError``."""
    path.write_text(text)
    try:
        load(path, check_files=False)
    except ConfigError:
        path.write_text(original)
        raise


def effective_config_path(base_path: Path | str) -> Path:
    """The config to run: an applied update in the data folder if present and valid, else ``base_path``."""
    base = load(base_path, check_files=False)
    override = config_override_path(base.data_dir)
    if override.exists():
        try:
            cfg = load(override, check_files=False)
            if (cfg.device_id, cfg.site) == (base.device_id, base.site):
                return override
            log.error("ignoring %s: it is for another device", override)
        except ConfigError as exc:
            log.error("ignoring the updated configuration: %s", exc)
    return Path(base_path)
