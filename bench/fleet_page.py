"""IT's fleet page and the Prometheus scrape over a year of referrals: both evaluate the service alerts.

    .venv/bin/python -m bench.fleet_page [--referrals 100000] [--runs 30] [--dir DIR] [--keep]

The store is the reading-room bench's (``bench.worklist``: built through the project's own code, or
reused with ``--dir``). Through the real Flask app (a logged-in IT user; ``/metrics`` with its bearer
token), times ``GET /fleet`` and ``GET /metrics``, each of which runs ``servicereport.monitor.evaluate``
(the cancer-call drift, quality-override, sensitivity and unread figures over the last 9 weeks; the colour-,
focus- and exposure-drift figures over the kiosks' dermoscopic photographs of the last 3 weeks), and ``monitor.evaluate`` alone. Prints, last, ``fleet_p95_ms=X metrics_p95_ms=Y evaluate_p95_ms=Z n=N``.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.worklist import build, p95, store_arguments, store_root  # noqa: E402
from dashboard import create_app  # noqa: E402
from dashboard.clock import today_in_england  # noqa: E402
from dashboard.servicereport import monitor  # noqa: E402
from dashboard.store import Store  # noqa: E402
from tests.dashauth import logged_in  # noqa: E402

TOKEN = "bench-metrics-token"


def measure(root: Path, runs: int) -> dict[str, list[float]]:
    """Milliseconds of ``GET /fleet``, ``GET /metrics`` and ``monitor.evaluate``, ``runs`` each after 3 warm-ups."""
    app = create_app({"DATABASE": str(root / "c.db"), "IMAGES_DIR": str(root / "images"), "METRICS_TOKEN": TOKEN})
    client = logged_in(app, f"it.bench{random.randint(0, 10**6)}", "it")
    ingest_connection = Store(root / "c.db", root / "images")  # as in production: the ingest keeps it open
    out: dict[str, list[float]] = {"fleet": [], "metrics": [], "evaluate": []}
    for i in range(runs + 3):
        t = time.perf_counter()
        r = client.get("/fleet")
        ms = (time.perf_counter() - t) * 1000
        assert r.status_code == 200 and b"Service alerts" in r.data, r.status_code
        t2 = time.perf_counter()
        m = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        ms2 = (time.perf_counter() - t2) * 1000
        assert m.status_code == 200 and b"dermkiosk_service_alert" in m.data, m.status_code
        t3 = time.perf_counter()
        monitor.evaluate(ingest_connection.conn, today_in_england(), monitor.MonitoringConfig())
        ms3 = (time.perf_counter() - t3) * 1000
        if i >= 3:
            out["fleet"].append(ms)
            out["metrics"].append(ms2)
            out["evaluate"].append(ms3)
    ingest_connection.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse with --dir) the store, time the pages, print the figures."""
    args = store_arguments(__doc__.split("\n\n")[0], runs=30).parse_args(argv)
    with store_root(args, "dermkiosk-fleet-") as root:
        if (root / "c.db").exists():
            print(f"reusing {root}")
            store = Store(root / "c.db", root / "images")
            n = store.conn.execute("SELECT count(*) FROM referral_summary").fetchone()[0]
            store.close()
        else:
            _, seconds = build(root, args.referrals)
            n = args.referrals
            print(f"built {n} referrals in {seconds:.0f} s under {root}")
        got = measure(root, args.runs)
        for name, ms in got.items():
            s = sorted(ms)
            print(f"{name}: {len(ms)} runs, p50 {s[len(s) // 2]:.1f} ms, p95 {p95(ms):.1f} ms, max {s[-1]:.1f} ms")
        print(f"fleet_p95_ms={p95(got['fleet']):.1f} metrics_p95_ms={p95(got['metrics']):.1f} "
              f"evaluate_p95_ms={p95(got['evaluate']):.1f} n={n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
