"""The reading room at scale: the worklist's first page and a referral page over 100,000 referrals.

    .venv/bin/python -m bench.worklist [--referrals 100000] [--runs 60] [--dir DIR] [--keep]

Builds a centre store through the project's own code: schema-version-2
referrals (1-3 lesions, three views each) saved in ingest-sized batches by
``Store.save_cases`` (the ingest's own path, so each batch also upserts the
worklist's summary rows), then reads them as dermatologists do: the reader
claims (``dashboard.claims``) and signs each lesion (``dashboard.reports.sign``:
diagnosis, management, second reads by the default ``[reading]`` rules, a second
reader where one is drawn), so that the closed referrals have their reports,
claims and audit entries. Proportions: 92 % of referrals reported (referral dates
spread over two years), the rest open over the last five weeks (some past the
28-day standard); lesion tiers 10 % cancer, 25 % pre-cancer, 65 % benign; 5 %
skin type V-VI, 3 % AI refused; 12 hubs of 2 kiosks. The JPEG bytes come from a
pool (a case's images are distinct; cases share them, stored once by SHA-256), so
the ``images`` table is small while ``case_images`` has its real three rows per lesion.

Then, through the real Flask app (test client, a logged-in dermatologist, every
request opening the store, checking the session and writing its audit entry as in
production, while one other connection stays open as the ingest's does), times ``GET /cases`` (the default worklist: first page with its counts
and clock alerts) and ``GET /referrals/<key>`` (the reading engineer's referral page,
which claims the referral on opening) for open referrals picked at random.
Prints, last, ``worklist_p95_ms=X referral_page_p95_ms=Y n=N``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashboard import claims, clock, create_app, reports, sample  # noqa: E402
from dashboard.readingconfig import ReadingConfig  # noqa: E402
from dashboard.store import Store  # noqa: E402
from dashboard.store import reports as report_table  # noqa: E402
from tests.dashauth import logged_in  # noqa: E402

BATCH = 256
SITES = [f"hub-{n:02d}" for n in range(1, 13)]
DIAGNOSIS = {"cancer": "Malignant", "pre-cancer": "Indeterminate", "benign": "Benign"}
MANAGEMENT = {"cancer": "urgent-2ww", "pre-cancer": "biopsy", "benign": "discharge"}


def templates() -> dict[tuple[int, str, bool], list]:
    """One generated referral per shape (lesions, skin type, AI consent): the headers and images to copy from."""
    out = {}
    seed = 0
    for lesions in (1, 2, 3):
        for fitz in ("II", "V"):
            for ai in (True, False):
                seed += 1
                out[(lesions, fitz, ai)] = sample.make_referral(500 + seed, lesions=lesions, fitzpatrick=fitz, ai=ai)
    return out


def shape(rng: random.Random) -> tuple[int, str, bool]:
    """Lesions 70/20/10 % for 1/2/3, skin type V-VI 5 %, AI refused 3 %."""
    r = rng.random()
    lesions = 1 if r < 0.7 else 2 if r < 0.9 else 3
    return lesions, "V" if rng.random() < 0.05 else "II", rng.random() >= 0.03


def referral(n: int, rng: random.Random, tmpl: dict, today, is_open: bool, span_days: int = 730):
    """Referral ``n``: a copy of a template with its own ids, patient, reference, date (a closed one 20 to
    ``span_days`` days ago), hub and tiers."""
    lesions, fitz, ai = shape(rng)
    cases = tmpl[(lesions, fitz, ai)]
    days_ago = rng.randint(0, 35) if is_open else rng.randint(20, span_days)
    site = rng.choice(SITES)
    device = f"{site}-kiosk-{rng.randint(1, 2)}"
    ref_id = uuid.uuid5(uuid.NAMESPACE_URL, f"bench-referral-{n}")
    base = cases[0][0]
    r = base.referral.model_copy(update={"referral_id": ref_id, "reference": f"{200000000000 + n:012d}",
                                         "referral_date": today - timedelta(days=days_ago)})
    p = base.patient.model_copy(update={"nhs_number": sample.synthetic_nhs_number(n % 60_000)})
    out = []
    for i, (h, ims) in enumerate(cases):
        risk = rng.choices(("cancer", "pre-cancer", "benign"), (10, 25, 65))[0]
        update = {"case_id": uuid.uuid5(ref_id, f"lesion-{i}"), "referral": r, "patient": p, "site": site,
                  "device_id": device, "seq": n * 4 + i}
        if h.classification is not None:
            update["classification"] = h.classification.model_copy(update={"risk": risk})
        out.append((h.model_copy(update=update), ims))
    return out, days_ago


def build(root: Path, n: int, open_share: float = 0.08, span_days: int = 730) -> tuple[list[str], float]:
    """Make the store with ``n`` referrals (closed ones dated over ``span_days``); return the open referrals' keys
    and the seconds it took."""
    t0 = time.perf_counter()
    app = create_app({"DATABASE": str(root / "c.db"), "IMAGES_DIR": str(root / "images")})  # the dashboard's tables
    del app
    store = Store(root / "c.db", root / "images")
    store.conn.execute("PRAGMA synchronous=OFF")  # building only: the timed reads below use the app's own settings
    rng = random.Random(20)
    tmpl = templates()
    today = clock.today_in_england()
    now = datetime.now(timezone.utc)
    settings = ReadingConfig()
    open_keys, batch, to_sign = [], [], []
    for i in range(n):
        is_open = rng.random() < open_share
        cases, days_ago = referral(i, rng, tmpl, today, is_open, span_days)
        received = now - timedelta(days=max(days_ago - 1, 0), minutes=rng.randint(0, 600))
        batch += [(h, ims, received) for h, ims in cases]
        key = str(cases[0][0].referral.referral_id)
        if is_open:
            open_keys.append(key)
        else:
            to_sign.append((key, [h for h, _ in cases], received))
        if len(batch) >= BATCH or i == n - 1:
            store.save_cases(batch)
            batch = []
            for key, headers, at in to_sign:
                sign_all(store, key, headers, settings, rng, at)
            to_sign = []
        if (i + 1) % 10_000 == 0:
            print(f"  {i + 1} referrals stored ({time.perf_counter() - t0:.0f} s)", flush=True)
    store.close()
    return open_keys, time.perf_counter() - t0


def sign_all(store: Store, key: str, headers: list, settings: ReadingConfig, rng: random.Random, at: datetime) -> None:
    """The first reader claims and signs every lesion; a second reader signs those the rules send to them."""
    conn = store.conn
    ids = [str(h.case_id) for h in headers]
    fitz = headers[0].patient.fitzpatrick
    signed_at = at + timedelta(days=rng.randint(1, 20))
    claims.claim(conn, key, "dr.first")
    seconds = []
    for h in headers:
        risk = h.classification.risk if h.classification else "benign"
        case = {"case_id": str(h.case_id), "risk": h.classification.risk if h.classification else None}
        done = reports.sign(conn, key, case, len(headers), "dr.first", report_table.version(conn, key), DIAGNOSIS[risk], MANAGEMENT[risk], "",
                            settings, fitzpatrick=fitz, case_ids=ids, now=signed_at, rng=rng)
        if done.second_read:
            seconds.append((case, risk))
    if seconds:
        claims.take_over(conn, key, "dr.second")
        for case, risk in seconds:
            reports.sign(conn, key, case, len(headers), "dr.second", report_table.version(conn, key), DIAGNOSIS[risk], MANAGEMENT[risk], "",
                         settings, fitzpatrick=fitz, case_ids=ids, now=signed_at)
    conn.execute("DELETE FROM claims WHERE referral_key = ?", (key,))


def p95(ms: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    return sorted(ms)[max(0, int(round(0.95 * len(ms))) - 1)]


def measure(root: Path, open_keys: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Milliseconds of ``GET /cases`` and ``GET /referrals/<key>`` through the real app, ``runs`` each."""
    app = create_app({"DATABASE": str(root / "c.db"), "IMAGES_DIR": str(root / "images")})
    client = logged_in(app, f"dr.bench{random.randint(0, 10**6)}", "dermatologist")
    # As in production, where the ingest (and other web workers) keep the database open: without another
    # connection each request's close of the last one would checkpoint the WAL (tens of ms, not the page's work).
    ingest_connection = Store(root / "c.db", root / "images")
    rng = random.Random(7)
    worklist_ms, page_ms = [], []
    for i in range(runs + 5):
        t = time.perf_counter()
        r = client.get("/cases")
        ms = (time.perf_counter() - t) * 1000
        assert r.status_code == 200 and b'class="referral-row' in r.data, r.status_code
        if i >= 5:
            worklist_ms.append(ms)
        key = rng.choice(open_keys)
        t = time.perf_counter()
        r = client.get(f"/referrals/{key}")
        ms = (time.perf_counter() - t) * 1000
        assert r.status_code == 200, (r.status_code, key)
        if i >= 5:
            page_ms.append(ms)
    ingest_connection.close()
    return worklist_ms, page_ms


