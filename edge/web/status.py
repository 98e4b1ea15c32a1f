"""The status bar (link, queue, camera, free space) and the live preview, on every kiosk screen."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, abort, current_app, jsonify, session

log = logging.getLogger("edge.web")

bp = Blueprint("live", __name__)


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


def _service():
    return current_app.extensions["kiosk_service"]


@bp.get("/status.json")
def status():
    """Queue depth, link, camera and free space as JSON with the status bar's wording (polled by the page).

    ``signed_in`` tells the page's script that the server signed the photographer out (idle).
    Polling is not activity: it never keeps a session alive.
    """
    s = _service().status()
    return jsonify({**s, "bar": status_bar(s), "signed_in": bool(session.get("staff"))})


@bp.get("/preview.mjpg")
def preview():
    """The live preview as an MJPEG stream (multipart/x-mixed-replace)."""
    if not session.get("staff"):
        abort(403)                         # a photograph of a patient's skin: signed-in staff only
    service = _service()
    stopping = current_app.extensions["kiosk_stopping"]
    period = 1.0 / current_app.config["PREVIEW_FPS"]

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

    return Response(frames(), mimetype="multipart/x-mixed-replace; boundary=frame")


@bp.get("/preview.jpg")
def preview_still():
    """One preview frame as a JPEG (signed-in staff only)."""
    if not session.get("staff"):
        abort(403)
    try:
        return Response(_service().preview_jpeg(), mimetype="image/jpeg")
    except Exception:
        abort(503)
