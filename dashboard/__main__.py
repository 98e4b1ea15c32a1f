"""Command line of the centre.

    python -m dashboard ingest --config firmware_config/centre.demo.toml [--instance N] [--end-session]
    python -m dashboard serve  --config firmware_config/centre.demo.toml
    python -m dashboard create-admin --config C --username U [--password-stdin]
    python -m dashboard create-user  --config C --username U --role dermatologist|it|admin [--password-stdin]
    python -m dashboard staff add    --config C --staff-id S --name N [--pin-stdin]   (staff --help)
    python -m dashboard kiosk register --config C DEVICE --site HUB --cert FILE     (kiosk --help)
    python -m dashboard export dicom|fhir --config C --referral REF [--out DIR]     (hospital hand-over)
    python -m dashboard sample --config C --referrals N --signed                   (signed demo referrals)
    python -m dashboard report --config C --from DATE --to DATE --out DIR          (the service report)

A configuration error prints one message naming the file, the field and the
problem, and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
import time

from wire.tomlconfig import ConfigError

from .config import MAX_INGEST_INSTANCES, CentreConfig, ingest_instance, load_config


def _load(path: str) -> CentreConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_ingest(config: CentreConfig) -> int:
    """Run the ingest service until SIGINT/SIGTERM."""
    from .ingest import Ingest

    try:
        return Ingest(config).run_forever()
    except (OSError, sqlite3.Error) as exc:
        print(f"ingest: cannot open the centre's storage: {exc}", file=sys.stderr)
        return 1


def cmd_end_session(config: CentreConfig) -> int:
    """End a retired ingest process's session on the broker (see :meth:`dashboard.ingest.Ingest.end_session`)."""
    from .ingest import Ingest

    if Ingest(config).end_session():
        print(f"ingest {config.broker.client_id}: session ended; the broker no longer keeps cases for it")
        return 0
    print(f"ingest {config.broker.client_id}: could not reach the broker to end the session", file=sys.stderr)
    return 1


def cmd_serve(config: CentreConfig) -> int:
    """Serve the dashboard on the configured loopback address until SIGINT/SIGTERM."""
    from werkzeug.serving import make_server

    from . import app_config, create_app

    app = create_app(app_config(config))
    from wire import sdnotify

    server = make_server(config.web.host, config.web.port, app, threaded=True)
    logging.getLogger("dashboard").info("dashboard on http://%s:%d/", config.web.host, server.server_port)
    print(f"dashboard: http://{config.web.host}:{server.server_port}/", flush=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # systemd: READY=1 once listening; WATCHDOG=1 from serve_forever's own loop (service_actions
    # runs on every poll of the accept loop), so a hung accept loop is restarted.
    interval = min(sdnotify.watchdog_interval() or 5.0, 5.0)
    last = [0.0]

    def ping() -> None:
        now = time.monotonic()
        if now - last[0] >= interval:
            last[0] = now
            sdnotify.watchdog()

    server.service_actions = ping
    sdnotify.ready(f"dashboard on {config.web.host}:{server.server_port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sdnotify.stopping()
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    args_in = sys.argv[1:] if argv is None else list(argv)
    if args_in[:1] == ["pki"]:  # certificates: no centre config needed (python -m dashboard pki --help)
        from .pkicli import main as pki_main

        return pki_main(args_in[1:])
    if args_in[:1] == ["update"]:  # signed update bundles (python -m dashboard update --help)
        from .updates import main as update_main

        return update_main(args_in[1:], _load)
    if args_in[:1] == ["kiosk"]:  # the kiosk registry (python -m dashboard kiosk --help)
        from .kioskcli import main as kiosk_main

        return kiosk_main(args_in[1:], _load)
    if args_in[:1] == ["staff"]:  # kiosk staff and their roster (python -m dashboard staff --help)
        from .staffcli import main as staff_main

        return staff_main(args_in[1:], _load)
    parser = argparse.ArgumentParser(prog="python -m dashboard", description="DermKiosk centre")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pki", help="certificates: CA, broker, ingest, kiosks, revocation (pki --help)")
    sub.add_parser("update", help="signed updates: make-key, sign-model, sign-config, publish (update --help)")
    sub.add_parser("staff", help="kiosk staff: list, add, reset-pin, deactivate, export, send (staff --help)")
    sub.add_parser("kiosk", help="kiosk registry: list, register, unregister, import-pki (kiosk --help)")
    for name, help_ in (("ingest", "receive cases from the broker into the database"),
                        ("serve", "serve the dashboard web pages")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", required=True, help="centre TOML file")
        p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        if name == "ingest":
            p.add_argument("--instance", type=int, default=1, choices=range(1, MAX_INGEST_INSTANCES + 1),
                           metavar=f"1..{MAX_INGEST_INSTANCES}",
                           help="which of the centre's ingest processes this is (default 1; 2 and up connect "
                                "as ingest-N with their own certificate, see dashboard.config.ingest_instance)")
            p.add_argument("--end-session", action="store_true",
                           help="retire this ingest process: end its session on the broker (the broker "
                                "stops queueing a share of the cases for it), then exit")
    from . import exportcli, usercli
    from .servicereport import cli as reportcli

    usercli.add_parsers(sub)
    exportcli.add_parsers(sub)
    reportcli.add_parsers(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = _load(args.config)
    if args.command in usercli.COMMANDS:
        return usercli.run(args, config)
    if args.command in exportcli.COMMANDS:
        return exportcli.run(args, config)
    if args.command in reportcli.COMMANDS:
        return reportcli.run(args, config)
    if args.command == "ingest":
        config = ingest_instance(config, args.instance)
        if args.end_session:
            return cmd_end_session(config)
        return cmd_ingest(config)
    return cmd_serve(config)


if __name__ == "__main__":
    sys.exit(main())