def store_arguments(description: str, runs: int) -> argparse.ArgumentParser:
    """The command line of a bench over a seeded store: --referrals, --runs, --dir (build or reuse), --keep."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--referrals", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--dir", type=Path, help="build here (kept), or reuse a store built here before")
    ap.add_argument("--keep", action="store_true", help="keep the temporary store")
    return ap


@contextmanager
def store_root(args: argparse.Namespace, prefix: str) -> Iterator[Path]:
    """The folder of the bench's store: ``--dir`` (kept), else a temporary one removed afterwards unless ``--keep``."""
    root = args.dir or Path(tempfile.mkdtemp(prefix=prefix))
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    finally:
        if not (args.dir or args.keep):
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse with --dir) the store, time the pages, print the figures."""
    args = store_arguments(__doc__.split("\n\n")[0], runs=60).parse_args(argv)
    with store_root(args, "dermkiosk-worklist-") as root:
        if (root / "c.db").exists():
            s = Store(root / "c.db", root / "images")
            n = s.conn.execute("SELECT count(*) FROM referral_summary").fetchone()[0]
            open_keys = [r[0] for r in s.conn.execute("SELECT referral_key FROM referral_summary WHERE closed = 0")]
            s.close()
            print(f"reusing {root}: {n} referrals")
        else:
            open_keys, seconds = build(root, args.referrals)
            n = args.referrals
            print(f"built {n} referrals in {seconds:.0f} s ({len(open_keys)} open) under {root}")
        s = Store(root / "c.db", root / "images")
        counts = {t: s.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("referral_summary", "cases", "case_images", "images", "reports", "audit_log")
                  if s.conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (t,)).fetchone()}
        s.close()
        print("rows: " + ", ".join(f"{t} {c}" for t, c in counts.items()))
        worklist_ms, page_ms = measure(root, open_keys, args.runs)
        for name, ms in (("worklist (GET /cases)", worklist_ms), ("referral page (GET /referrals/<key>)", page_ms)):
            ms_sorted = sorted(ms)
            print(f"{name}: {len(ms)} runs, p50 {ms_sorted[len(ms) // 2]:.1f} ms, p95 {p95(ms):.1f} ms, "
                  f"max {ms_sorted[-1]:.1f} ms")
        print(f"worklist_p95_ms={p95(worklist_ms):.1f} referral_page_p95_ms={p95(page_ms):.1f} n={n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
