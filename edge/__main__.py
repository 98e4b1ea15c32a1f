"""Command line of the kiosk.

    python -m edge run --config firmware_config/kiosk.demo.toml      # the kiosk service + page
    python -m edge classify IMAGE...                                  # one JSON line per image
    python -m edge quality IMAGE... [--view dermoscopic] [--skin-type V] [--fills-view]  # one JSON line each
                           [--calibrate STILLS_FOLDER]                # ... against a reference fitted on those stills
    python -m edge capture-demo --config X --cases N [--wait S]       # headless captures into the outbox
    python -m edge check-config --config X                            # validate a config file
    python -m edge snap --config X --out DIR [--count N --interval S] # stills from the kiosk's camera, for calibration
    python -m edge white-balance --config X CARD.jpg [--gains R,B]    # the camera's colour gains from a grey card
    python -m edge white-balance --config X --patch STILL.jpg         # ... or from the dermatoscope's grey patch
    python -m edge calibrate --config X STILL...                      # the quality gate's kiosk reference

Exit codes: 0 fine, 1 a failure (an unreadable image, cases not delivered in time),
2 a usage or configuration error (one message naming the file, the field and the problem).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from wire.messages import BODY_SITES
from wire.referral import FITZPATRICK


def _load_config(path: str, check_files: bool = True):
    from .config import ConfigError, load

    try:
        return load(path, check_files=check_files)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_run(args) -> int:
    """Run the kiosk service and its page until SIGINT/SIGTERM; stop in reverse order.

    Under systemd (``Type=notify``) it sends READY=1 once started and WATCHDOG=1 from this
    loop while the service's threads are alive. A signed configuration update that was
    applied makes it exit with 75 so that systemd restarts it on the new configuration;
    an updated configuration that cannot start is set aside and the next start uses the
    installed one.
    """
    from wire import sdnotify

    from .config import effective_config_path

    base = _load_config(args.config)
    path = effective_config_path(args.config)
    cfg = base
    if Path(path) != Path(args.config):
        from .config import ConfigError, load

        try:
            cfg = load(path)
        except ConfigError as exc:
            Path(path).rename(Path(path).with_suffix(".toml.failed"))
            print(f"updated configuration set aside ({exc}); using {args.config}", file=sys.stderr)
            path = args.config
    _logging(cfg.log_level)
    if Path(path) != Path(args.config):
        logging.getLogger("edge").info("running on the updated configuration %s", path)
    from .service import KioskService
    from .web import WebServer

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    service = KioskService(cfg)
    try:
        service.start()
        web = WebServer(service, cfg.web.host, cfg.web.port).start()
    except Exception as exc:
        service.stop()
        logging.getLogger("edge").error("kiosk could not start: %s", exc)
        if Path(path) != Path(args.config):
            Path(path).rename(Path(path).with_suffix(".toml.failed"))
            logging.getLogger("edge").error("updated configuration set aside; the next start uses %s", args.config)
        return 1
    print(f"kiosk page: {web.url}", flush=True)
    sdnotify.ready(f"kiosk {cfg.device_id} running, model {service.model_version}")
    interval = min(sdnotify.watchdog_interval() or 5.0, 5.0)
    code = 0
    try:
        while not done.wait(interval):
            if service.updater is not None and service.updater.restart_needed.is_set():
                logging.getLogger("edge").info("configuration updated: restarting")
                code = 75
                break
            if service.healthy():
                sdnotify.watchdog()
            else:
                logging.getLogger("edge").error("a kiosk thread stopped; withholding the watchdog ping")
    finally:
        sdnotify.stopping()
        web.stop()
        service.stop()
    return code


def cmd_classify(args) -> int:
    """Print ``{"image", "probabilities", "risk", "model"}`` per image; errors as ``{"image", "error"}``."""
    model_dir = Path(args.model_dir)
    if args.config:
        model_dir = _load_config(args.config, check_files=False).model_dir
    from .classifier import Classifier

    try:
        clf = Classifier(model_dir, threads=args.threads)
    except Exception as exc:
        print(f"cannot load the model from {model_dir}: {exc}", file=sys.stderr)
        return 2
    status = 0
    for path in args.images:
        try:
            result = clf.classify_jpeg(Path(path).read_bytes())
        except Exception as exc:
            print(json.dumps({"image": path, "error": str(exc) or type(exc).__name__}), flush=True)
            status = 1
            continue
        print(json.dumps({"image": path, "probabilities": result.probabilities, "risk": result.risk,
                          "model": result.model}), flush=True)
    return status


def cmd_quality(args) -> int:
    """Delegate to the quality gate's CLI."""
    from .quality import cli_main

    settings = _load_config(args.config, check_files=False).quality if args.config else None
    if args.calibrate:
        settings = _calibrated_for_scoring(args.calibrate, args.images, settings)
        if settings is None:
            return 2
    return cli_main(args.images, view=args.view, settings=settings, skin_type=args.skin_type,
                    fills_view=args.fills_view)


