"""``python -m dashboard pki ...``: the certificate authority's command line (:mod:`dashboard.pki`).

    python -m dashboard pki --dir DIR init                 # CA key + certificate, empty CRL
    python -m dashboard pki --dir DIR issue-broker HOST    # broker server certificate (SAN HOST + 127.0.0.1)
    python -m dashboard pki --dir DIR issue-ingest         # ingest client certificate (CN "ingest")
    python -m dashboard pki --dir DIR issue-ingest --instance 2   # a second ingest process (CN "ingest-2")
    python -m dashboard pki --dir DIR issue-updates        # update publisher's certificate (CN "updates")
    python -m dashboard pki --dir DIR issue-broker-admin   # the broker's control identity (CN "broker-admin")
    python -m dashboard pki --dir DIR issue-kiosk DEVICE [--site SITE] [--broker URL]
                                                           # kiosk certificate (CN = device id, 397 days),
                                                           # registered at the broker with its site
    python -m dashboard pki --dir DIR renew-kiosk DEVICE [--revoke-old]   # a new certificate, same name
    python -m dashboard pki --dir DIR revoke DEVICE [--broker URL --broker-reload CMD --broker-crl PATH]
                                                           # revoke a kiosk: CRL rewritten, installed and
                                                           # reloaded, its registration and connection dropped
    python -m dashboard pki --dir DIR crl                  # re-sign the CRL (before it expires)
    python -m dashboard pki --dir DIR status               # certificates, expiry, CRL next update
    python -m dashboard pki --dir DIR broker-sync FILE     # the broker's access rules file (broker stopped)
    python -m dashboard pki --dir DIR broker-kiosks --broker URL   # kiosks registered at a running broker

Commands that change who may connect also apply the change to a running broker when told where
it is (options, or the environment variables in brackets):

``--broker URL`` [``DERMKIOSK_BROKER_URL``]
    the broker's ``mqtts://`` address; with the PKI's ``broker-admin`` certificate
    (``issue-broker-admin``) a new kiosk is registered there and a revoked one deleted, which
    makes the broker drop its open connection (:mod:`dashboard.brokerctl`).
``--broker-crl PATH`` [``DERMKIOSK_BROKER_CRL``]
    where the broker reads its CRL (``crlfile``) when that is not this PKI's ``crl.pem``: the new
    CRL is copied there.
``--broker-reload COMMAND`` [``DERMKIOSK_BROKER_RELOAD``]
    the command that makes the broker re-read the CRL (SIGHUP), e.g. ``"systemctl reload
    mosquitto"`` (Debian's unit sends SIGHUP; its broker runs in the foreground and writes no
    pid file); split like a shell would, but run without one.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from .brokerctl import BROKER_ADMIN_CN, BrokerControl, BrokerControlError, sync_file
from .pki import CRL_DAYS, KIOSK_DAYS, LEAF_DAYS, Pki, PkiError

URL_ENV, CRL_ENV, RELOAD_ENV = "DERMKIOSK_BROKER_URL", "DERMKIOSK_BROKER_CRL", "DERMKIOSK_BROKER_RELOAD"


def _audit(config_path: Path | None, action: str, device_id: str, detail: str = "") -> None:
    """Append a device change to the centre's audit log when a centre config is given."""
    if config_path is None:
        return
    from wire.tomlconfig import ConfigError

    from . import audit, ensure_schema
    from .config import load_config
    from .store import Store

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        raise PkiError(f"done, but not audited: {exc}") from None
    store = Store(cfg.storage.database, cfg.storage.images_dir, cfg.storage.quarantine_dir)
    try:
        ensure_schema(store.conn)
        audit.append(store.conn, actor=audit.cli_actor(), action=action, target=device_id, detail=detail)
    finally:
        store.close()


def control(pki: Pki, url: str) -> BrokerControl:
    """A :class:`BrokerControl` for the broker at ``url`` with this PKI's broker-admin certificate."""
    cert, key = pki.paths(BROKER_ADMIN_CN)
    try:
        return BrokerControl(url, pki.ca_cert_path, cert, key)
    except BrokerControlError as exc:
        raise PkiError(str(exc)) from None


