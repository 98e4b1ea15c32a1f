"""A handful of realistic referrals in the demo's centre, so that the dashboard is not empty.

Schema-version-2 cases from :func:`dashboard.sample.make_referral`: generated lesion images,
synthetic NHS numbers (the range never issued to anyone), and between them the cases a
dermatologist should see: a two-lesion referral, a patient of skin type V, one who refused AI
analysis, and a close-up sent with a reason after it failed the quality gate. They are stored
directly (the ingest's own store code, idempotently by case UUID: a second start adds nothing)
as if the demo kiosk had sent them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

#: (seed, make_referral keywords, minutes ago it was received); each referral dated days before that,
#: so that the worklist's 28-day clock shows a spread (fresh, warned, one breached)
DEMO_REFERRALS = (
    (101, {"lesions": 2, "referred_days_before": 6}, 95),
    (102, {"fitzpatrick": "V", "referred_days_before": 16}, 80),
    (103, {"ai": False, "fitzpatrick": "III", "referred_days_before": 23}, 60),
    (104, {"override": True, "lesions": 2, "reference": "HUB-2026-0417", "referred_days_before": 30}, 45),
    (105, {"fitzpatrick": "I", "referred_days_before": 2}, 30),
)


def seed_referrals(database: Path, images_dir: Path, quarantine_dir: Path, site: str, device: str) -> tuple[int, int]:
    """Store the demo referrals for kiosk ``site/device``; return (referrals, cases newly stored)."""
    from dashboard import sample
    from dashboard.store import Store

    now = datetime.now(timezone.utc)
    batch = []
    for seed, kw, ago in DEMO_REFERRALS:
        taken = now - timedelta(minutes=ago + 30)
        for header, images in sample.make_referral(seed, site=site, device=device, seq=seed * 10, taken_at=taken, **kw):
            batch.append((header, images, now - timedelta(minutes=ago - header.lesion.index)))
    store = Store(database, images_dir, quarantine_dir)
    try:
        stored = sum(r.status == "stored" for r in store.save_cases(batch))
    finally:
        store.close()
    return len(DEMO_REFERRALS), stored