def _calibrated_for_scoring(stills: list[str], images: list[str], settings):
    """``settings`` (or the defaults) with the kiosk reference fitted on ``stills`` (files or folders), telling
    stderr what was fitted and left out; None, having said why, where no reference can be fitted."""
    from .quality import QualitySettings
    from .quality.calibrate import reference_from_files, still_files

    def say(message: str) -> None:
        print(message, file=sys.stderr)

    settings = settings or QualitySettings()
    try:
        files = still_files(stills)
        ref = reference_from_files(files, settings, say)
    except ValueError as exc:
        say(f"calibration refused: {exc}")
        return None
    settings = settings.model_copy(update={"reference": ref})
    limit = ref.focus_limit(settings.dermoscopic.focus_min)
    say(f"calibrated on {ref.images} stills: skin colour ({ref.chroma[0]:.3f}, {ref.chroma[1]:.3f}) in ln R/G, "
        f"ln B/G; normal focus ratio {ref.focus:.2f}, dermoscopic focus limit {limit:.2f} of it")
    both = {Path(f).resolve() for f in files} & {Path(i).resolve() for i in images}
    if both:
        say(f"{len(both)} of the images scored are also calibration stills: their verdicts flatter the kiosk; "
            "score another part of the set")
    return settings


def cmd_calibrate(args) -> int:
    """Fit the quality gate's kiosk reference (colour, sharpness) on stills and write it into the config."""
    from .quality.calibrate import cli

    return cli(args.config, args.images, note=args.note, dry_run=args.dry_run)


def cmd_snap(args) -> int:
    """Take stills with the kiosk's camera and its fixed settings into a folder: the grey card and the skin stills
    of a calibration, taken exactly as the kiosk takes photographs, without making a case."""
    if args.count < 1:
        print(f"--count {args.count}: take at least one still", file=sys.stderr)
        return 2
    cfg = _load_config(args.config, check_files=False)
    from .camera import CameraError, open_camera

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    taken = [int(p.stem.split("-")[1]) for p in out.glob("still-[0-9][0-9][0-9].jpg")]
    first = max(taken, default=0) + 1
    try:
        with open_camera(cfg.camera) as cam:
            for i in range(args.count):
                if i and args.interval:
                    time.sleep(args.interval)  # time to move the dermatoscope to the next person or site
                path = out / f"still-{first + i:03d}.jpg"
                path.write_bytes(cam.capture().jpeg)
                print(path, flush=True)
    except CameraError as exc:
        print(f"camera: {exc} (the kiosk service holds the camera while it runs: "
              "sudo systemctl stop dermkiosk-kiosk first)", file=sys.stderr)
        return 1
    return 0


def cmd_white_balance(args) -> int:
    """Set the Pi camera's fixed colour gains from a still of a grey card and write them into the config."""
    from .camera.whitebalance import cli

    return cli(args.config, args.card, gains=args.gains, dry_run=args.dry_run, patch=args.patch)


def cmd_capture_demo(args) -> int:
    """Capture N cases from the configured camera into the outbox (optionally send and wait)."""
    cfg = _load_config(args.config)
    _logging(cfg.log_level)
    from .outbox import DiskFullError
    from .service import KioskService

    views = args.views.split(",") if args.views else None
    with KioskService(cfg, with_link=args.wait > 0) as service:
        ids = []
        for i in range(args.cases):
            try:
                header = service.capture_case(f"DEMO-{i:04d}", f"L{i % 3 + 1}", BODY_SITES[i % len(BODY_SITES)],
                                              views)
            except DiskFullError as exc:
                print(f"capture refused: {exc}", file=sys.stderr)
                return 1
            ids.append(str(header.case_id))
            print(json.dumps({"case_id": ids[-1], "seq": header.seq,
                              "images": [{"view": m.view, "sha256": m.sha256, "length": m.length}
                                         for m in header.images]}), flush=True)
        if args.wait > 0:
            deadline = time.monotonic() + args.wait
            while time.monotonic() < deadline and service.outbox.queue_depth():
                time.sleep(0.1)
            left = service.outbox.queue_depth()
            if left:
                print(f"{left} case(s) not acknowledged by the centre within {args.wait} s", file=sys.stderr)
                return 1
    return 0


