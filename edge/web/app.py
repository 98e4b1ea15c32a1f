"""The kiosk page's Flask app (``create_app``) and its Werkzeug server (``WebServer``).

Screens, one task each, touch-first for 800x480 and 1280x720 panels:
sign-in (``signin``) -> the appointment's details (``details``: patient, skin type,
referral, consents) -> lesions (``lesions``: body map, size, history) -> photographs
(``capture``) -> review and submit (``review``); tasks from the centre (``tasks``: re-image
requests and the status of referrals sent), reached from the start screen. Forms carry a CSRF token
(Flask-WTF); patient identifiers travel only in POST bodies, never in a URL.
"""

from __future__ import annotations

import secrets
import threading

from flask import Flask, flash, redirect, render_template, session, url_for
from flask_wtf import CSRFProtect
from flask_wtf.csrf import CSRFError
from werkzeug.serving import make_server

from ..appointment import NotSignedIn

from . import capture, details, guard, lesions, review, security, signin, status, tasks
from .status import status_bar


def _csrf_error(exc: CSRFError):
    """A form refused for its CSRF token. Where the idle timeout ended the session (and its token) while the screen
    still showed a form (a status poll can end it just before the page's own idle timer posts its sign-out), the
    sign-in screen with the message that says why, rather than a refusal to go back to a screen that is gone."""
    if guard.ended_idle():
        if not session.get("_flashes"):
            flash(guard.IDLE_MESSAGE, "ok")
        return redirect(url_for("signin.roster"))
    return render_template("message.html", title="Form refused",
                           message=f"The form was refused: {exc.description} Go back and try again."), 400


def create_app(service, test_config: dict | None = None) -> Flask:
    """The kiosk page's Flask app for a started :class:`edge.service.KioskService`."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secrets.token_hex(32), MAX_CONTENT_LENGTH=64 * 1024, PREVIEW_FPS=8)
    if test_config:
        app.config.update(test_config)
    security.init_app(app)
    CSRFProtect(app)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(NotSignedIn, guard.not_signed_in)
    app.extensions["kiosk_service"] = service
    app.extensions["kiosk_stopping"] = threading.Event()
    app.add_template_global(status_bar, "status_bar")
    app.before_request(guard.check_idle)

    @app.context_processor
    def _globals():
        return {"status": service.status(), "signed_in": session.get("staff"),
                "staff_name": session.get("name"), "idle_timeout_s": service.cfg.appointment.idle_timeout_s,
                "action": guard.ActionForm(), "open_task_count": tasks.open_task_count}

    for module in (status, signin, details, lesions, capture, review, tasks):
        app.register_blueprint(module.bp)
    return app


class WebServer:
    """The kiosk page served by Werkzeug in a thread; ``start()`` / ``stop()``."""

    def __init__(self, service, host: str = "127.0.0.1", port: int = 8080):
        """Bind the page to ``host:port`` (loopback by default)."""
        self.app = create_app(service)
        self.server = make_server(host, port, self.app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://{host}:{self.port}/"
        self._thread = threading.Thread(target=self.server.serve_forever, name="edge-web", daemon=True)

    def start(self) -> "WebServer":
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """End preview streams and stop serving."""
        self.app.extensions["kiosk_stopping"].set()
        self.server.shutdown()
        self._thread.join(5)
