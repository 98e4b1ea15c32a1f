"""The centre's registry of kiosks: which kiosk (device id) belongs to which hub, with which certificate.

A kiosk files cases under the hub its registration names and nowhere else. The broker knows who
publishes (the certificate's common name is the MQTT user, :mod:`dashboard.brokerctl`), so the
device id in a topic is the kiosk's own; the registry binds that id to one hub (site) and to the
certificate the admin expects it to hold (serial and/or SHA-256 fingerprint, checked against the
PKI's index for the fleet page's certificate alerts). The ingest (:mod:`dashboard.ingest_worker`)
asks :func:`origin_problem` for every message:

* a registered kiosk publishing under another hub: its message is quarantined with the reason;
* an unregistered kiosk: the sighting is recorded (:func:`record_sighting`, shown as an alert on
  the fleet page, never as a kiosk), and its case is quarantined unless ``require_registration``
  is off (a migration from a centre without a registry).

Registering (admin page ``/devices``, ``python -m dashboard kiosk register``) also registers the
kiosk at the broker with its hub (:meth:`dashboard.brokerctl.BrokerControl.add_kiosk`) when the
broker-admin identity is configured (``[registry.broker]``), so that the broker itself refuses a
publish under another hub. Every change is audited (``kiosk.register``, ``kiosk.unregister``).
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from wire import topics

from .config import RegistryConfig
from .store.schema import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS kiosk_registry (
    device TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    cert_serial TEXT,
    cert_sha256 TEXT,
    registered_at TEXT NOT NULL,
    registered_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kiosk_sightings (
    device TEXT NOT NULL,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (device, site, kind)
);
"""
_HEX = re.compile(r"^[0-9a-f]+$")


