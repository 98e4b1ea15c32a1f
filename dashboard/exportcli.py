"""Command line of the hand-over, for a trust's integration engineer and for scripted checks.

    python -m dashboard export dicom --config FILE --referral REF --out DIR   (writes <SOP Instance UID>.dcm)
    python -m dashboard export fhir  --config FILE --referral REF             (prints the Bundle JSON)
    python -m dashboard sample --config FILE --referrals N --signed           (prints N referral references)

``REF`` is the referral's reference (e-RS UBRN or local reference, as on the referral) or its key (the
referral's UUID). An unknown, ambiguous or unsigned referral exits with status 1 and one line saying why;
a configuration error exits 2. Every export is in the audit log (actor ``cli:<user>``).
"""

from __future__ import annotations

import argparse
import sys
import uuid


def resolve(conn, ref: str) -> str:
    """The referral key of a reference or key; ValueError (one line) when unknown or ambiguous."""
    text = (ref or "").strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        pass
    from wire.referral import IdentifierError, normalise_reference

    try:
        reference, _ = normalise_reference(text)
    except IdentifierError as exc:
        raise ValueError(f"not a referral reference or key: {exc}") from None
    keys = [r[0] for r in conn.execute("SELECT referral_id FROM referrals WHERE reference=?", (reference,))]
    if not keys:
        raise ValueError("no referral with that reference at this centre")
    if len(keys) > 1:
        raise ValueError(f"{len(keys)} referrals have that reference: give the referral key (UUID) instead")
    return keys[0]


def _open(config):
    from . import ensure_schema
    from .store import Store
    from .store import exports, handover

    store = Store(config.storage.database, config.storage.images_dir, config.storage.quarantine_dir)
    ensure_schema(store.conn)
    handover.ensure_schema(store.conn)
    exports.ensure_schema(store.conn)
    return store


def cmd_export(args, config) -> int:
    """``export dicom`` / ``export fhir``: write the objects or print the Bundle; 1 with a reason on refusal."""
    from . import audit
    from .exportfacts import ExportRefused, export_facts

    store = _open(config)
    try:
        try:
            key = resolve(store.conn, args.referral)
            facts = export_facts(store.conn, store.images_dir, key)
        except (ValueError, ExportRefused) as exc:
            audit.append(store.conn, actor=audit.cli_actor(), action=f"export.{args.kind}.refused",
                         target=args.referral if _is_key(args.referral) else "", detail=str(exc))
            print(f"export {args.kind}: {exc}", file=sys.stderr)
            return 1
        if args.kind == "dicom":
            from . import dicom

            paths = dicom.write_referral(dicom.build_referral(facts), args.out)
            audit.append(store.conn, actor=audit.cli_actor(), action="export.dicom", target=key,
                         detail=f"{len(paths)} objects written")
            for path in paths:
                print(path)
            return 0
        from .fhir import bundle_json

        pacs_cfg = config.pacs
        endpoint = pacs_cfg.url if pacs_cfg.enabled and pacs_cfg.protocol == "stow-rs" else None
        body = bundle_json(facts, endpoint=endpoint)
        audit.append(store.conn, actor=audit.cli_actor(), action="export.fhir", target=key,
                     detail=f"Bundle printed, {len(body)} bytes")
        print(body)
        return 0
    finally:
        store.close()


def _is_key(text: str) -> bool:
    try:
        uuid.UUID(str(text))
        return True
    except ValueError:
        return False


def cmd_sample(args, config) -> int:
    """``sample --signed``: store and sign N generated referrals, queue them for the hospital (PACS, FHIR) as a
    sign-off does (a running dashboard's sender sends them), and print their references, one a line."""
    from . import pacs, samplesigned
    from .store.referrals import get_referral

    if not args.signed:
        print("sample: only --signed is supported (unsigned demo referrals come with `make run`)", file=sys.stderr)
        return 1
    store = _open(config)
    try:
        keys = samplesigned.seed_signed(store, args.referrals, first_seed=args.first_seed)
        for key in keys:
            pacs.queue_referral(store.conn, key, config.pacs, config.fhir)
            print(get_referral(store.conn, key)["reference"])
    finally:
        store.close()
    return 0


def add_parsers(sub) -> None:
    """Add ``export`` and ``sample`` to the centre's command line."""
    exp = sub.add_parser("export", help="hand a signed referral over: DICOM files or the FHIR Bundle")
    kinds = exp.add_subparsers(dest="kind", required=True)
    d = kinds.add_parser("dicom", help="write the referral's DICOM objects (.dcm) to a folder")
    d.add_argument("--out", required=True, help="folder for the .dcm files (created if missing)")
    f = kinds.add_parser("fhir", help="print the referral's FHIR R4 transaction Bundle (JSON)")
    for p in (d, f):
        p.add_argument("--config", required=True, help="centre TOML file")
        p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        p.add_argument("--referral", required=True, help="the referral's reference (UBRN or local) or key (UUID)")
    s = sub.add_parser("sample", help="seed signed demo referrals (generated images) and print their references")
    s.add_argument("--config", required=True, help="centre TOML file")
    s.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    s.add_argument("--referrals", type=int, default=3, choices=range(1, 101), metavar="N", help="how many (1-100)")
    s.add_argument("--signed", action="store_true", help="sign every lesion (so they can be exported)")
    s.add_argument("--first-seed", type=int, default=700, help=argparse.SUPPRESS)


COMMANDS = ("export", "sample")


def run(args, config) -> int:
    """Run ``export`` or ``sample``."""
    return cmd_export(args, config) if args.command == "export" else cmd_sample(args, config)
