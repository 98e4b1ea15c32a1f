"""The kiosk page: start a case, live preview, capture each view, see quality and result, submit.

Served by the kiosk service on loopback (the kiosk's own browser). Forms carry a
CSRF token (Flask-WTF). Patient identifiers travel only in POST bodies, never
in a URL, so request logs hold none.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time

from flask import Flask, Response, abort, flash, jsonify, redirect, render_template, url_for
from flask_wtf import CSRFProtect, FlaskForm
from werkzeug.serving import make_server
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

try:                                    # WTForms >= 3.3 deprecates (value, label) tuples
    from wtforms.fields.choices import SelectChoice as _choice
except ImportError:                     # pragma: no cover
    def _choice(value, label):
        return (value, label)

from wire.messages import BODY_SITES, LABEL_NAMES, VIEWS

from ..outbox import DiskFullError
from ..service import CLASSIFIED_VIEW, CaseError, KioskService

log = logging.getLogger("edge.web")

VIEW_HELP = {
    "dermoscopic": "Dermatoscope pressed flat on the lesion",
    "close-up": "The lesion and the skin around it, without the dermatoscope",
    "regional": "The body region, to show where the lesion is",
}


def eta_text(seconds: int | None) -> str:
    """Seconds left of the backlog as ``42 s`` / ``7 min`` / ``1.5 h`` (``-`` when unknown)."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def status_bar(status: dict) -> dict:
    """The status bar's wording and colours from :meth:`KioskService.status`, for the page and its script alike.

    ``link`` and ``camera``: ``{"css": "ok" | "warn" | "bad", "text": ...}``; ``drain_eta``: time left.
    Connected but told by the centre that its ingest is offline, the kiosk holds its cases ("warn").
    """
    link = status["link"]
    if link["connected"] and link.get("centre") == "offline":
        pill = {"css": "warn", "text": "Centre offline: cases are kept here and sent when it is back"}
    elif link["connected"]:
        pill = {"css": "ok", "text": "Connected to centre"}
    else:
        pill = {"css": "bad", "text": "Offline: cases are kept and sent later"}
    camera = {"css": "ok", "text": "Camera ready"} if status["camera"] else \
        {"css": "bad", "text": "Camera not connected"}
    return {"link": pill, "camera": camera, "drain_eta": eta_text(status["drain"]["eta_s"])}


class StartForm(FlaskForm):
    """Start a case: referral reference, lesion id, body site."""

    referral_ref = StringField("Referral reference", validators=[DataRequired(), Length(max=64)])
    lesion_id = StringField("Lesion id", validators=[DataRequired(), Length(max=64)])
    body_site = SelectField("Body site", choices=[_choice("", "Choose...")] + [_choice(s, s) for s in BODY_SITES],
                            validators=[DataRequired()])


class ActionForm(FlaskForm):
    """A button that only needs the CSRF token (capture, submit, discard)."""


def create_app(service: KioskService, test_config: dict | None = None) -> Flask:
    """The kiosk page's Flask app for a started :class:`KioskService`."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secrets.token_hex(32), MAX_CONTENT_LENGTH=64 * 1024,
                      PREVIEW_FPS=8)
    if test_config:
        app.config.update(test_config)
    CSRFProtect(app)
    app.extensions["kiosk_service"] = service

    app.add_template_global(status_bar, "status_bar")

    stopping = threading.Event()
    app.extensions["kiosk_stopping"] = stopping

    @app.get("/")
    def index():
        """The page: start form, or the open case with its views, results and actions."""
        draft = service.draft
        return render_template(
            "index.html", draft=draft, start_form=StartForm(), action=ActionForm(), views=VIEWS,
            view_help=VIEW_HELP, required=service.cfg.capture.required_views, label_names=LABEL_NAMES,
            classified_view=CLASSIFIED_VIEW, status=service.status(),
        )

    @app.post("/case")
    def start_case():
        """Open a case from the start form."""
        form = StartForm()
        if not form.validate_on_submit():
            for field, errors in form.errors.items():
                flash(f"{getattr(form, field).label.text if hasattr(form, field) else field}: {errors[0]}",
                      "error")
            return redirect(url_for("index"))
        try:
            service.start_case(form.referral_ref.data, form.lesion_id.data, form.body_site.data)
        except CaseError as exc:
            flash(str(exc), "error")
        return redirect(url_for("index"))

    @app.post("/capture/<view>")
    def capture(view: str):
        """Capture one view of the open case."""
        if view not in VIEWS:
            abort(404)
        if not ActionForm().validate_on_submit():
            abort(400)
        try:
            shot = service.capture(view)
            if not shot.quality.ok:
                flash(f"The {view} picture did not pass the quality check: see below and retake it.", "warn")
        except CaseError as exc:
            flash(str(exc), "error")
        return redirect(url_for("index"))

    @app.post("/submit")
    def submit():
        """Store the open case in the outbox (refusals shown as a flash message)."""
        if not ActionForm().validate_on_submit():
            abort(400)
        try:
            header = service.submit()
            flash(f"Case saved (number {header.seq}). It is sent to the centre automatically.", "ok")
        except DiskFullError as exc:
            flash(str(exc), "diskfull")
        except CaseError as exc:
            flash(str(exc), "error")
        return redirect(url_for("index"))

    @app.post("/discard")
    def discard():
        """Drop the open case."""
        if not ActionForm().validate_on_submit():
            abort(400)
        service.discard()
        flash("Case discarded: nothing was saved.", "ok")
        return redirect(url_for("index"))

    @app.get("/draft/<view>.jpg")
    def draft_image(view: str):
        """The captured JPEG of one view of the open case."""
        draft = service.draft
        if draft is None or view not in draft.images:
            abort(404)
        return Response(draft.images[view].frame.jpeg, mimetype="image/jpeg",
                        headers={"Cache-Control": "no-store"})

    @app.get("/status.json")
    def status():
        """Queue depth, link, camera and free space as JSON, with the status bar's wording (polled by the page)."""
        s = service.status()
        return jsonify({**s, "bar": status_bar(s)})

    @app.get("/preview.mjpg")
    def preview():
        """The live preview as an MJPEG stream (multipart/x-mixed-replace)."""
        period = 1.0 / app.config["PREVIEW_FPS"]

        def frames():
            """Preview frames until the client leaves or the server stops."""
            while not stopping.is_set():
                t0 = time.monotonic()
                try:
                    jpeg = service.preview_jpeg()
                except Exception as exc:       # camera gone: end the stream, the page shows it
                    log.warning("preview stopped: %s", exc)
                    return
                yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                       + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                stopping.wait(max(0.0, period - (time.monotonic() - t0)))

        return Response(frames(), mimetype="multipart/x-mixed-replace; boundary=frame",
                        headers={"Cache-Control": "no-store"})

    @app.get("/preview.jpg")
    def preview_still():
        """One preview frame as a JPEG."""
        try:
            return Response(service.preview_jpeg(), mimetype="image/jpeg", headers={"Cache-Control": "no-store"})
        except Exception:
            abort(503)

    return app


class WebServer:
    """The kiosk page served by Werkzeug in a thread; ``start()`` / ``stop()``."""

    def __init__(self, service: KioskService, host: str = "127.0.0.1", port: int = 8080):
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