def reload_crl(pki: Pki, crl_dest: Path | None, reload: str | None) -> list[str]:
    """Copy the CRL to ``crl_dest`` (when given) and run the broker's ``reload`` command (when
    given) so that it re-reads it; return what was done, one line each."""
    done = []
    if crl_dest is not None:
        crl_dest = Path(crl_dest)
        tmp = crl_dest.with_name(f".{crl_dest.name}.tmp")
        try:
            tmp.write_bytes(pki.crl_path.read_bytes())
            os.chmod(tmp, 0o644)
            os.replace(tmp, crl_dest)
        except OSError as exc:
            raise PkiError(f"the CRL is rewritten in {pki.crl_path} but could not be copied to {crl_dest} "
                           f"({exc}): copy it, then reload the broker") from None
        done.append(f"CRL copied to {crl_dest}")
    if reload:
        try:
            r = subprocess.run(shlex.split(reload), capture_output=True, text=True, timeout=60)
            problem = None if r.returncode == 0 else f"exit status {r.returncode}: {(r.stderr or r.stdout).strip()}"
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            problem = str(exc)
        if problem:
            raise PkiError(f"the broker reload `{reload}` failed ({problem}): reload it so that it reads "
                           "the new CRL") from None
        done.append(f"broker reloaded (`{reload}`): it re-read the CRL")
    return done


def apply_revocation(pki: Pki, device_id: str, url: str | None, crl_dest: Path | None,
                     reload: str | None) -> list[str]:
    """After ``pki.revoke(device_id)``: install and reload the CRL, then delete the kiosk's
    registration at the broker (which drops its open connection); return what was done, and
    say what is left when an option was not given."""
    done = reload_crl(pki, crl_dest, reload)
    if not reload:
        done.append("broker not reloaded (no --broker-reload): until it is (`systemctl reload mosquitto`) "
                    "it accepts the certificate in a TLS handshake, though with --broker it may do nothing")
    if url:
        try:
            gone = control(pki, url).remove_kiosk(device_id)
        except BrokerControlError as exc:
            raise PkiError(f"revoked, but the broker did not drop {device_id}: {exc}") from None
        done.append(f"{device_id} deleted at the broker: its connection is dropped and it may do nothing"
                    if gone else f"{device_id} was not registered at the broker")
    else:
        done.append("no --broker: the kiosk's registration and any open connection stay until the broker "
                    "restarts (or `pki revoke` is run again with --broker)")
    return done


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m dashboard pki",
                                 description="DermKiosk certificates: CA, broker, ingest, kiosks, CRL")
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("DERMKIOSK_PKI_DIR", "var/pki")),
                    help="folder of the CA and certificates (default: $DERMKIOSK_PKI_DIR or var/pki)")
    # --dir is accepted after the command too (``pki crl --dir DIR``).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=argparse.SUPPRESS, help="as above")
    common.add_argument("--audit-config", type=Path, default=None,
                        help="centre config: record issue-kiosk, renew-kiosk and revoke in the dashboard's "
                             "audit log (leave out on an offline CA machine and record the change there)")
    broker = argparse.ArgumentParser(add_help=False)
    broker.add_argument("--broker", default=os.environ.get(URL_ENV) or None, metavar="URL",
                        help=f"running broker (mqtts://HOST:PORT) to apply the change to [${URL_ENV}]")
    broker.add_argument("--broker-crl", type=Path, default=os.environ.get(CRL_ENV) or None, metavar="PATH",
                        help=f"copy the CRL here (the broker's crlfile) [${CRL_ENV}]")
    broker.add_argument("--broker-reload", default=os.environ.get(RELOAD_ENV) or None, metavar="COMMAND",
                        help="command that makes the broker re-read the CRL, e.g. \"systemctl reload mosquitto\" "
                             f"[${RELOAD_ENV}]")
    sub = ap.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str, *more: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, parents=[common, *more])

    p = add("init", "create the CA and an empty CRL")
    p.add_argument("--force", action="store_true", help="replace an existing CA")
    p = add("issue-broker", "the broker's server certificate")
    p.add_argument("host", help="the name (or IP address) kiosks use to reach the broker")
    p.add_argument("--ip", action="append", default=[], help="another IP address for the certificate")
    p.add_argument("--days", type=int, default=LEAF_DAYS)
    p = add("issue-ingest", "the ingest's client certificate (CN ingest; --instance N: ingest-N)")
    p.add_argument("--days", type=int, default=LEAF_DAYS)
    p.add_argument("--instance", type=int, default=1, help="the ingest process it is for (default 1; "
                   "see python -m dashboard ingest --instance)")
    p = add("issue-updates", "the update publisher's client certificate (CN updates)")
    p.add_argument("--days", type=int, default=LEAF_DAYS)
    p = add("issue-broker-admin", "the certificate that changes the broker's access rules (CN broker-admin)")
    p.add_argument("--days", type=int, default=LEAF_DAYS)
    p = add("issue-kiosk", "a kiosk's client certificate (CN = device id), registered at --broker", broker)
    p.add_argument("device_id")
    p.add_argument("--site", default=None, help="the hub it belongs to: the broker lets it publish only there")
    p.add_argument("--days", type=int, default=KIOSK_DAYS, help=f"validity (default {KIOSK_DAYS})")
    p = add("renew-kiosk", "a new certificate for a kiosk that has one (same name and site)", broker)
    p.add_argument("device_id")
    p.add_argument("--days", type=int, default=KIOSK_DAYS, help=f"validity (default {KIOSK_DAYS})")
    p.add_argument("--revoke-old", action="store_true",
                   help="revoke the current certificate at once (when the new one is installed now)")
    p = add("revoke", "revoke a kiosk's certificates; with the broker options the broker refuses it "
            "and drops its connection", broker)
    p.add_argument("device_id")
    p = add("crl", "re-sign the CRL (and install and reload it with the broker options)", broker)
    p.add_argument("--days", type=int, default=CRL_DAYS)
    add("status", "list the certificates issued, their expiry, and the CRL's next update")
    p = add("broker-sync", "write the broker's dynamic-security file from this PKI (broker stopped)")
    p.add_argument("file", type=Path, help="the plugin's plugin_opt_config_file")
    add("broker-kiosks", "list the kiosks registered at --broker", broker)
    return ap