def cmd_check_config(args) -> int:
    """Validate a config file (without requiring its TLS files to exist here)."""
    cfg = _load_config(args.config, check_files=not args.syntax_only)
    print(f"{args.config}: ok (device {cfg.device_id} at {cfg.site}, broker {cfg.broker.url}, "
          f"camera {cfg.camera.source})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one sub-command; returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m edge", description="DermKiosk kiosk")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run the kiosk service and its page")
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("classify", help="classify images, one JSON line each")
    p.add_argument("images", nargs="+")
    p.add_argument("--model-dir", default="models/lesion")
    p.add_argument("--config", help="take the model folder from this kiosk config")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_classify)
    p = sub.add_parser("quality", help="run the quality gate on images, one JSON line each")
    p.add_argument("images", nargs="+")
    p.add_argument("--view", default="dermoscopic", choices=["dermoscopic", "close-up", "regional"])
    p.add_argument("--config", help="take the quality settings from this kiosk config")
    p.add_argument("--skin-type", choices=FITZPATRICK,
                   help="the patients' Fitzpatrick skin type, as the desk records it (IV-VI: darker skin is "
                        "expected dimmer)")
    p.add_argument("--fills-view", action="store_true",
                   help="each lesion is larger than the dermatoscope's view (no skin in view: its colour cast, "
                        "size and framing are not judged, its paler parts may be dimmer)")
    p.add_argument("--calibrate", action="append", metavar="STILLS",
                   help="judge against a kiosk reference fitted on these stills (a folder of them, or a file; may "
                        "be repeated), as `calibrate` would fit it, instead of the config's or the built-in one: "
                        "another clinic's photographs scored as a kiosk calibrated on others of theirs would")
    p.set_defaults(func=cmd_quality)
    p = sub.add_parser("snap", help="take stills with the kiosk's camera and fixed settings into a folder (for "
                                    "white-balance and calibrate; no case is made)")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, help="folder for still-NNN.jpg (numbering goes on after those there)")
    p.add_argument("--count", type=int, default=1, help="how many stills (default 1)")
    p.add_argument("--interval", type=float, default=0.0, help="seconds between stills (to move the dermatoscope)")
    p.set_defaults(func=cmd_snap)
    p = sub.add_parser("white-balance", help="set the Pi camera's colour gains from a still of a grey card through "
                                             "the dermatoscope (installation, before calibrate)")
    p.add_argument("--config", required=True, help="the kiosk config file whose [camera.picamera2] gains to set")
    p.add_argument("card", help="a still of a neutral grey card filling the dermatoscope's view (with --patch: any "
                                "still through a dermatoscope with a grey patch)")
    p.add_argument("--patch", action="store_true", help="read the grey patch where [quality.grey_patch] says, not "
                                                        "a card")
    p.add_argument("--gains", help="the red,blue gains the still was taken with (default: the config's)")
    p.add_argument("--dry-run", action="store_true", help="print the gains, change nothing")
    p.set_defaults(func=cmd_white_balance)
    p = sub.add_parser("calibrate", help="fit the quality gate's colour and sharpness reference on this kiosk's "
                                         "stills and write it into its config")
    p.add_argument("--config", required=True, help="the kiosk config file to write the reference into")
    p.add_argument("images", nargs="+", help="stills of normal skin through this kiosk's dermatoscope")
    p.add_argument("--note", help="where and when (kept in the config)")
    p.add_argument("--dry-run", action="store_true", help="print the reference, change nothing")
    p.set_defaults(func=cmd_calibrate)
    p = sub.add_parser("capture-demo", help="capture N cases from the configured camera into the outbox")
    p.add_argument("--config", required=True)
    p.add_argument("--cases", type=int, default=1)
    p.add_argument("--views", help="comma-separated views (default: the config's capture.demo_views)")
    p.add_argument("--wait", type=float, default=0.0,
                   help="also run the link and wait up to this many seconds until the centre acked all")
    p.set_defaults(func=cmd_capture_demo)
    p = sub.add_parser("check-config", help="validate a kiosk config file")
    p.add_argument("--config", required=True)
    p.add_argument("--syntax-only", action="store_true", help="do not require TLS files and model here")
    p.set_defaults(func=cmd_check_config)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
