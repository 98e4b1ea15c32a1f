"""``python -m dashboard report --config FILE --from DATE --to DATE --out DIR``: the service report as files.

Writes ``report.html`` with its plots and the CSV tables into ``DIR`` (small cells suppressed:
:mod:`.export`), prints the files and the seconds it took, and records the export in the audit log.
A wrong date or an empty period is refused with a message and exit status 2.
"""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path

COMMANDS = ("report",)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"report: {text!r} is not a date: give YYYY-MM-DD") from None


def add_parsers(sub) -> None:
    """Add ``report`` to the centre's command line."""
    p = sub.add_parser("report", help="the service report (HTML with plots, CSV tables) for a period")
    p.add_argument("--config", required=True, help="centre TOML file")
    p.add_argument("--from", dest="start", required=True, help="first referral date, YYYY-MM-DD")
    p.add_argument("--to", dest="end", required=True, help="last referral date, YYYY-MM-DD")
    p.add_argument("--out", required=True, help="folder to write report.html, its plots and the CSV files into")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def run(args, config) -> int:
    """Write the report for ``--from``..``--to`` into ``--out``."""
    from .. import audit, ensure_schema
    from ..store import Store
    from . import export
    from .compute import compute
    from .data import lesion_rows

    start, end = _day(args.start), _day(args.end)
    if start > end:
        print("report: --from must be on or before --to", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    store = Store(config.storage.database, config.storage.images_dir, config.storage.quarantine_dir)
    try:
        ensure_schema(store.conn)
        rep = compute(lesion_rows(store.conn, start, end), start, end, fds_days=config.worklist.fds_days)
        files = export.write(rep, Path(args.out))
        audit.append(store.conn, actor=audit.cli_actor(), action="report.export", target=str(Path(args.out).name),
                     detail=f"{start.isoformat()} to {end.isoformat()}: {len(files)} files")
    finally:
        store.close()
    for f in files:
        print(f)
    print(f"report: {rep.overall.referrals.n} referrals, {rep.overall.lesions.n} lesions, "
          f"{time.perf_counter() - t0:.2f} s")
    return 0
