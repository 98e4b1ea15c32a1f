"""The demo's identities: its PKI, the dashboard log-ins and the kiosk staff roster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from . import ROOT, DemoError, say


def ensure_pki(pki_dir: Path, device_id: str) -> dict[str, tuple[Path, Path]]:
    """The demo's PKI in ``pki_dir`` (``dashboard.pki``), made on first run and reused afterwards:
    CA and CRL, the broker's certificate (localhost, 127.0.0.1), the ingest's, the update
    publisher's, the broker admin's (``pki revoke --broker``) and the kiosk's (CN = its device id).
    Returns ``{"broker"|"ingest"|"updates"|"broker-admin"|"kiosk": (cert, key)}``."""
    from dashboard.pki import Pki, PkiError

    pki = Pki(pki_dir)
    try:
        if not pki.exists():
            pki.init(name="DermKiosk demo CA")
            say(f"made a demo certificate authority in {pki_dir}")
        out = {}
        for role, name, issue in (("broker", "broker", lambda: pki.issue_broker("localhost")),
                                  ("ingest", "ingest", pki.issue_ingest),
                                  ("updates", "updates", pki.issue_updates),
                                  ("broker-admin", "broker-admin", pki.issue_broker_admin),
                                  ("kiosk", device_id, lambda: pki.issue_kiosk(device_id))):
            problem = pki.check(name)
            if problem is not None:
                if role == "kiosk" and pki.live(name):
                    pki.revoke(name)     # a kiosk gets a new certificate only once the old one is revoked
                issue()
                if problem != "missing":
                    say(f"demo PKI: {name} certificate was {problem}: issued a new one")
            out[role] = pki.paths(name)
        pki.write_crl()          # fresh at every start: an expired CRL would lock every client out
    except PkiError as exc:
        raise DemoError(f"demo PKI: {exc}") from None
    return out


def write_broker_rules(pki_dir: Path, broker_dir: Path) -> Path:
    """The broker's access rules (dynamic-security plugin file, ``dashboard.brokerctl``) in
    ``broker_dir`` for the kiosks live in the demo PKI, written before the broker starts."""
    from dashboard.brokerctl import DYNSEC_FILE, sync_file
    from dashboard.pki import Pki

    return sync_file(broker_dir / DYNSEC_FILE, Pki(pki_dir))


#: Demo log-ins (one per dashboard role), re-set at every start; loopback-only demo, never production.
DEMO_USERS = (("derm", "dermatologist"), ("it", "it"), ("admin", "admin"))
DEMO_PASSWORD = "dermkiosk-demo"


def ensure_demo_users(centre_conf: Path) -> None:
    """Create (or re-set) the demo's dashboard users with ``python -m dashboard create-user ...
    --password-stdin --update``: the password goes through standard input, never the command line."""
    for name, role in DEMO_USERS:
        r = subprocess.run([sys.executable, "-m", "dashboard", "create-user", "--config", str(centre_conf),
                            "--username", name, "--role", role, "--password-stdin", "--update"],
                           input=DEMO_PASSWORD + "\n", capture_output=True, text=True, timeout=60, cwd=ROOT)
        if r.returncode != 0:
            raise DemoError(f"demo user {name}: {r.stderr.strip() or r.stdout.strip()}")



#: The demo kiosk's photographer (staff id, name) and PIN, re-set at every start and printed in the banner.
DEMO_STAFF = ("ph.demo", "Demo Photographer")
DEMO_PIN = "2468"


def ensure_demo_staff(centre_conf: Path, roster_file: Path) -> None:
    """Add (or re-set) the demo photographer at the centre with ``python -m dashboard staff add --pin-stdin
    --update``, then write the roster the kiosk starts with (``staff export``: the file its config's
    ``appointment.staff_file`` names, until a signed roster replaces it)."""
    staff_id, name = DEMO_STAFF
    for args, stdin in ((["add", "--staff-id", staff_id, "--name", name, "--pin-stdin", "--update"], DEMO_PIN + "\n"),
                        (["export", "--out", str(roster_file)], "")):
        r = subprocess.run([sys.executable, "-m", "dashboard", "staff", *args, "--config", str(centre_conf)],
                           input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT)
        if r.returncode != 0:
            raise DemoError(f"demo staff ({args[0]}): {r.stderr.strip() or r.stdout.strip()}")


def ensure_update_key(key_dir: Path) -> tuple[Path, Path]:
    """The demo's update signing key pair (made on the first run): the centre signs staff rosters with it,
    the demo kiosk verifies them with the public half."""
    from dashboard.updates import make_key

    priv, pub = key_dir / "update-signing.key", key_dir / "update-signing.pub"
    if not priv.exists():
        make_key(key_dir)
    return priv, pub


def ensure_metrics_token(run_dir: Path) -> str:
    """The demo's ``/metrics`` bearer token (``[web] metrics_token``), made on the first run and kept in
    ``run_dir/metrics_token`` (mode 0600); printed in the banner so that a scrape can be tried at once."""
    import os
    import secrets

    path = run_dir / "metrics_token"
    if path.exists() and len(path.read_text().strip()) >= 32:
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def ensure_demo_kiosk(centre_conf: Path, device_id: str, site: str, cert: Path) -> None:
    """Register the demo kiosk at its hub in the centre's kiosk registry (expecting its current
    certificate), unless it is registered so already; audited as ``kiosk.register`` by ``demo``."""
    from dashboard import audit, ensure_schema, registry
    from dashboard.config import load_config
    from dashboard.store import Store

    cfg = load_config(centre_conf)
    _, serial, sha = registry.certificate_identity(cert.read_bytes())
    store = Store(cfg.storage.database, cfg.storage.images_dir, cfg.storage.quarantine_dir)
    try:
        ensure_schema(store.conn)
        registry.ensure_schema(store.conn)
        k = registry.get(store.conn, device_id)
        if k is not None and (k.site, k.cert_serial, k.cert_sha256) == (site, serial, sha):
            return
        registry.register(store.conn, device_id, site, cert_serial=serial, cert_sha256=sha, actor="demo")
        audit.append(store.conn, actor="demo", action="kiosk.register", target=device_id,
                     detail=f"hub {site}, certificate serial {serial} (the demo kiosk)")
    finally:
        store.close()
