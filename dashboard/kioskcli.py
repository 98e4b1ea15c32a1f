"""``python -m dashboard kiosk ...``: the kiosk registry from the command line (:mod:`dashboard.registry`).

    python -m dashboard kiosk list       --config C
    python -m dashboard kiosk register   --config C DEVICE --site HUB [--cert-serial HEX] [--cert-sha256 HEX]
                                         [--cert FILE]      # the kiosk's certificate file gives both
    python -m dashboard kiosk unregister --config C DEVICE
    python -m dashboard kiosk import-pki --config C [--pki-dir DIR] [DEVICE]
                                         # every live kiosk certificate issued with --site, not yet registered

With ``[registry.broker]`` in the centre config, register and unregister apply the change at the
broker too (the kiosk may publish only under its hub there). Every change is audited with the actor
``cli:<os user>`` (``kiosk.register``, ``kiosk.unregister``). A mistake exits with status 2 and
names what to fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import audit, registry
from .brokerctl import BrokerControlError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m dashboard kiosk", description="DermKiosk kiosk registry")
    sub = ap.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", required=True, help="centre TOML file")
    sub.add_parser("list", parents=[common], help="registered kiosks and unregistered ones heard from")
    p = sub.add_parser("register", parents=[common], help="register a kiosk at a hub with its expected certificate")
    p.add_argument("device")
    p.add_argument("--site", required=True, help="the hub it files cases under")
    p.add_argument("--cert-serial", default=None, help="expected certificate serial (hex, as `pki status` prints)")
    p.add_argument("--cert-sha256", default=None, help="expected certificate SHA-256 fingerprint")
    p.add_argument("--cert", type=Path, default=None, help="the kiosk's certificate file (gives serial and fingerprint)")
    p = sub.add_parser("unregister", parents=[common], help="remove a kiosk's registration")
    p.add_argument("device")
    p = sub.add_parser("import-pki", parents=[common], help="register the PKI's kiosks that were issued with --site")
    p.add_argument("--pki-dir", type=Path, default=None, help="PKI folder (default: [registry] pki_dir)")
    p.add_argument("device", nargs="?", default=None, help="only this kiosk")
    return ap


def _broker(cfg: registry.RegistryConfig, device: str, site: str | None, remove: bool = False) -> str:
    try:
        return registry.apply_at_broker(cfg, device, site, remove)
    except BrokerControlError as exc:
        return f"NOT {'removed' if remove else 'registered'} at the broker: {exc}"


def run(args: argparse.Namespace, config) -> int:
    """Run one parsed ``kiosk`` command against the centre's database; return the exit status."""
    from . import ensure_schema
    from .store import Store

    s = config.storage
    store = Store(s.database, s.images_dir, s.quarantine_dir)
    conn, actor = store.conn, audit.cli_actor()
    cfg = config.registry
    try:
        ensure_schema(conn)
        registry.ensure_schema(conn)
        if args.command == "list":
            for k in registry.list_kiosks(conn):
                print(f"{k.site:<20} {k.device:<32} serial {k.cert_serial or '-':<20} "
                      f"sha256 {(k.cert_sha256 or '-')[:16]}  registered {k.registered_at:%Y-%m-%d} by {k.registered_by}")
            for u in registry.unregistered(conn):
                print(f"UNREGISTERED {u['device']} claiming hub {u['site']}: {', '.join(u['kinds'])}, "
                      f"{u['count']} message(s), last {u['last_at']:%Y-%m-%d %H:%M}")
            return 0
        if args.command == "register":
            serial, sha = args.cert_serial, args.cert_sha256
            if args.cert is not None:
                try:
                    cn, serial, sha = registry.certificate_identity(args.cert.read_bytes())
                except OSError as exc:
                    raise registry.RegistryError(f"--cert {args.cert}: {exc.strerror}", "cert") from None
                if cn != args.device:
                    raise registry.RegistryError(f"--cert {args.cert} is the certificate of {cn!r}, not {args.device!r}",
                                                 "cert")
            k = registry.register(conn, args.device, args.site, cert_serial=serial, cert_sha256=sha, actor=actor)
            done = _broker(cfg, k.device, k.site)
            audit.append(conn, actor=actor, action="kiosk.register", target=k.device,
                         detail=f"hub {k.site}, certificate serial {k.cert_serial or '-'}, "
                                f"sha256 {(k.cert_sha256 or '-')[:16]}; {done}")
            print(f"registered {k.device} for hub {k.site}; {done}")
            return 0 if not done.startswith("NOT") else 1
        if args.command == "unregister":
            k = registry.get(conn, args.device)
            if k is None:
                raise registry.RegistryError(f"kiosk {args.device!r} is not registered (`kiosk list`)", "device")
            registry.unregister(conn, args.device)
            done = _broker(cfg, args.device, None, remove=True)
            audit.append(conn, actor=actor, action="kiosk.unregister", target=args.device,
                         detail=f"was hub {k.site}; {done}")
            print(f"unregistered {args.device}; {done}")
            return 0
        pki_dir = args.pki_dir or cfg.pki_dir
        if pki_dir is None or not (Path(pki_dir) / "index.json").exists():
            raise registry.RegistryError(f"no PKI index in {pki_dir}: give --pki-dir or set [registry] pki_dir",
                                         "pki_dir")
        for k in registry.seed_from_pki(conn, Path(pki_dir), actor=actor, only=args.device):
            done = _broker(cfg, k.device, k.site)
            audit.append(conn, actor=actor, action="kiosk.register", target=k.device,
                         detail=f"hub {k.site} from the PKI index, certificate serial {k.cert_serial}; {done}")
            print(f"registered {k.device} for hub {k.site} (serial {k.cert_serial}); {done}")
        return 0
    except registry.RegistryError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()


def main(argv: list[str], load) -> int:
    """``python -m dashboard kiosk ...`` with ``load(path)`` reading the centre config (exit 2 on error)."""
    args = _parser().parse_args(argv)
    return run(args, load(args.config))
