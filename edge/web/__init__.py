"""The kiosk page: the photographer's appointment, screen by screen, by touch.

Modules: ``app`` (``create_app``, ``WebServer``), ``security`` (headers), ``guard``
(sign-in session, idle timeout), ``status`` (status bar, live preview), and one
blueprint per part of the appointment: ``signin``, ``details``, ``lesions``
(with ``bodymap``), ``capture`` and ``review``. Served by the kiosk service on
loopback for the kiosk's own browser.
"""

from .app import WebServer, create_app
from .status import eta_text, status_bar

__all__ = ["WebServer", "create_app", "eta_text", "status_bar"]