class RegistryError(ValueError):
    """A registration refused; ``field`` names the input to fix, ``str()`` says what is wrong."""

    def __init__(self, message: str, field: str = ""):
        """``message`` for a person; ``field`` the form field or option at fault."""
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Kiosk:
    """One registered kiosk."""

    device: str
    site: str
    cert_serial: str | None
    cert_sha256: str | None
    registered_at: datetime
    registered_by: str


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the registry tables if missing."""
    conn.executescript(SCHEMA)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def normalise_serial(value: str | None) -> str | None:
    """A certificate serial as the PKI index writes it (lower-case hex, no colons or leading zeros), or None."""
    v = (value or "").strip().lower().replace(":", "").removeprefix("0x")
    if not v:
        return None
    if not _HEX.match(v) or len(v) > 40:
        raise RegistryError("certificate serial: give the serial in hexadecimal (as `pki status` prints it)",
                            "cert_serial")
    return v.lstrip("0") or "0"


def normalise_fingerprint(value: str | None) -> str | None:
    """A SHA-256 certificate fingerprint as 64 lower-case hex digits (colons allowed in input), or None."""
    v = (value or "").strip().lower().replace(":", "").removeprefix("sha256=")
    if not v:
        return None
    if not _HEX.match(v) or len(v) != 64:
        raise RegistryError("certificate fingerprint: give the SHA-256 fingerprint, 64 hexadecimal digits "
                            "(`openssl x509 -noout -fingerprint -sha256 -in kiosk.crt`)", "cert_sha256")
    return v


def certificate_identity(pem: bytes) -> tuple[str, str, str]:
    """``(common name, serial, SHA-256 fingerprint)`` of a PEM certificate; RegistryError if unreadable."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise RegistryError("certificate: not a PEM certificate (the kiosk's kiosks/<id>.crt)", "cert_pem") from None
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return (str(cns[0].value) if cns else "", format(cert.serial_number, "x"),
            cert.fingerprint(hashes.SHA256()).hex())


def _row(r) -> Kiosk:
    return Kiosk(r[0], r[1], r[2], r[3], datetime.fromisoformat(r[4]), r[5])


def get(conn: sqlite3.Connection, device: str) -> Kiosk | None:
    """The registration of ``device``, or None."""
    r = conn.execute("SELECT device, site, cert_serial, cert_sha256, registered_at, registered_by "
                     "FROM kiosk_registry WHERE device=?", (device,)).fetchone()
    return _row(r) if r else None


def list_kiosks(conn: sqlite3.Connection) -> list[Kiosk]:
    """Every registered kiosk, by hub then id."""
    return [_row(r) for r in conn.execute(
        "SELECT device, site, cert_serial, cert_sha256, registered_at, registered_by FROM kiosk_registry "
        "ORDER BY site, device")]


def hubs(conn: sqlite3.Connection, devices: set[str] | list[str]) -> dict[str, str]:
    """Registered hub of each of ``devices`` that is registered (device -> site): one query."""
    devices = sorted(set(devices))
    if not devices:
        return {}
    marks = ",".join("?" * len(devices))
    return dict(conn.execute(f"SELECT device, site FROM kiosk_registry WHERE device IN ({marks})", devices))


def register(conn: sqlite3.Connection, device: str, site: str, *, cert_serial: str | None = None,
             cert_sha256: str | None = None, actor: str, at: datetime | None = None) -> Kiosk:
    """Register (or re-register) kiosk ``device`` at hub ``site`` expecting the certificate given by its
    serial and/or SHA-256 fingerprint (at least one); return the registration. Not audited here."""
    try:
        topics.check_id(device, "kiosk id")
    except ValueError as exc:
        raise RegistryError(str(exc), "device") from None
    try:
        topics.check_id(site, "hub")
    except ValueError as exc:
        raise RegistryError(str(exc), "site") from None
    serial, sha = normalise_serial(cert_serial), normalise_fingerprint(cert_sha256)
    if serial is None and sha is None:
        raise RegistryError("expected certificate: give its serial or its SHA-256 fingerprint (or the certificate "
                            "file), so that a kiosk holding another certificate is noticed", "cert_serial")
    at = at or _now()
    with transaction(conn):
        conn.execute(
            "INSERT INTO kiosk_registry (device, site, cert_serial, cert_sha256, registered_at, registered_by) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT(device) DO UPDATE SET site=excluded.site, "
            "cert_serial=excluded.cert_serial, cert_sha256=excluded.cert_sha256, "
            "registered_at=excluded.registered_at, registered_by=excluded.registered_by",
            (device, site, serial, sha, at.isoformat(), actor[:128]))
        conn.execute("DELETE FROM kiosk_sightings WHERE device=? AND site=?", (device, site))
    return get(conn, device)


def unregister(conn: sqlite3.Connection, device: str) -> bool:
    """Remove kiosk ``device``'s registration; False when it was not registered. Not audited here."""
    with transaction(conn):
        return conn.execute("DELETE FROM kiosk_registry WHERE device=?", (device,)).rowcount > 0


def origin_problem(registered_site: str | None, site: str, device: str, require: bool) -> tuple[str, str] | None:
    """Why a message of ``device`` on a topic under ``site`` is refused, as ``(code, reason)``, or None.

    ``registered_site`` is the kiosk's registered hub (None: not registered). Codes: ``wrong-hub``,
    ``unregistered`` (only when ``require``).
    """
    if registered_site is None:
        if require:
            return "unregistered", f"kiosk {device} is not registered at the centre (register it: admin, Kiosks)"
        return None
    if registered_site != site:
        return "wrong-hub", f"kiosk {device} is registered for hub {registered_site}, not {site}"
    return None


def record_sighting(conn: sqlite3.Connection, site: str, device: str, kind: str, at: datetime) -> None:
    """Remember that an unregistered kiosk ``device`` published a ``kind`` message under ``site``."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO kiosk_sightings (device, site, kind, first_at, last_at) VALUES (?,?,?,?,?) "
            "ON CONFLICT(device, site, kind) DO UPDATE SET last_at=max(last_at, excluded.last_at), "
            "count=count+1", (device, site, kind, at.isoformat(), at.isoformat()))


def unregistered(conn: sqlite3.Connection) -> list[dict]:
    """Kiosks heard of but not registered (sightings, and ``devices`` rows a migration left), newest first:
    device, site, kinds, first_at, last_at, count."""
    out: dict[tuple[str, str], dict] = {}
    for device, site, kind, first, last, count in conn.execute(
            "SELECT device, site, kind, first_at, last_at, count FROM kiosk_sightings "
            "WHERE device NOT IN (SELECT device FROM kiosk_registry)"):
        e = out.setdefault((device, site), {"device": device, "site": site, "kinds": [], "first_at": first,
                                            "last_at": last, "count": 0})
        e["kinds"].append(kind)
        e["first_at"], e["last_at"] = min(e["first_at"], first), max(e["last_at"], last)
        e["count"] += count
    for device, site, last in conn.execute(
            "SELECT device, site, last_seen FROM devices WHERE device NOT IN (SELECT device FROM kiosk_registry)"):
        e = out.setdefault((device, site), {"device": device, "site": site, "kinds": [], "first_at": last,
                                            "last_at": last, "count": 0})
        e["kinds"].append("stored")
        e["last_at"] = max(e["last_at"], last)
    rows = sorted(out.values(), key=lambda e: e["last_at"], reverse=True)
    for e in rows:
        e["first_at"], e["last_at"] = datetime.fromisoformat(e["first_at"]), datetime.fromisoformat(e["last_at"])
        e["kinds"] = sorted(set(e["kinds"]))
    return rows


def apply_at_broker(cfg: RegistryConfig, device: str, site: str | None, remove: bool = False) -> str:
    """Register kiosk ``device`` at the broker bound to ``site`` (or, ``remove``, delete it there: its
    connection is dropped) with the configured broker-admin identity; return what was done, in words.

    Raises :class:`dashboard.brokerctl.BrokerControlError` when the broker refuses or cannot be reached."""
    from .brokerctl import BrokerControl

    if cfg.broker is None:
        return "broker not configured ([registry.broker]): register it there with `pki issue-kiosk --broker`"
    b = cfg.broker
    ctl = BrokerControl(b.url, b.ca_file, b.cert_file, b.key_file)
    if remove:
        return "removed at the broker" if ctl.remove_kiosk(device) else "was not registered at the broker"
    ctl.add_kiosk(device, site)
    return f"registered at the broker for hub {site}"


# ---------------------------------------------------------------- the PKI's index
def pki_entries(pki_dir: Path | None) -> list[dict]:
    """The PKI's ``index.json`` entries (empty when not configured or unreadable)."""
    if pki_dir is None:
        return []
    try:
        return json.loads((Path(pki_dir) / "index.json").read_text())
    except (OSError, ValueError):
        return []


def live_kiosk_certs(entries: list[dict]) -> dict[str, list[dict]]:
    """Live (not revoked) kiosk certificates by device id, oldest first."""
    out: dict[str, list[dict]] = {}
    for e in entries:
        if e.get("kind") == "kiosk" and not e.get("revoked_at"):
            out.setdefault(e["name"], []).append(e)
    return out


def seed_from_pki(conn: sqlite3.Connection, pki_dir: Path, *, actor: str, only: str | None = None) -> list[Kiosk]:
    """Register every kiosk with a live certificate bound to a hub in the PKI's index (``pki issue-kiosk
    --site``) that is not registered yet, expecting that certificate (serial and, when its file is in the
    PKI folder, fingerprint); ``only``: that kiosk alone. Return the new registrations."""
    done = []
    for device, certs in sorted(live_kiosk_certs(pki_entries(pki_dir)).items()):
        cert = certs[-1]
        if (only and device != only) or not cert.get("site") or get(conn, device) is not None:
            continue
        sha = None
        crt = Path(pki_dir) / "kiosks" / f"{device}.crt"
        if crt.exists():
            _, serial, sha = certificate_identity(crt.read_bytes())
            if serial != cert["serial"]:
                sha = None  # the file is another certificate than the index's latest
        done.append(register(conn, device, cert["site"], cert_serial=cert["serial"], cert_sha256=sha, actor=actor))
    return done


def certificate_status(kiosk: Kiosk, certs: list[dict], now: datetime) -> tuple[datetime | None, str | None]:
    """``(expiry, problem)`` of a registered kiosk's expected certificate from the PKI index entries ``certs``
    (its live ones): the expected one's expiry, or a problem when it is revoked or not in the index."""
    if kiosk.cert_serial is None:
        latest = certs[-1] if certs else None
        return (datetime.fromisoformat(latest["expires_at"]) if latest else None), None
    match = [e for e in certs if e["serial"].lstrip("0") == kiosk.cert_serial]
    if not match:
        return None, (f"registered certificate {kiosk.cert_serial[:16]} is not live in the PKI "
                      "(revoked or renewed): register the kiosk's current certificate")
    return datetime.fromisoformat(match[-1]["expires_at"]), None