def main(argv: list[str] | None = None) -> int:
    """``python -m dashboard pki ...``: parse the command line and run one PKI command."""
    args = _parser().parse_args(argv)
    pki = Pki(args.dir)
    out: list[str] = []
    try:
        if args.command == "init":
            out = [f"CA: {pki.init(force=args.force)}", f"CRL: {pki.crl_path}"]
        elif args.command in ("issue-broker", "issue-ingest", "issue-updates", "issue-broker-admin"):
            cert, key = {"issue-broker": lambda: pki.issue_broker(args.host, args.ip, args.days),
                         "issue-ingest": lambda: pki.issue_ingest(args.days, args.instance),
                         "issue-updates": lambda: pki.issue_updates(args.days),
                         "issue-broker-admin": lambda: pki.issue_broker_admin(args.days)}[args.command]()
            out = [f"certificate: {cert}", f"key: {key}"]
        elif args.command == "issue-kiosk":
            cert, key = pki.issue_kiosk(args.device_id, args.days, args.site)
            _audit(args.audit_config, "device.issue", args.device_id, f"site {args.site or 'any'}")
            out = [f"certificate: {cert}", f"key: {key}", f"CA: {pki.ca_cert_path}"]
            if args.broker:
                try:
                    control(pki, args.broker).add_kiosk(args.device_id, args.site)
                except BrokerControlError as exc:
                    raise PkiError(f"issued, but not registered at the broker: {exc}") from None
                out.append(f"registered at {args.broker}" + (f" for site {args.site}" if args.site else ""))
            else:
                out.append("not registered at a broker (no --broker): it may connect but do nothing until "
                           "registered (`pki issue-kiosk` with --broker, or `pki broker-sync` at broker start)")
        elif args.command == "renew-kiosk":
            cert, key = pki.renew_kiosk(args.device_id, args.days, args.revoke_old)
            _audit(args.audit_config, "device.renew", args.device_id, "old revoked" if args.revoke_old else "")
            out = [f"certificate: {cert}", f"key: {key}", f"CA: {pki.ca_cert_path}",
                   "install both on the kiosk ([broker] cert_file and key_file) and restart it"]
            if args.revoke_old:
                out += reload_crl(pki, args.broker_crl, args.broker_reload)
        elif args.command == "revoke":
            serials = pki.revoke(args.device_id)
            _audit(args.audit_config, "device.revoke", args.device_id, f"serial {', '.join(serials)}")
            out = [f"revoked {args.device_id}: serial {', '.join(serials)}", f"CRL: {pki.crl_path}"]
            out += apply_revocation(pki, args.device_id, args.broker, args.broker_crl, args.broker_reload)
        elif args.command == "crl":
            out = [f"CRL: {pki.write_crl(args.days)}", *reload_crl(pki, args.broker_crl, args.broker_reload)]
        elif args.command == "status":
            if not pki.exists():
                raise PkiError(f"no CA in {pki.dir}")
            out = pki.status()
        elif args.command == "broker-sync":
            out = [f"broker access rules: {sync_file(args.file, pki)}"]
        elif args.command == "broker-kiosks":
            if not args.broker:
                raise PkiError(f"which broker? give --broker URL or set {URL_ENV}")
            try:
                out = control(pki, args.broker).kiosks()
            except BrokerControlError as exc:
                raise PkiError(str(exc)) from None
    except PkiError as exc:
        print(f"pki: {exc}", file=sys.stderr)
        return 2
    print("\n".join(out))
    return 0
