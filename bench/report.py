"""The service report over a year of a busy service: 100,000 referrals.

    .venv/bin/python -m bench.report [--referrals 100000] [--dir DIR] [--keep]

Builds the store with :func:`bench.worklist.build` (the ingest's ``Store.save_cases`` and the readers'
``dashboard.reports.sign``; here every referral dated within the last 365 days), adds histology to one lesion in
eight of the signed ones through :mod:`dashboard.store.histology` (a third of them malignant), then times what
``python -m dashboard report`` does for the year: the columnar read of every lesion, every figure, the CSV tables with
suppression, the three plots and the HTML, written to a folder. Prints, last, ``report_s=X n=N``
(goal: at most 5 s here).
"""

from __future__ import annotations

import random
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.worklist import build, store_arguments, store_root  # noqa: E402
from dashboard.clock import today_in_england  # noqa: E402
from dashboard.servicereport import export  # noqa: E402
from dashboard.servicereport.compute import compute  # noqa: E402
from dashboard.servicereport.data import ensure_indexes, lesion_rows  # noqa: E402
from dashboard.store import Store  # noqa: E402
from dashboard.store import histology as histology_table  # noqa: E402
from dashboard.store.schema import transaction  # noqa: E402

MALIGNANT = "Malignant:Malignant melanocytic proliferations (Melanoma):Melanoma Invasive"
BENIGN = "Benign:Benign melanocytic proliferations:Nevus"


def add_histology(store: Store, share: float = 0.125, seed: int = 22) -> int:
    """Histology for ``share`` of the signed lesions (a third malignant); return how many."""
    rng = random.Random(seed)
    conn = store.conn
    signed = conn.execute("SELECT DISTINCT r.case_id, r.referral_key FROM reports r WHERE r.kind = 'first'").fetchall()
    picked = [s for s in signed if rng.random() < share]
    at = datetime.now(timezone.utc).isoformat()
    with transaction(conn):
        for i, (case_id, key) in enumerate(picked):
            mal = rng.random() < 1 / 3
            histology_table.insert(conn, {"case_id": case_id, "referral_key": key,
                                          "diagnosis": MALIGNANT if mal else BENIGN,
                                          "benign_malignant": "malignant" if mal else "benign",
                                          "confirm_type": "histopathology", "reported_on": date.today().isoformat(),
                                          "report_ref": f"BENCH-{i}", "source": "import", "entered_by": "bench",
                                          "entered_at": at})
    return len(picked)


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse with --dir) the store, time the year's report, print the figures."""
    args = store_arguments(__doc__.split("\n\n")[0], runs=3).parse_args(argv)
    with store_root(args, "dermkiosk-report-") as root:
        if not (root / "c.db").exists():
            _, seconds = build(root, args.referrals, span_days=364)
            store = Store(root / "c.db", root / "images")
            with_h = add_histology(store)
            store.close()
            print(f"built {args.referrals} referrals in {seconds:.0f} s, {with_h} lesions with histology, under {root}")
        store = Store(root / "c.db", root / "images")
        ensure_indexes(store.conn)  # a store built before them (create_app makes them on a new one)
        end = today_in_england()
        start = end - timedelta(days=364)
        times = []
        for run in range(args.runs):
            out = root / f"out-{run}"
            t0 = time.perf_counter()
            rep = compute(lesion_rows(store.conn, start, end), start, end)
            export.write(rep, out)
            times.append(time.perf_counter() - t0)
        n = rep.overall.referrals.n
        g = rep.overall
        print(f"year {start} to {end}: {n} referrals, {g.lesions.n} lesions, {g.images} images, "
              f"median {g.median()} / p90 {g.p90()} working days, {len(rep.breaches)} breaches, "
              f"malignancy AUC {rep.roc['malignancy']['auc'] if rep.roc['malignancy'] else None}")
        print(f"runs: {', '.join(f'{t:.2f}' for t in times)} s")
        store.close()
        print(f"report_s={min(times):.2f} n={n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
