"""Kiosks and quarantine pages: the kiosk registry (register, unregister) and quarantined payloads.

``/devices`` (roles ``it``, ``admin``) lists the registered kiosks, the kiosks heard from but not
registered (an alert), and for an admin the form that registers one (kiosk id, hub, expected
certificate: serial and/or SHA-256 fingerprint, or taken from the PKI's index when ``[registry]
pki_dir`` is set); registering also registers the kiosk at the broker bound to its hub when
``[registry.broker]`` is set. ``/quarantine`` shows why each message was refused; an admin may
download a payload for analysis (``/quarantine/<id>/payload``): always an attachment named
``quarantine-<id>.bin``, served as opaque bytes with a sandboxing CSP, never rendered. There is
no path that releases a quarantined message into the store. Every change and download is audited
(``kiosk.register``, ``kiosk.unregister``, ``quarantine.download``).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from . import audit, registry
from .auth import role_required
from .brokerctl import BrokerControlError
from .counters import reason_code
from .db import get_store
from .fleet import registry_config

bp = Blueprint("registry", __name__)


def devices_page(error: str | None = None, form: dict | None = None, status: int = 200):
    """The kiosks page: registered kiosks with their last state, unregistered ones, the register form."""
    store = get_store()
    seen = {d["device"]: d for d in store.list_devices()}
    cfg = registry_config()
    certs = registry.live_kiosk_certs(registry.pki_entries(cfg.pki_dir))
    kiosks = [{"k": k, "seen": seen.get(k.device)} for k in registry.list_kiosks(store.conn)]
    return render_template("devices.html", kiosks=kiosks, strangers=registry.unregistered(store.conn),
                           error=error, form=form or {}, pki=cfg.pki_dir is not None,
                           broker=cfg.broker is not None,
                           unregistered_certs=sorted(d for d in certs if registry.get(store.conn, d) is None),
                           is_admin=current_user.role == "admin"), status


@bp.route("/devices/register", methods=["POST"])
@role_required("admin")
def register():
    """Register (or re-register) a kiosk at a hub with its expected certificate; also at the broker."""
    store = get_store()
    cfg = registry_config()
    form = {k: request.form.get(k, "").strip() for k in ("device", "site", "cert_serial", "cert_sha256")}
    serial, sha = form["cert_serial"], form["cert_sha256"]
    if not serial and not sha and cfg.pki_dir is not None:   # the kiosk's live certificate in the PKI index
        live = registry.live_kiosk_certs(registry.pki_entries(cfg.pki_dir)).get(form["device"])
        serial = live[-1]["serial"] if live else ""
    try:
        k = registry.register(store.conn, form["device"], form["site"], cert_serial=serial, cert_sha256=sha,
                              actor=current_user.username)
    except registry.RegistryError as exc:
        return devices_page(str(exc), {**form, "field": exc.field}, 422)
    try:
        at_broker = registry.apply_at_broker(cfg, k.device, k.site)
    except BrokerControlError as exc:
        at_broker = f"NOT registered at the broker: {exc}"
        flash(f"Kiosk {k.device} registered at the centre, but not at the broker: {exc}", "error")
    else:
        flash(f"Kiosk {k.device} registered for hub {k.site} ({at_broker}).")
    audit.record("kiosk.register", k.device, f"hub {k.site}, certificate serial {k.cert_serial or '-'}, "
                                             f"sha256 {(k.cert_sha256 or '-')[:16]}; {at_broker}")
    return redirect(url_for("dashboard.devices"), 303)


@bp.route("/devices/<device>/unregister", methods=["POST"])
@role_required("admin")
def unregister(device: str):
    """Remove a kiosk's registration (its cases are quarantined from now on); also at the broker."""
    store = get_store()
    k = registry.get(store.conn, device)
    if k is None:
        abort(404)
    registry.unregister(store.conn, device)
    try:
        at_broker = registry.apply_at_broker(registry_config(), device, None, remove=True)
    except BrokerControlError as exc:
        at_broker = f"NOT removed at the broker: {exc}"
    audit.record("kiosk.unregister", device, f"was hub {k.site}; {at_broker}")
    flash(f"Kiosk {device} is no longer registered ({at_broker}).")
    return redirect(url_for("dashboard.devices"), 303)


def quarantine_page():
    """The quarantine page: each refused message with its reason and reason code; download for admins."""
    items = get_store().list_quarantine(200)
    for q in items:
        q["code"] = reason_code(q["reason"])
        q["kind"] = q["topic"].rsplit("/", 1)[-1] if q["device"] else "invalid topic"
    return render_template("quarantine.html", items=items, is_admin=current_user.role == "admin")


@bp.route("/quarantine/<int:qid>/payload")
@role_required("admin")
def quarantine_payload(qid: int):
    """A quarantined payload as a download (audited), never shown in the browser."""
    store = get_store()
    row = store.get_quarantine(qid)
    if row is None:
        abort(404)
    path = store.quarantine_payload_path(row)
    if path is None:
        abort(410, description="the payload of this message was not kept (the disk was full when it arrived)")
    audit.record("quarantine.download", f"quarantine {qid}",
                 f"sha256 {row['payload_sha256']}, {row['payload_size']} bytes, {reason_code(row['reason'])}")
    resp = send_file(path, mimetype="application/octet-stream", as_attachment=True,
                     download_name=f"quarantine-{qid}.bin", max_age=0, conditional=False, etag=False)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp
