"""The kiosk's configuration file (``kiosk.toml``), shared by both sides: the kiosk runs on it and the
centre validates a kiosk's file before signing it into a config bundle.

* :mod:`.kiosk` -- :class:`KioskConfig` (the whole file) and :func:`load`;
* :mod:`.broker` -- ``[broker]``; :mod:`.camera` -- ``[camera]``; :mod:`.quality` -- ``[quality]``
  (its views' rules in :mod:`.views`, the kiosk's reference in :mod:`.reference`).
"""

from .kiosk import CONFIG_FILE, ConfigError, KioskConfig, load

__all__ = ["CONFIG_FILE", "ConfigError", "KioskConfig", "load"]
